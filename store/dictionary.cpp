#include "store/dictionary.h"

namespace itemfs::store {

std::string train_dictionary(const std::vector<std::string>& samples, size_t size) {
  // Whole samples, the first ones last; one that does not fit is skipped so
  // that a large document cannot crowd out many typical ones.
  std::vector<const std::string*> chosen;
  size_t total = 0;
  for (const std::string& sample : samples) {
    if (sample.empty() || total + sample.size() > size) continue;
    chosen.push_back(&sample);
    total += sample.size();
  }
  std::string dictionary;
  dictionary.reserve(total);
  for (auto it = chosen.rbegin(); it != chosen.rend(); ++it) dictionary += **it;
  return dictionary;
}

}  // namespace itemfs::store
