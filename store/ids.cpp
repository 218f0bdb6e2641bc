#include <cerrno>

#include "store/store.h"

namespace itemfs::store {

namespace {

// Length of the UTF-8 sequence starting at `s[i]`, 0 when invalid
// (overlong forms, surrogates and code points above U+10FFFF included).
size_t utf8_length(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char lead = byte(i);
  if (lead < 0x80) return 1;
  size_t n = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC2 ? 2 : 0;
  if (n == 0 || lead > 0xF4 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  if (n == 3 && lead == 0xE0 && byte(i + 1) < 0xA0) return 0;
  if (n == 3 && lead == 0xED && byte(i + 1) >= 0xA0) return 0;
  if (n == 4 && lead == 0xF0 && byte(i + 1) < 0x90) return 0;
  if (n == 4 && lead == 0xF4 && byte(i + 1) >= 0x90) return 0;
  return n;
}

}  // namespace

std::string shard_of(std::string_view id) {
  size_t end = 0;
  int points = 0;
  while (end < id.size() && points < 2) {
    size_t n = utf8_length(id, end);
    end += n ? n : 1;
    ++points;
  }
  return points < 2 ? std::string("00") : std::string(id.substr(0, end));
}

Status check_id(std::string_view id) {
  if (id.empty()) return Status::error(EINVAL, "an item id must not be empty");
  if (id.size() > 250) return Status::error(ENAMETOOLONG, "an item id is at most 250 bytes (\"<id>.json\" fits 255)");
  for (size_t i = 0; i < id.size();) {
    char c = id[i];
    if (c == '/' || c == '\0') return Status::error(EINVAL, "an item id must not contain '/' or NUL");
    size_t n = utf8_length(id, i);
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
