#include <cerrno>

#include "base/utf8.h"
#include "store/store.h"

namespace itemfs::store {

std::string shard_of(std::string_view id) {
  size_t end = 0;
  int points = 0;
  while (end < id.size() && points < 2) {
    size_t n = base::utf8_length(id, end);
    end += n ? n : 1;
    ++points;
  }
  return points < 2 ? std::string("00") : std::string(id.substr(0, end));
}

std::string item_path(std::string_view id) {
  std::string path = "items/" + shard_of(id) + "/";
  path.append(id);
  path += ".json";
  return path;
}

Status check_id(std::string_view id) {
  if (id.empty()) return Status::error(EINVAL, "an item id must not be empty");
  if (id.size() > 250) return Status::error(ENAMETOOLONG, "an item id is at most 250 bytes (\"<id>.json\" fits 255)");
  for (size_t i = 0; i < id.size();) {
    char c = id[i];
    if (c == '/' || c == '\0') return Status::error(EINVAL, "an item id must not contain '/' or NUL");
    size_t n = base::utf8_length(id, i);
    if (n == 0) return Status::error(EINVAL, "an item id must be valid UTF-8");
    i += n;
  }
  if (id == "." || id == "..") return Status::error(EINVAL, "an item id must not be '.' or '..'");
  // Its shard would be "..": a directory no path can reach, and a parent
  // directory in exports and backup archives.
  if (id.substr(0, 2) == "..") return Status::error(EINVAL, "an item id must not start with '..' (its shard would be '..')");
  return Status::success();
}

}  // namespace itemfs::store
