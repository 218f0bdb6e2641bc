// The journal of accepted writes: STORE/journal, an append-only file of
// put records that a store opened with Options::journal writes before it
// answers a write (store/accepting_store.h), so that what it accepted
// survives a crash of the process until it is committed.
//
// The contract:
//  - One process at a time holds a store's journal (take(): a lock on
//    STORE/journal.lock, dropped when the Journal is destroyed or the
//    process dies). Whoever holds it may apply what it holds (replay()).
//  - A position is a byte count over the life of the journal: a record
//    ends at a position, and positions only grow, also across restart().
//    The store records, in the transaction that applies records, the end
//    position of the last one applied (WriteBatch::set_journal_position),
//    so replay(from) yields exactly the records not yet applied.
//  - append() returns once the record is in the file (the kernel has it:
//    it survives the process being killed; sync() for a power loss).
//  - A record whose checksum fails ends the replay there (a write torn by a
//    power loss): what follows it was never acknowledged as durable.
//  - Format (docs/FORMAT.md, "The journal"): a 16-byte header ("itemfsJ1",
//    the position of the file's first byte, u64), then records: u32 magic,
//    u32 CRC-32 of the body, u32 body length, then the body: u8 kind (1:
//    put), u16 id length, the id, u32 mode, uid, gid, i64 mtime_ns, i64 ino,
//    and the item's bytes to the end. Integers are little-endian.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "store/store.h"

namespace itemfs::store {

struct JournalRecord {
  std::string id;
  Attrs attrs;      // mtime resolved (never kMtimeNow)
  int64_t ino = 0;  // the number the item gets if it is new
  std::string bytes;
  uint64_t end = 0;  // the position after this record
};

class Journal {
 public:
  static constexpr uint64_t kHeaderBytes = 16;  // a file of no records
  // The journal of the store at `dir`, or null if another process holds it.
  // Throws StoreError if it cannot be opened or created.
  static std::unique_ptr<Journal> take(const std::filesystem::path& dir);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Calls fn for each record that ends after `applied`, in order. Returns a
  // sentence if the file ends in a damaged or torn record ("" if not).
  std::string replay(uint64_t applied, const std::function<void(JournalRecord&)>& fn);
  // Appends a put record; returns its end position. Throws StoreError
  // (ENOSPC, EIO) with the file as it was.
  uint64_t append(std::string_view id, const Attrs& attrs, int64_t ino, std::string_view bytes);
  // Every record is applied: starts an empty file at the current end, or
  // at `at` when that is further (a journal lost or deleted: its positions
  // must go on past what the store recorded as applied).
  void restart();
  void restart_at(uint64_t at);
  void sync();
  uint64_t end() const { return start_ + size_; }
  uint64_t file_bytes() const { return size_; }

 private:
  Journal(std::filesystem::path dir, int lock_fd);
  void open_file();
  void write_new_file(uint64_t start);

  std::filesystem::path dir_;
  int lock_fd_ = -1;
  int fd_ = -1;
  uint64_t start_ = 0;  // position of the file's byte 16
  uint64_t size_ = 0;   // bytes after the header
};

}  // namespace itemfs::store
