// libFuzzer target: JSON validation (bytes and stream must agree, and a
// document with a NUL byte is never valid) and item ids (check_id, shard_of).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>

#include "store/json_check.h"
#include "store/store.h"

using namespace itemfs::store;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  Status from_bytes = validate_json_bytes(bytes);
  std::string copy(bytes);
  std::istringstream in(copy);
  Status from_stream = validate_json(in);
  // An empty input is refused by both, with different words.
  if (from_bytes.ok() != from_stream.ok()) std::abort();
  if (!from_bytes.ok() && from_bytes.code != EINVAL) std::abort();
  if (from_bytes.ok() && bytes.find('\0') != std::string_view::npos) std::abort();
  if (!from_bytes.ok() && size && from_bytes.message != from_stream.message) std::abort();

  // The same bytes as an id (up to the first 300 bytes).
  std::string_view id = bytes.substr(0, 300);
  std::string shard = shard_of(id);
  Status valid = check_id(id);
  if (valid.ok()) {
    if (id.size() > 250 || id.find('/') != std::string_view::npos || id.find('\0') != std::string_view::npos) std::abort();
    if (shard == "." || shard == ".." || shard.empty()) std::abort();
    if (shard != "00" && id.substr(0, shard.size()) != shard) std::abort();
    if (shard.size() > 8) std::abort();
  }
  return 0;
}
