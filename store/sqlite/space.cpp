// Disk full: the rules that refuse a write the disk cannot hold, the WAL
// checkpoint that gives space back, and the space reserve.

#include "store/sqlite/store_impl.h"

#include "base/log.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>

namespace itemfs::store::sqlite {


// Disk full. SQLite grows store.db only at a checkpoint, by copying WAL
// pages into it, and never shrinks the WAL file by itself. On a disk that
// filled up completely the checkpoint cannot grow store.db, so the WAL
// never resets and removing items frees nothing: the store is stuck. So a
// new item is refused (ENOSPC) unless the disk keeps room for it twice
// (WAL, then store.db, less the free pages store.db can reuse), for the
// WAL as it is, and 256 KiB more; when the disk is low after a commit
// (removes and failures included) the WAL is checkpointed and truncated
// so its space goes back to the disk; and the space reserve below covers
// what these rules cannot foresee.
static constexpr uint64_t kSpareBytes = 256 << 10;

uint64_t StoreImpl::wal_bytes() const {
  std::error_code ec;
  auto size = fs::file_size(db_path().string() + "-wal", ec);
  return ec ? 0 : uint64_t(size);
}

std::optional<uint64_t> StoreImpl::disk_free() const {
  struct statvfs st {};
  if (statvfs(dir_.c_str(), &st) != 0) return std::nullopt;
  return uint64_t(st.f_bavail) * uint64_t(st.f_frsize ? st.f_frsize : st.f_bsize);
}

Status StoreImpl::check_room(uint64_t size) const { return room_for(size, free_pages_after_commit_.load()); }

Status StoreImpl::check_room_in_batch(uint64_t size) const { return room_for(size, free_page_bytes()); }

Status StoreImpl::room_for(uint64_t size, uint64_t free_pages) const {
  auto free = disk_free();
  if (!free) return Status::success();
  uint64_t need = 2 * size + wal_bytes() + kSpareBytes + missing_reserve();
  if (*free >= need) return Status::success();
  // Pages freed by removed items are reused at the checkpoint: store.db
  // then need not grow, and what the lent reserve keeps free is not at
  // stake (the WAL is what the reserve is for).
  uint64_t growth = size - std::min(size, free_pages);
  need = size + growth + wal_bytes() + kSpareBytes + (growth ? missing_reserve() : 0);
  if (*free >= need) return Status::success();
  return Status::error(ENOSPC, "the disk holding the store is full: " + std::to_string(*free) +
                                   " bytes free, storing " + std::to_string(size) + " bytes needs " +
                                   std::to_string(need) + " (room for the log and its checkpoint)");
}

// Staging files grow only while the disk keeps the WAL's size and 256 KiB
// more free: a body being written must never take the room a checkpoint
// needs, or a store whose WAL is not yet copied back would be stuck full.
Status StoreImpl::check_staging_room(uint64_t bytes) const {
  // Every growing write comes here: while half of the surplus found by the
  // last look at the disk (at most 64 MiB) lasts, no need to look again.
  for (uint64_t left = staging_allowance_.load(); left >= bytes;) {
    if (staging_allowance_.compare_exchange_weak(left, left - bytes)) return Status::success();
  }
  auto free = disk_free();
  if (!free) return Status::success();
  uint64_t need = bytes + wal_bytes() + kSpareBytes;
  if (*free >= need) {
    staging_allowance_ = std::min<uint64_t>((*free - need) / 2, 64ull << 20);
    return Status::success();
  }
  staging_allowance_ = 0;
  return Status::error(ENOSPC, "the disk holding the store is full: " + std::to_string(*free) +
                                   " bytes free, " + std::to_string(need - bytes) +
                                   " kept back for the store's log and its checkpoint");
}

void StoreImpl::give_back_space_if_low() {
  try {
    free_pages_after_commit_ = free_page_bytes();
  } catch (const std::exception&) {
    // Keeps the last count: it only weighs how near full the disk is.
  }
  uint64_t wal = wal_bytes();
  auto free = disk_free();
  if (!free) return;
  if (wal > 0 && (!reserve_held_ || *free < 2 * wal + 8 * kSpareBytes)) {
    // A single commit can write more than the rule above foresaw (the
    // search index merges its segments now and then), and a disk can be
    // filled by others. If the checkpoint cannot grow store.db, the
    // reserve file's space is what lets it finish.
    if (!checkpoint_truncate() && release_space_reserve()) checkpoint_truncate();
    free = disk_free();
  }
  if (free && !reserve_held_ && *free >= reserve_bytes() + wal_bytes() + kSpareBytes) keep_space_reserve();
  // Commits use the disk too: the staging allowance never outlasts what
  // this commit left free.
  if (free) {
    uint64_t kept = wal_bytes() + kSpareBytes;
    uint64_t cap = *free > kept ? (*free - kept) / 2 : 0;
    for (uint64_t left = staging_allowance_.load(); left > cap;)
      if (staging_allowance_.compare_exchange_weak(left, cap)) break;
  }
}

// COMMIT writes the transaction's pages to the WAL, and a commit may write
// far more than its items (the search index merges segments now and then):
// on a nearly full disk that would fail with SQLITE_FULL, and SQLite rolls
// back. So when the disk has less free than the reserve, the reserve is
// lent to the commit; the checkpoint after it copies the WAL into
// store.db (reusing its free pages) and give_back_space_if_low() takes the
// reserve again once the room is back. While it is lent, check_room()
// keeps its size free, so new data cannot eat it.
void StoreImpl::commit_or_use_reserve() {
  if (reserve_held_) {
    auto free = disk_free();
    if (free && *free < reserve_bytes()) release_space_reserve();
  }
  writer_->exec("COMMIT");
}

// True when the whole WAL was copied into store.db and the file emptied.
bool StoreImpl::checkpoint_truncate() {
  // Readers may hold the WAL; wait for them a little, never for long.
  sqlite3_busy_timeout(writer_->handle(), 200);
  int log = -1, done = -1;
  int rc = sqlite3_wal_checkpoint_v2(writer_->handle(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, &log, &done);
  writer_->restore_busy_handler();
  return rc == SQLITE_OK && log == done;
}


// The space reserve: a file of preallocated blocks next to store.db,
// given back to the disk when a checkpoint cannot otherwise finish and
// taken again once the disk has room. Without it a disk that filled up
// while the WAL held pages not yet in store.db could never be recovered
// by removing items. An eighth of the disk, at most 8 MiB.

// The disk's size does not change under a mounted store: measured once.
uint64_t StoreImpl::measure_reserve_bytes() const {
  struct statvfs st {};
  if (statvfs(dir_.c_str(), &st) != 0) return 0;
  uint64_t total = uint64_t(st.f_blocks) * uint64_t(st.f_frsize ? st.f_frsize : st.f_bsize);
  return std::min<uint64_t>(8ull << 20, total / 8);
}

// Free pages inside store.db, as the writer sees them.
uint64_t StoreImpl::free_page_bytes() const {
  auto pages = writer_->cached("PRAGMA freelist_count");
  uint64_t count = pages->step() ? uint64_t(pages->int64(0)) : 0;
  auto size = writer_->cached("PRAGMA page_size");
  return count * (size->step() ? uint64_t(size->int64(0)) : 4096);
}

void StoreImpl::keep_space_reserve() {
  uint64_t want = reserve_bytes();
  std::error_code ec;
  if (want == 0) return;
  if (fs::file_size(reserve_path(), ec) >= want && !ec) {
    reserve_held_ = true;
    return;
  }
  int fd = ::open(reserve_path().c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return;
  bool ok = posix_fallocate(fd, 0, off_t(want)) == 0;
  ::close(fd);
  if (!ok) fs::remove(reserve_path(), ec);
  reserve_held_ = ok;
}

bool StoreImpl::release_space_reserve() {
  if (!reserve_held_) return false;
  std::error_code ec;
  fs::remove(reserve_path(), ec);
  reserve_held_ = false;
  base::log_event("the disk holding the store is full; its space reserve was given back");
  return !ec;
}

}  // namespace itemfs::store::sqlite
