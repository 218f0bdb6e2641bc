// MANIFEST.json: written as a stream (the item map can be large), read back
// with a SAX parser into compact per-item metadata (never a JSON DOM of the
// whole map). Summary reads stop before the item map.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <istream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "backup/util.h"

namespace itemfs::backup {

struct ItemMeta {
  store::Sha256 sha256{};
  uint64_t size = 0;
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime_ns = 0;
  uint32_t archive = 0;  // index into Manifest::chain: the backup whose archive holds these bytes
  bool seen = false;     // scratch flag for whoever walks the map
};

struct Manifest {
  int format_version = 0;
  std::string id;
  std::string kind;  // full | incremental
  std::string parent;
  int64_t created_ns = 0;
  bool encrypted = false;
  uint64_t item_count = 0, item_bytes = 0;
  uint64_t archived_count = 0, archived_bytes = 0;
  std::vector<std::string> chain;  // the full backup first, this one last
  // Only in a complete read:
  bool has_items = false;
  std::vector<std::string> deleted;
  std::unordered_map<std::string, ItemMeta> items;

  uint32_t chain_index(const std::string& backup_id) const;  // chain.size() if absent
};

// One item of a manifest's map, for maps held as a vector sorted by id.
struct MapEntry {
  std::string id;
  ItemMeta meta;
};

// Writes the header fields, "deleted" and the opening of "items" to `out`
// (begin), or item entries (item; a writer of its own can produce just the
// body), or the closing (end; `any_items`: whether item() was called on the
// body). with_items=false writes a summary without "deleted" and "items".
class ManifestWriter {
 public:
  explicit ManifestWriter(std::FILE* out) : out_(out) {}
  void begin(const Manifest& header, bool with_items);
  void item(const std::string& id, const ItemMeta& meta, const std::string& archive_id);
  void end(bool any_items);
  bool any_items() const { return !first_; }

 private:
  void put(const std::string& s);
  void flush();
  std::FILE* out_;
  bool with_items_ = true;
  bool first_ = true;
  std::string buf_;  // item entries not yet written
};

// Parses a manifest. `summary_only` stops before "deleted"/"items". Throws
// JobError(EIO) naming `what` on malformed input.
void read_manifest(std::istream& in, bool summary_only, Manifest& out, const std::string& what);
void read_manifest_file(const std::filesystem::path& path, bool summary_only, Manifest& out);

// Reads a complete manifest: the header fields and "deleted" into `out`
// (out.items stays empty), the item map into `items`, sorted by id
// (bytewise, as the store lists them). The layout ManifestWriter writes is
// parsed directly, many times faster than JSON in general; anything else goes
// through read_manifest. Throws like read_manifest.
void read_manifest_sorted(std::string_view text, Manifest& out, std::vector<MapEntry>& items, const std::string& what);
// The direct parse alone: false (and `out`, `items` unspecified) unless
// `text` has exactly ManifestWriter's layout, with ids in strictly increasing
// order. When it returns true, read_manifest reads the same manifest.
bool parse_manifest_layout(std::string_view text, Manifest& out, std::vector<MapEntry>& items);

// "items/<shard>/<id>.json" for an id.
std::string item_path(const std::string& id);
// The id named by an archive entry path if it is exactly
// items/<shard_of(id)>/<id>.json with a valid id; else "" .
std::string id_from_item_path(std::string_view path);
// One SHA256SUMS line in `sha256sum -c` form (escaping \, \n, \r in names).
std::string sha256sums_line(const store::Sha256& sha, const std::string& path);

}  // namespace itemfs::backup
