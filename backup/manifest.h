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
  base::Sha256 sha256{};
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
  // Encrypted: the id of the key (Key::id in hex, as the archive's header
  // has it), so that an incremental chains only onto a backup made with
  // the same key. "" for plain backups and older encrypted ones (their
  // archive's header says).
  std::string key_id;
  uint64_t item_count = 0, item_bytes = 0;
  uint64_t archived_count = 0, archived_bytes = 0;
  std::vector<std::string> chain;  // the full backup first, this one last
  // Format 2: the mode, uid and gid of an item entry that leaves them out.
  uint32_t default_mode = 0100644, default_uid = 0, default_gid = 0;
  bool has_defaults = false;  // read: the manifest has item_defaults
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

// Appends a manifest of format 2 (the current one) to `out`: the header
// fields, "item_fields", "item_defaults", "deleted" and the opening of
// "items" (begin), item entries in id order (item; meta.archive indexes the
// header's chain), then the closing (end). with_items=false writes a summary
// without "item_fields", "item_defaults", "deleted" and "items".
class ManifestWriter {
 public:
  explicit ManifestWriter(std::string& out) : out_(out) {}
  void begin(const Manifest& header, bool with_items);
  void item(std::string_view id, const ItemMeta& meta);
  // An entry already formatted by line() (or copied from a manifest of
  // the same item_defaults): the separator, then `line`. `out` may be
  // emptied between entries (the text is then streamed in pieces).
  void raw_item(std::string_view line);
  void end();
  // The bytes begin() .. end() add around the entries: the separators
  // (1 before the first entry, 2 before each other) and the closing.
  static size_t framing_size(size_t entries) { return entries == 0 ? 4 : 2 * entries - 1 + 7; }
  // Appends one entry of the map, `"id":[...]`, for these item_defaults.
  static void line(std::string& out, std::string_view id, const ItemMeta& meta, uint32_t mode, uint32_t uid,
                   uint32_t gid);

 private:
  std::string& out_;
  bool with_items_ = true;
  bool first_ = true;
  uint32_t mode_ = 0, uid_ = 0, gid_ = 0;
};

// Parses a manifest. `summary_only` stops before "deleted"/"items". Throws
// JobError(EIO) naming `what` on malformed input.
void read_manifest(std::istream& in, bool summary_only, Manifest& out, const std::string& what);
void read_manifest_file(const std::filesystem::path& path, bool summary_only, Manifest& out);

// Reads a complete manifest: the header fields and "deleted" into `out`
// (out.items stays empty), the item map into `items`, sorted by id
// (bytewise, as the store lists them). The layouts ManifestWriter writes
// (format 2) and wrote (format 1) are parsed directly, many times faster than
// JSON in general; anything else goes through read_manifest. Throws like
// read_manifest.
void read_manifest_sorted(std::string_view text, Manifest& out, std::vector<MapEntry>& items, const std::string& what);
// The direct parse alone: false (and `out`, `items` unspecified) unless
// `text` has exactly the layout of ManifestWriter (format 2) or of its format
// 1 predecessor, with ids in strictly increasing order. When it returns true, read_manifest reads the same manifest.
bool parse_manifest_layout(std::string_view text, Manifest& out, std::vector<MapEntry>& items);

// The item map of a format 2 manifest in ManifestWriter's layout, entry by
// entry, without parsing the entries: what an incremental needs to copy the
// lines of unchanged items from its parent. open() reads the header fields
// and "deleted" into `out` (false unless they have that layout and format
// version 2); next() gives each entry's id and whole line (`"id":[...]`,
// the text ManifestWriter::line writes), checking only the id (a plain
// string, ids strictly increasing) and the framing. next() returns false at
// the end of the map, or on text of another layout (then ok() is false).
class LayoutCursor {
 public:
  bool open(std::string_view text, Manifest& out);
  bool next(std::string_view& id, std::string_view& line);
  bool ok() const { return ok_; }

 private:
  std::string_view text_;
  size_t pos_ = 0;
  std::string_view last_id_;
  bool first_ = true, have_last_ = false, done_ = false, ok_ = true;
};

// The id named by an archive entry path if it is exactly
// store::item_path(id) with a valid id; else "" .
std::string id_from_item_path(std::string_view path);
// One SHA256SUMS line in `sha256sum -c` form (escaping \, \n, \r in names).
std::string sha256sums_line(const base::Sha256& sha, const std::string& path);

}  // namespace itemfs::backup
