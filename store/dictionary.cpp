#include "store/dictionary.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <unordered_map>

namespace itemfs::store {

namespace {

constexpr size_t kGram = 8;      // substring length that is counted
constexpr size_t kSegment = 48;  // length of the pieces the dictionary is made of

uint64_t gram_at(const std::string& s, size_t i) {
  uint64_t v;
  std::memcpy(&v, s.data() + i, kGram);
  return v;
}

struct Candidate {
  uint64_t score;
  size_t sample;
  size_t offset;
};

}  // namespace

std::string train_dictionary(const std::vector<std::string>& samples, size_t size) {
  // How many samples each 8-gram occurs in: content shared across documents
  // is what a dictionary can save, content repeated inside one is not.
  std::unordered_map<uint64_t, uint32_t> document_frequency;
  std::unordered_map<uint64_t, size_t> last_seen;
  for (size_t s = 0; s < samples.size(); ++s) {
    const std::string& text = samples[s];
    for (size_t i = 0; i + kGram <= text.size(); ++i) {
      uint64_t g = gram_at(text, i);
      auto [it, fresh] = last_seen.try_emplace(g, s);
      if (fresh || it->second != s) {
        it->second = s;
        ++document_frequency[g];
      }
    }
  }
  last_seen.clear();
  // Score every segment start (on a stride, to keep this fast) by the
  // frequency of its grams; grams seen in one sample only are worth nothing.
  std::vector<Candidate> candidates;
  for (size_t s = 0; s < samples.size(); ++s) {
    const std::string& text = samples[s];
    for (size_t i = 0; i + kSegment <= text.size(); i += kSegment / 4) {
      uint64_t score = 0;
      for (size_t k = i; k + kGram <= i + kSegment; k += 2) {
        uint32_t df = document_frequency[gram_at(text, k)];
        if (df > 1) score += df;
      }
      if (score > 0) candidates.push_back({score, s, i});
    }
  }
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.sample != b.sample) return a.sample < b.sample;
    return a.offset < b.offset;
  });
  // Take the best segments whose content is not already in, until full.
  std::vector<std::string> chosen;
  size_t total = 0;
  for (const Candidate& c : candidates) {
    if (total + kSegment > size) break;
    const std::string& text = samples[c.sample];
    bool fresh = false;
    for (size_t k = c.offset; k + kGram <= c.offset + kSegment; k += 2) {
      auto it = document_frequency.find(gram_at(text, k));
      if (it != document_frequency.end() && it->second > 1) {
        fresh = true;
        it->second = 1;  // covered now: later segments gain nothing from it
      }
    }
    if (!fresh) continue;
    chosen.push_back(text.substr(c.offset, kSegment));
    total += kSegment;
  }
  std::string dictionary;
  dictionary.reserve(total);
  for (auto it = chosen.rbegin(); it != chosen.rend(); ++it) dictionary += *it;
  return dictionary;
}

}  // namespace itemfs::store
