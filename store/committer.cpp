// The committer of an AcceptingStore (accepting_store.h): one thread that
// moves accepted writes into the backend in groups, each one transaction
// that also records how far the journal is applied, and retries a group
// that failed (a full disk, an I/O error) until it lands or the store
// closes (then the journal keeps it for the next open).

#include <cerrno>
#include <istream>

#include "store/accepting_store.h"
#include "store/memory_stream.h"

namespace itemfs::store {

namespace {
constexpr auto kRetryAfter = std::chrono::seconds(1);
// A journal whose records are all applied starts again once it is this big,
// so that it never holds more disk than about one group.
constexpr uint64_t kRestartJournalAfter = 1u << 20;
}  // namespace

// One transaction: every put of `group` and the journal position after them.
void AcceptingStore::write_group(const std::vector<std::shared_ptr<Accepted>>& group, size_t from, size_t to) {
  backend_->write([&](WriteBatch& batch) {
    for (size_t k = from; k < to; ++k) {
      const Accepted& a = *group[k];
      MemoryBuf buf(*a.bytes);
      std::istream in(&buf);
      Status status = batch.put_with_ino(a.info.id, in, a.info.attrs, a.info.ino, nullptr);
      if (!status.ok()) throw StoreError(status.code, "committing " + item_path(a.info.id) + ": " + status.message);
    }
    batch.set_journal_position(group[to - 1]->end);
  });
}

// The group in one transaction; if that fails (on a disk nearly full, the
// log of a large group can need the room one item at a time would not),
// item by item, in order, up to the first that fails. Returns how many of
// the group's first items are committed; the error is kept in failing_.
size_t AcceptingStore::commit_group(const std::vector<std::shared_ptr<Accepted>>& group) {
  size_t done = 0;
  try {
    write_group(group, 0, group.size());
    return group.size();
  } catch (const std::exception& e) {
    if (group.size() == 1) return note_failure(e), 0;
  }
  try {
    for (; done < group.size(); ++done) write_group(group, done, done + 1);
  } catch (const std::exception& e) {
    note_failure(e);
  }
  return done;
}

void AcceptingStore::note_failure(const std::exception& e) {
  const auto* se = dynamic_cast<const StoreError*>(&e);
  std::lock_guard lock(mu_);
  failing_ = Status::error(se && se->code() ? se->code() : EIO, e.what());
}

void AcceptingStore::committer() {
  std::unique_lock lock(mu_);
  for (;;) {
    work_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and all committed
    // Gather: a group is the writes of kGroupWait, unless it fills or
    // someone waits for it.
    const auto due = queue_.front()->at + kGroupWait;
    work_.wait_until(lock, due, [&] {
      return stopping_ || draining_ > 0 || queue_.size() >= kGroupItems || queued_bytes_ >= kGroupBytes;
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
      if (stopping_) return;   // the journal keeps the rest
      work_.wait_for(lock, kRetryAfter, [&] { return stopping_ || retry_now_; });
      retry_now_ = false;
      continue;
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
  }
}

}  // namespace itemfs::store
