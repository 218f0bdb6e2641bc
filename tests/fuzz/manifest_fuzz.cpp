// libFuzzer target: a backup's MANIFEST.json reader and archive entry paths
// (path traversal: only items/<shard_of(id)>/<id>.json with a valid id).
// The direct parse of the written layouts (formats 1 and 2) must agree with
// the general reader whenever it accepts an input.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <sstream>
#include <string>
#include <vector>

#include "backup/manifest.h"
#include "store/store.h"

using namespace itemfs;

namespace {

bool same(const backup::ItemMeta& a, const backup::ItemMeta& b) {
  return a.sha256 == b.sha256 && a.size == b.size && a.mode == b.mode && a.uid == b.uid && a.gid == b.gid &&
         a.mtime_ns == b.mtime_ns && a.archive == b.archive;
}

}  // namespace

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
  {
    backup::Manifest direct;
    std::vector<backup::MapEntry> items;
    if (backup::parse_manifest_layout(bytes, direct, items)) {
      std::istringstream in(bytes);
      backup::Manifest general;
      try {
        backup::read_manifest(in, false, general, "fuzz");
      } catch (const std::exception&) {
        std::abort();  // the direct parse accepted what the general reader refuses
      }
      if (general.id != direct.id || general.chain != direct.chain || general.deleted != direct.deleted ||
          general.items.size() != items.size()) {
        std::abort();
      }
      for (size_t i = 0; i < items.size(); ++i) {
        auto it = general.items.find(items[i].id);
        if (it == general.items.end() || !same(it->second, items[i].meta)) std::abort();
        if (i > 0 && !(items[i - 1].id < items[i].id)) std::abort();
      }
    }
  }
  std::string id = backup::id_from_item_path(bytes.substr(0, 300));
  if (!id.empty()) {
    if (!store::check_id(id).ok()) std::abort();
    if (store::item_path(id) != bytes.substr(0, 300)) std::abort();
  }
  return 0;
}
