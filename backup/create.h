// A backup being made (Manager::Impl::do_backup), in steps: plan_backup
// (create_plan.cpp: the store's items in one snapshot, compared with the
// parent's map, giving the new map and what the archive must hold), then
// write_backup (create_archive.cpp: MANIFEST.json, SHA256SUMS and the items
// into the archive, manifest.json beside it, the sidecar, the rename into
// place). Internal to backup/.
#pragma once

#include <sys/mman.h>

#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "backup/impl.h"

namespace itemfs::backup {

// A file read through a private read-only mapping: its pages are the page
// cache's, not copied into fresh memory. For the manifests of complete
// backups, which are never written again.
class MappedFile {
 public:
  explicit MappedFile(const fs::path& path) {
    uint64_t size = 0;
    int fd = open_regular(path, &size);
    size_ = static_cast<size_t>(size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
      if (p == MAP_FAILED) {
        int err = errno;
        ::close(fd);
        throw_errno("cannot map", path, err);
      }
      data_ = static_cast<const char*>(p);
    }
    ::close(fd);
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<char*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::string_view text() const { return {data_, size_}; }

 private:
  const char* data_ = nullptr;
  size_t size_ = 0;
};

// One store item of a backup being made. Its id is in a buffer shared by
// all rows; its line of the new map is in the parent's manifest.json
// (in_parent) or in a buffer of new lines.
struct Row {
  ItemMeta meta;
  int64_t ino = 0;
  uint64_t id_off = 0;
  uint64_t line_off = 0;
  uint32_t id_len = 0;
  uint32_t line_len = 0;
  bool in_parent = false;
};

// What each step of a backup leaves for the next.
struct Manager::Impl::Build {
  ~Build();

  bool incremental = false;     // asked for an incremental
  bool skip_unchanged = false;  // and none is written when it would hold nothing
  std::vector<Found> all;       // the complete backups, oldest first
  std::unique_ptr<Key> key;
  std::string key_id;    // hex; "" without a key
  std::string why_full;  // why an incremental became a full backup
  bool incr = false;     // this is an incremental

  // The parent's map, read on a second core while the store is scanned:
  // by its lines (cursor on parent_file) or parsed (parent_items, by id).
  const Found* parent = nullptr;
  Manifest parent_header;
  std::unique_ptr<MappedFile> parent_file;
  LayoutCursor cursor;
  bool by_lines = false;
  std::vector<MapEntry> parent_items;
  std::exception_ptr parent_error;
  std::thread parent_reader;

  // The store at one point in time: its items' metadata in id order, their
  // ids in one buffer.
  int64_t created = 0;
  std::unique_ptr<store::Snapshot> snap;
  std::string ids;
  std::vector<Row> rows;

  // The new backup: its id, the directory it is written in, its manifest
  // (header, deleted ids, counts), the index of its own archive in its
  // chain, the lines of its map that are not the parent's.
  std::string id;
  fs::path tmp;
  bool tmp_armed = false;  // removed when the backup is not completed
  Manifest m;
  uint32_t self = 0;
  std::string lines;
  uint64_t lines_bytes = 0;
  base::Sha256 archive_sha256{};  // of the archive file, as written
  uint64_t archive_bytes = 0;

  std::string_view id_of(const Row& r) const { return {ids.data() + r.id_off, r.id_len}; }
  // The store item a row stands for, to read its bytes.
  store::ItemInfo item_of(const Row& r) const;
  // Writes the row's line of the new map into `lines`.
  void new_line(Row& r);
};

}  // namespace itemfs::backup
