// A store that accepts writes before it commits them (DESIGN.md §4): the
// Store a mount works on when opened with Options::journal.
//
// The contract (beyond store.h's):
//  - accept() of an item of up to kChunkSize bytes checks it as put()
//    would (id, size, one valid JSON document, room on disk), appends it to
//    the journal (store/journal.h) and returns: the write is accepted. A
//    larger item, or the first item of a shard directory that does not
//    exist yet, is committed before accept() returns, as by write().
//  - From the moment accept() returns, every read of this object (item,
//    item_by_ino, list_shard, open_item) sees the accepted version; other
//    processes see it once it is committed.
//  - A committer thread moves accepted writes into the backend in groups:
//    one transaction per 50 ms, 1,000 items or 64 MiB, whichever comes
//    first, which also records how far the journal is applied.
//  - Every other change (write()), snapshot(), last_seq(), sync(), stats()
//    and fsck() first wait until everything accepted before the call is
//    committed, so an item's history keeps its order and a snapshot or a
//    sync covers every accepted write. That wait is bounded: a committer
//    that cannot make progress (disk full, I/O errors) makes them throw
//    its error (last_seq() and stats() answer what is committed), and
//    accept() refuse, once one more attempt asked for has failed too
//    (kStuckAfter with no error), instead of hanging. A group that fails
//    is committed again item by item, so an item that fails holds back only
//    what was accepted after it, and one that can never be committed (its
//    error is not a full disk, an I/O error or a busy database) is dropped
//    and logged rather than retried. accept() checks the room a commit
//    of the item and of the backlog before it needs (check_room), so a full
//    disk refuses the close() rather than a commit after it.
//  - sync() returns once everything accepted before it is committed and
//    one backend sync has run after that: the committer syncs after a
//    group, once for every sync() waiting then (concurrent fsyncs share).
//  - Memory: accepted items are held in memory until committed, at most
//    kMaxBacklogBytes / kMaxBacklogItems; accept() waits while more are.
//  - Destroying it commits what was accepted (or, if the committer is
//    stuck, leaves it in the journal for the next open).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "store/journal.h"
#include "store/store.h"

namespace itemfs::store {

// Stores an accepted item's bytes (checked when accepted) in `batch` with
// the number it was given: what the committer and a journal replay do.
Status put_accepted(WriteBatch& batch, std::string_view id, std::string_view bytes, const Attrs& attrs, int64_t ino);
// True for a failure of an accepted item that no retry mends (the item
// itself cannot be stored: a limit lowered since, a constraint of the
// store); false for a full disk, an I/O error, a busy database.
bool cannot_ever_commit(const std::exception& e);
// Logs that the accepted write of `id` is dropped, and why.
void log_dropped(std::string_view id, std::string_view why);

class AcceptingStore final : public Store {
 public:
  static constexpr size_t kGroupItems = 1000;
  static constexpr size_t kGroupBytes = 64u << 20;
  static constexpr std::chrono::milliseconds kGroupWait{50};
  static constexpr size_t kMaxBacklogBytes = 32u << 20;
  static constexpr size_t kMaxBacklogItems = 20000;
  static constexpr std::chrono::seconds kStuckAfter{30};
  static constexpr int64_t kInoReserve = 4096;  // item numbers reserved at a time

  AcceptingStore(std::unique_ptr<Store> backend, std::unique_ptr<Journal> journal);
  ~AcceptingStore() override;

  Status accept(std::string_view id, std::istream& content, const Attrs& attrs, ItemInfo* stored) override;
  void write(const std::function<void(WriteBatch&)>& fn) override;
  uint64_t last_seq() override;
  std::optional<ItemInfo> item(std::string_view id) override;
  std::optional<ItemInfo> item_by_ino(int64_t ino) override;
  std::vector<ItemInfo> list_shard(std::string_view shard) override;
  std::unique_ptr<ItemReader> open_item(const ItemInfo& item, bool lazy) override;
  std::unique_ptr<Snapshot> snapshot() override;
  void sync() override;
  FsckReport fsck(bool repair, const FsckProgress& progress) override;
  Stats stats() override;

