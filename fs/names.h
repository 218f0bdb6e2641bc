// What a name under items/ is. Only names ending in `.json` are items; an
// item lives in the shard of its id's first two characters, and under
// items/ itself by its flat name (items/<id>.json, looked up, created,
// renamed and removed in its shard). A short name with no `.json` directly
// under items/ is a shard; every other name (rsync's `.x.json.AbC123`,
// vim's `.x.json.swp` and `4913`, `x.json~`) is a scratch file, never
// stored. Pure functions: no store, no mount.
#pragma once

#include <string>
#include <string_view>

namespace itemfs::fs {

struct Resolved {
  enum What { kNone, kItem, kScratch, kShard, kBadItemName } what = kNone;
  std::string id;   // kItem: the item id
  int error = 0;    // kBadItemName: the errno
  std::string why;  // kBadItemName: the reason, for the log
};

// Classifies `name` in items/ directory `dir` ("" = items/ itself, else a shard).
Resolved classify(const std::string& dir, const std::string& name);

bool ends_with_json(std::string_view name);

// (items/<shard>/<id>.json, the path a user knows item `id` by, is
// store::item_path.)
// items/[<dir>/]<name>: the path of a scratch file or of a name under items/.
std::string items_path(const std::string& dir, const std::string& name);

}  // namespace itemfs::fs
