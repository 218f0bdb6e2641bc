// Prune (by count and age, with every parent a kept backup needs) and
// delete of one backup.
#include <algorithm>
#include <set>

#include "backup/impl.h"

namespace itemfs::backup {

void Manager::Impl::do_delete(const std::string& id, std::string& message) {
  auto all = scan();
  if (!find(all, id)) throw JobError(ENOENT, "no backup " + id);
  for (const auto& f : all) {
    if (f.summary.id != id && std::find(f.summary.chain.begin(), f.summary.chain.end(), id) != f.summary.chain.end()) {
      throw JobError(ENOTEMPTY, "backup " + id + " is needed by " + f.summary.id + "; delete that first");
    }
  }
  remove_backup(id);
  message = "deleted backup " + id;
}

void Manager::Impl::do_prune(int keep_last, int keep_days, std::string& message, json& detail) {
  auto all = scan();
  // Why each is kept: the newest keep_last, those of the last keep_days
  // days, and every parent a kept backup's chain needs.
  std::set<std::string> newest, recent, keep;
  int64_t cutoff = now_ns() - int64_t(keep_days) * 86400 * 1000000000;
  for (size_t i = 0; i < all.size(); ++i) {
    const Manifest& s = all[i].summary;
    bool by_count = keep_last > 0 && i + size_t(keep_last) >= all.size();
    bool by_age = keep_days > 0 && s.created_ns >= cutoff;
    if (by_count) newest.insert(s.id);
    else if (by_age) recent.insert(s.id);
    if (by_count || by_age) keep.insert(s.chain.begin(), s.chain.end());  // with every parent it needs
  }
  std::vector<std::string> gone, kept;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {  // children before parents
    if (!keep.count(it->summary.id)) {
      remove_backup(it->summary.id);
      gone.push_back(it->summary.id);
    }
  }
  std::reverse(gone.begin(), gone.end());
  for (const auto& f : all) {
    if (keep.count(f.summary.id)) kept.push_back(f.summary.id);
  }
  message = prune_message(gone, kept.size(), newest.size(), recent.size(), keep_days);
  detail["deleted"] = gone;
  detail["kept"] = kept;
}

std::string Manager::Impl::prune_message(const std::vector<std::string>& gone, size_t kept, size_t newest, size_t recent,
                                 int keep_days) {
  std::string s = "deleted " + std::to_string(gone.size());
  for (size_t i = 0; i < gone.size(); ++i) s += (i == 0 ? ": " : ", ") + gone[i];
  s += "; kept " + std::to_string(kept);
  std::vector<std::string> why;
  if (newest) why.push_back("the " + std::to_string(newest) + " newest");
  if (recent) {
    why.push_back((newest ? "" : "the ") + std::to_string(recent) + (newest ? " more" : "") + " of the last " +
                  std::to_string(keep_days) + (keep_days == 1 ? " day" : " days"));
  }
  if (size_t needed = kept - newest - recent) {
    why.push_back("the " + std::to_string(needed) + " their " + (needed == 1 ? "chain needs" : "chains need"));
  }
  for (size_t i = 0; i < why.size(); ++i) s += (i == 0 ? ": " : i + 1 == why.size() ? " and " : ", ") + why[i];
  return s;
}

}  // namespace itemfs::backup