  // The rest as the backend has it.
  const std::filesystem::path& dir() const override { return backend_->dir(); }
  const Options& options() const override { return backend_->options(); }
  PreparedItem prepare(std::string id, std::string bytes, const Attrs& attrs) override {
    return backend_->prepare(std::move(id), std::move(bytes), attrs);
  }
  bool recompress_if_stale(PreparedItem& item) override { return backend_->recompress_if_stale(item); }
  int64_t current_dictionary_id() const override { return backend_->current_dictionary_id(); }
  uint64_t journal_position() override { return backend_->journal_position(); }
  void wait_idle() override { backend_->wait_idle(); }
  void add_commit_listener(CommitListener fn) override { backend_->add_commit_listener(std::move(fn)); }
  uint64_t follow(std::string_view name) override { return backend_->follow(name); }
  void advance(std::string_view name, uint64_t seq) override { backend_->advance(name, seq); }
  void unfollow(std::string_view name) override { backend_->unfollow(name); }
  std::optional<uint64_t> cursor(std::string_view name) override { return backend_->cursor(name); }
  std::optional<DirInfo> dir_info(std::string_view shard) override { return backend_->dir_info(shard); }
  std::vector<DirInfo> list_dirs() override { return backend_->list_dirs(); }
  Status check_staging_room(uint64_t bytes) const override { return backend_->check_staging_room(bytes); }
  Status check_room(uint64_t bytes) const override { return backend_->check_room(bytes); }
  bool changed_by_others() override { return backend_->changed_by_others(); }

 private:
  struct Accepted {
    ItemInfo info;
    std::shared_ptr<const std::string> bytes;
    uint64_t end = 0;     // journal position after its record
    uint64_t number = 0;  // in order of acceptance, from 1
    std::chrono::steady_clock::time_point at;
  };

  // Waits until everything accepted so far is committed; throws the
  // committer's error once it is stuck (see the contract).
  void drain();
  void drain_for_reading();  // drain(), but a stuck committer is no error
  // Waits on progress_ until `done` or stuck; false if stuck (*why says why).
  bool wait_progress(std::unique_lock<std::mutex>& lock, const std::function<bool()>& done, Status* why);
  // Commits `content` now (the synchronous path), after what was accepted.
  Status commit_now(std::string_view id, std::istream& content, const Attrs& attrs, ItemInfo* stored);
  // A number for a new item (reserving more from the backend as needed).
  int64_t new_ino();
  std::shared_ptr<const Accepted> accepted(std::string_view id);
  void committer();
  bool commit_next(std::unique_lock<std::mutex>& lock);
  size_t commit_group(const std::vector<std::shared_ptr<Accepted>>& group);
  void write_group(const std::vector<std::shared_ptr<Accepted>>& group, size_t from, size_t to);
  void note_failure(const std::exception& e);
  // Moves the journal position past `a`, which can never be committed, and
  // logs it; false (the failure noted) if even that cannot be committed.
  bool drop(const Accepted& a, const std::exception& why);

  std::unique_ptr<Store> backend_;
  std::unique_ptr<Journal> journal_;
  std::mutex accept_mu_;  // one accept() at a time: journal order is queue order
  std::mutex mu_;         // what follows
  std::condition_variable work_;      // the committer waits here
  std::condition_variable progress_;  // drain() and a full backlog wait here
  std::deque<std::shared_ptr<Accepted>> queue_;
  std::unordered_map<std::string, std::shared_ptr<Accepted>> by_id_;
  std::unordered_map<int64_t, std::shared_ptr<Accepted>> by_ino_;
  size_t queued_bytes_ = 0;
  uint64_t accepted_ = 0, committed_ = 0;
  size_t draining_ = 0;  // drain() calls waiting: commit at once
  bool stopping_ = false;
  Status failing_;  // the committer's last error, while it fails
  uint64_t attempts_ = 0;  // groups the committer has tried to commit
  bool retry_now_ = false;  // someone waits on a failing committer: try again now
  // sync(): each call takes a ticket; the committer syncs once everything
  // accepted before the newest ticket is committed, for every ticket so far.
  uint64_t sync_asked_ = 0, sync_done_ = 0, sync_target_ = 0;
  Status sync_result_;  // of the last sync the committer made
  std::chrono::steady_clock::time_point last_sync_;
  int64_t next_ino_ = 0, ino_end_ = 0;  // reserved, not yet given (under accept_mu_)
  int64_t spare_ino_ = 0;  // the first of the next range the committer reserved (0: none)
  std::unordered_set<std::string> shards_;  // known to exist in the backend
  std::thread thread_;
};

}  // namespace itemfs::store
