// The committer of an AcceptingStore (accepting_store.h): one thread that
// moves accepted writes into the backend in groups, each one transaction
// that also records how far the journal is applied, and retries a group
// that failed (a full disk, an I/O error) until it lands or the store
// closes (then the journal keeps it for the next open).

#include <cerrno>
#include <istream>

#include "base/log.h"
#include "base/thread_name.h"
#include "store/accepting_store.h"
#include "store/memory_stream.h"

namespace itemfs::store {

namespace {
constexpr auto kRetryAfter = std::chrono::seconds(1);
constexpr auto kSyncsCloseTogether = std::chrono::milliseconds(20);
constexpr auto kSyncGather = std::chrono::milliseconds(1);
// A journal whose records are all applied starts again once it is this big,
// so that it never holds more disk than about one group.
constexpr uint64_t kRestartJournalAfter = 1u << 20;
}  // namespace

Status put_accepted(WriteBatch& batch, std::string_view id, std::string_view bytes, const Attrs& attrs, int64_t ino) {
  MemoryBuf buf(bytes);
  std::istream in(&buf);
  return batch.put_with_ino(id, in, attrs, ino, nullptr);
}

// One transaction: every put of `group` and the journal position after them.
// Also reserves the next range of item numbers when none is spare, so
// that accept() rarely needs a transaction of its own for one.
void AcceptingStore::write_group(const std::vector<std::shared_ptr<Accepted>>& group, size_t from, size_t to) {
  bool want_spare;
  {
    std::lock_guard lock(mu_);
    want_spare = spare_ino_ == 0;
  }
  int64_t spare = 0;
  backend_->write([&](WriteBatch& batch) {
    for (size_t k = from; k < to; ++k) {
      const Accepted& a = *group[k];
      Status status = put_accepted(batch, a.info.id, *a.bytes, a.info.attrs, a.info.ino);
      if (!status.ok()) throw StoreError(status.code, "committing " + item_path(a.info.id) + ": " + status.message);
    }
    batch.set_journal_position(group[to - 1]->end);
    if (want_spare) spare = batch.reserve_inos(kInoReserve);
  });
  if (spare) {
    std::lock_guard lock(mu_);
    spare_ino_ = spare;
  }
}

bool cannot_ever_commit(const std::exception& e) {
  const auto* se = dynamic_cast<const StoreError*>(&e);
  if (!se) return false;
  switch (se->code()) {
    case EINVAL:
    case EFBIG:
    case EEXIST:
    case ENAMETOOLONG:
    case ENOTDIR:
    case EISDIR: return true;
    default: return false;
  }
}

// The group in one transaction; if that fails (on a disk nearly full, the
// log of a large group can need the room one item at a time would not),
// item by item, in order, up to the first that fails for a reason that may
// pass. An item that can never be committed is isolated: dropped, with the
// journal position moved past it, and logged, so it does not hold back
// every later write. Returns how many of the group's first items are done
// (committed or dropped); the error that stopped it is kept in failing_.
size_t AcceptingStore::commit_group(const std::vector<std::shared_ptr<Accepted>>& group) {
  try {
    write_group(group, 0, group.size());
    return group.size();
  } catch (const std::exception& e) {
    if (group.size() == 1 && !cannot_ever_commit(e)) return note_failure(e), 0;
  }
  size_t done = 0;
  for (; done < group.size(); ++done) {
    try {
      write_group(group, done, done + 1);
    } catch (const std::exception& e) {
      if (!cannot_ever_commit(e) || !drop(*group[done], e)) break;
    }
  }
  return done;
}

bool AcceptingStore::drop(const Accepted& a, const std::exception& why) {
  try {
    backend_->write([&](WriteBatch& batch) { batch.set_journal_position(a.end); });
  } catch (const std::exception& e) {
    note_failure(e);
    return false;
  }
  log_dropped(a.info.id, why.what());
  return true;
}

void log_dropped(std::string_view id, std::string_view why) {
  base::log_event("error: the write of " + item_path(id) + " was accepted but cannot be committed, and is dropped: " +
                  std::string(why));
}

void AcceptingStore::note_failure(const std::exception& e) {
  const auto* se = dynamic_cast<const StoreError*>(&e);
  std::lock_guard lock(mu_);
  failing_ = Status::error(se && se->code() ? se->code() : EIO, e.what());
}

void AcceptingStore::committer() {
  base::name_this_thread("itemfs-commit");
  std::unique_lock lock(mu_);
  for (;;) {
    work_.wait(lock, [&] { return stopping_ || !queue_.empty() || sync_asked_ > sync_done_; });
    if (!queue_.empty() && !commit_next(lock)) {
      if (stopping_) return;  // the journal keeps the rest
      work_.wait_for(lock, kRetryAfter, [&] { return stopping_ || retry_now_; });
      retry_now_ = false;
      continue;
    }
    if (sync_asked_ > sync_done_ && committed_ >= sync_target_) {
      // Syncs asked for one after another (writers that each fsync): wait
      // a moment for the next ones to share this sync.
      if (std::chrono::steady_clock::now() - last_sync_ < kSyncsCloseTogether) {
        work_.wait_for(lock, kSyncGather, [&] { return stopping_; });
        if (committed_ < sync_target_) continue;  // more was accepted first
      }
      const uint64_t ticket = sync_asked_;
      lock.unlock();
      Status result;
      try {
        backend_->sync();
      } catch (const StoreError& e) {
        result = Status::error(e.code() ? e.code() : EIO, e.what());
      }
      lock.lock();
      sync_done_ = ticket;
      sync_result_ = result;
      last_sync_ = std::chrono::steady_clock::now();
      progress_.notify_all();
    }
    if (stopping_ && queue_.empty() && sync_asked_ <= sync_done_) return;
  }
}

// Gathers and commits the next group (the caller holds `lock`); false if
// nothing of it could be committed.
bool AcceptingStore::commit_next(std::unique_lock<std::mutex>& lock) {
  // A group is the writes of kGroupWait, unless it fills or someone waits.
  const auto due = queue_.front()->at + kGroupWait;
  work_.wait_until(lock, due, [&] {
    return stopping_ || draining_ > 0 || sync_asked_ > sync_done_ || queue_.size() >= kGroupItems ||
           queued_bytes_ >= kGroupBytes;
  });
  std::vector<std::shared_ptr<Accepted>> group;
  size_t bytes = 0;
  for (const auto& a : queue_) {
    if (group.size() >= kGroupItems || (bytes >= kGroupBytes && !group.empty())) break;
    group.push_back(a);
    bytes += a->info.size;
  }
  lock.unlock();
  const size_t done = commit_group(group);
  lock.lock();
  ++attempts_;
  if (done == 0) {
    progress_.notify_all();  // a drain() or a full backlog may give up now
    return false;
  }
  if (done == group.size()) failing_ = Status::success();
  group.resize(done);
  for (const auto& a : group) {
    queue_.pop_front();
    queued_bytes_ -= a->info.size;
    if (auto it = by_id_.find(a->info.id); it != by_id_.end() && it->second == a) by_id_.erase(it);
    if (auto it = by_ino_.find(a->info.ino); it != by_ino_.end() && it->second == a) by_ino_.erase(it);
  }
  committed_ = group.back()->number;
  if (queue_.empty() && journal_->file_bytes() >= kRestartJournalAfter) {
    try {
      journal_->restart();
    } catch (const StoreError&) {
      // The old file stays and is applied from its recorded position.
    }
  }
  progress_.notify_all();
  return true;
}

}  // namespace itemfs::store
