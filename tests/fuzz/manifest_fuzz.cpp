// libFuzzer target: a backup's MANIFEST.json reader and archive entry paths
// (path traversal: only items/<shard_of(id)>/<id>.json with a valid id).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <sstream>
#include <string>

#include "backup/manifest.h"
#include "store/store.h"

using namespace itemfs;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  for (bool summary : {true, false}) {
    std::istringstream in(bytes);
    backup::Manifest manifest;
    try {
      backup::read_manifest(in, summary, manifest, "fuzz");
    } catch (const std::exception&) {
      // Malformed input is an error, never a crash.
    }
  }
  std::string id = backup::id_from_item_path(bytes.substr(0, 300));
  if (!id.empty()) {
    if (!store::check_id(id).ok()) std::abort();
    if (backup::item_path(id) != bytes.substr(0, 300)) std::abort();
  }
  return 0;
}
