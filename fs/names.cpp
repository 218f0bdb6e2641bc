// Names under items/ (fs/names.h).
#include "fs/names.h"

#include <cerrno>

#include "store/store.h"

namespace itemfs::fs {

bool ends_with_json(std::string_view name) { return name.size() > 5 && name.substr(name.size() - 5) == ".json"; }

Resolved classify(const std::string& dir, const std::string& name) {
  Resolved r;
  if (ends_with_json(name)) {
    r.id = name.substr(0, name.size() - 5);
    store::Status valid = store::check_id(r.id);
    if (!valid.ok()) {
      r.what = Resolved::kBadItemName;
      r.error = valid.code;
      r.why = valid.message;
    } else if (!dir.empty() && store::shard_of(r.id) != dir) {
      r.what = Resolved::kBadItemName;
      r.error = EINVAL;
      r.why = "an item belongs in the shard of its first two characters (" + store::shard_of(r.id) + ")";
    } else {
      r.what = Resolved::kItem;
    }
    return r;
  }
  r.what = dir.empty() && store::shard_of(name) == name && name.size() <= 8 ? Resolved::kShard : Resolved::kScratch;
  return r;
}

std::string items_path(const std::string& dir, const std::string& name) {
  return "items/" + (dir.empty() ? "" : dir + "/") + name;
}

}  // namespace itemfs::fs
