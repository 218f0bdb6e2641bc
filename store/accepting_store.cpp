// A store that accepts writes before it commits them (see
// accepting_store.h): accept(), the overlay of accepted items that reads
// see first, and the waits (drain) that keep every other change in order.
// The committer's thread is in committer.cpp.

#include "store/accepting_store.h"

#include <cerrno>
#include <istream>
#include <optional>

#include "base/clock.h"
#include "store/json_check.h"
#include "store/memory_stream.h"

namespace itemfs::store {

namespace {

// One accepted version, read from memory.
class AcceptedReader final : public ItemReader {
 public:
  explicit AcceptedReader(std::shared_ptr<const std::string> bytes) : bytes_(std::move(bytes)) {}
  Status pread(uint64_t offset, uint64_t size, std::string& out) override {
    if (offset >= bytes_->size()) out.clear();
    else out.assign(*bytes_, size_t(offset), size_t(size));
    return Status::success();
  }

 private:
  std::shared_ptr<const std::string> bytes_;
};

}  // namespace

AcceptingStore::AcceptingStore(std::unique_ptr<Store> backend, std::unique_ptr<Journal> journal)
    : backend_(std::move(backend)), journal_(std::move(journal)) {
  thread_ = std::thread([this] { committer(); });
}

AcceptingStore::~AcceptingStore() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  work_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (queue_.empty()) {
    try {
      journal_->restart();  // all applied: the next open has nothing to do
    } catch (const StoreError&) {
    }
  }
}

std::shared_ptr<const AcceptingStore::Accepted> AcceptingStore::accepted(std::string_view id) {
  std::lock_guard lock(mu_);
  auto it = by_id_.find(std::string(id));
  return it == by_id_.end() ? nullptr : it->second;
}

Status AcceptingStore::accept(std::string_view id, std::istream& content, const Attrs& attrs, ItemInfo* stored) {
  content.clear();
  content.seekg(0, std::ios::end);
  const auto end = content.tellg();
  content.seekg(0, std::ios::beg);
  if (end < 0 || !content) return Status::error(EIO, "cannot read the content to store");
  const auto size = uint64_t(end);
  const std::string shard = shard_of(id);
  bool known_shard;
  {
    std::lock_guard lock(mu_);
    known_shard = shards_.count(shard) > 0;
  }
  if (!known_shard && backend_->dir_info(shard)) {
    std::lock_guard lock(mu_);
    shards_.insert(shard);
    known_shard = true;
  }
  // What the overlay cannot hold (a large item, a directory not made yet)
  // and what will be refused (its reason is put()'s) go the direct way.
  // Under sync=full a close() waits until its write is synced: committed at once.
  if (size == 0 || size > kChunkSize || size > options().max_item_size || !known_shard || !check_id(id).ok() ||
      options().sync_full)
    return commit_now(id, content, attrs, stored);
  auto bytes = std::make_shared<std::string>(size, '\0');
  if (!content.read(bytes->data(), std::streamsize(size))) return Status::error(EIO, "short read of the content");
  if (Status valid = validate_json_bytes(*bytes); !valid.ok()) return valid;
  // Room for this item and for the backlog before it; on a disk nearly
  // full, the backlog is committed first and the item alone decides, as a
  // commit at close would.
  size_t backlog;
  {
    std::lock_guard lock(mu_);
    backlog = queued_bytes_;
  }
  if (Status room = backend_->check_room(size + backlog); !room.ok()) {
    if (backlog == 0) return room;
    try {
      drain();
    } catch (const StoreError& e) {
      return Status::error(e.code(), e.what());
    }
    if (Status alone = backend_->check_room(size); !alone.ok()) return alone;
  }

  std::lock_guard one(accept_mu_);
  auto entry = std::make_shared<Accepted>();
  ItemInfo& info = entry->info;
  if (auto before = accepted(id)) {
    info.ino = before->info.ino;
  } else if (auto existing = backend_->item(id)) {
    info.ino = existing->ino;
  } else {
    info.ino = new_ino();
  }
  const int64_t now = base::now_ns();
  info.id = std::string(id);
  info.size = size;
  info.attrs = attrs;
  if (info.attrs.mtime_ns == kMtimeNow) info.attrs.mtime_ns = now;
  info.ctime_ns = now;
  info.sha256 = base::sha256_of(*bytes);
  entry->bytes = std::move(bytes);
  {
    std::unique_lock lock(mu_);
    // Backpressure: the backlog in memory stays bounded.
    Status why;
    if (!wait_progress(lock, [&] {
          return queue_.empty() || (queued_bytes_ + size <= kMaxBacklogBytes && queue_.size() < kMaxBacklogItems);
        }, &why))
      return why;
    try {
      entry->end = journal_->append(info.id, info.attrs, info.ino, *entry->bytes);
    } catch (const StoreError& e) {
      return Status::error(e.code(), std::string("cannot record the write: ") + e.what());
    }
    entry->number = ++accepted_;
    entry->at = std::chrono::steady_clock::now();
    queued_bytes_ += size;
    queue_.push_back(entry);
    by_id_[info.id] = entry;
    by_ino_[info.ino] = entry;
  }
  work_.notify_one();
  if (stored) *stored = info;
  return Status::success();
}

Status AcceptingStore::commit_now(std::string_view id, std::istream& content, const Attrs& attrs, ItemInfo* stored) {
  Status status;
  write([&](WriteBatch& batch) { status = batch.put(id, content, attrs, stored); });
  if (status.ok()) {
    std::lock_guard lock(mu_);
    shards_.insert(shard_of(id));
  }
  return status;
}

// Numbers come from a range reserved in the store. The committer reserves
// the next range inside one of its groups, before this one runs out
// (spare_ino_); only when new items come faster than groups does accept()
// reserve one itself, in a transaction of its own.
int64_t AcceptingStore::new_ino() {
  if (next_ino_ == ino_end_) {
    {
      std::lock_guard lock(mu_);
      if (spare_ino_ != 0) {
        next_ino_ = spare_ino_;
        ino_end_ = spare_ino_ + kInoReserve;
        spare_ino_ = 0;
      }
    }
    if (next_ino_ == ino_end_) {
      int64_t first = 0;
      backend_->write([&](WriteBatch& batch) { first = batch.reserve_inos(kInoReserve); });
      next_ino_ = first;
      ino_end_ = first + kInoReserve;
    }
  }
  return next_ino_++;
}

// While the committer fails (a full disk), one more attempt is asked for
// and its outcome decides: space freed meanwhile lets it through.
bool AcceptingStore::wait_progress(std::unique_lock<std::mutex>& lock, const std::function<bool()>& done,
                                   Status* why) {
  if (done()) return true;
  ++draining_;
  work_.notify_one();
  uint64_t seen = committed_;
  auto since = std::chrono::steady_clock::now();
  std::optional<uint64_t> asked;  // attempts_ when a retry was asked for
  bool ok = true;
  while (!done()) {
    if (!failing_.ok() && !asked) {
      asked = attempts_;
      retry_now_ = true;
      work_.notify_one();
    }
    progress_.wait_for(lock, std::chrono::milliseconds(100));
    if (committed_ != seen) {
      seen = committed_;
      since = std::chrono::steady_clock::now();
      asked.reset();
      continue;
    }
    if (asked && attempts_ > *asked && !failing_.ok()) {
      *why = failing_;
      ok = false;
      break;
    }
    if (!asked && std::chrono::steady_clock::now() - since >= kStuckAfter) {
      *why = Status::error(EIO, "no progress");
      ok = false;
      break;
    }
  }
  --draining_;
  return ok;
}

namespace {
// The AcceptingStore whose write() this thread is inside, if any.
thread_local const AcceptingStore* writing_in = nullptr;
}  // namespace

void AcceptingStore::drain() {
  // Inside a write() (a restore takes a snapshot in its batch) everything
  // accepted before it is committed already, and what was accepted since
  // cannot be until the write ends: waiting for it would wait for itself.
  if (writing_in == this) return;
  std::unique_lock lock(mu_);
  const uint64_t target = accepted_;
  Status why;
  if (!wait_progress(lock, [&] { return committed_ >= target; }, &why))
    throw StoreError(why.code, "the store cannot commit the writes it accepted: " + why.message);
}

void AcceptingStore::write(const std::function<void(WriteBatch&)>& fn) {
  drain();
  {
    // A shard directory may go (remove_dir): ask the backend again.
    std::lock_guard lock(mu_);
    shards_.clear();
  }
  struct Inside {
    const AcceptingStore* before;
    explicit Inside(const AcceptingStore* store) : before(writing_in) { writing_in = store; }
    ~Inside() { writing_in = before; }
  } inside(this);
  backend_->write(fn);
}

// A reader's wait: when the committer is stuck, what is committed is the answer.
void AcceptingStore::drain_for_reading() {
  try {
    drain();
  } catch (const StoreError&) {
  }
}

uint64_t AcceptingStore::last_seq() {
  drain_for_reading();
  return backend_->last_seq();
}

std::unique_ptr<Snapshot> AcceptingStore::snapshot() {
  drain();
  return backend_->snapshot();
}

void AcceptingStore::sync() {
  std::unique_lock lock(mu_);
  const uint64_t ticket = ++sync_asked_;
  sync_target_ = accepted_;
  work_.notify_one();
  Status why;
  if (!wait_progress(lock, [&] { return sync_done_ >= ticket; }, &why))
    throw StoreError(why.code, "the store cannot commit the writes it accepted: " + why.message);
  if (!sync_result_.ok()) throw StoreError(sync_result_.code, sync_result_.message);
}

Stats AcceptingStore::stats() {
  drain_for_reading();
  return backend_->stats();
}

FsckReport AcceptingStore::fsck(bool repair, const FsckProgress& progress) {
  drain();
  return backend_->fsck(repair, progress);
}

std::optional<ItemInfo> AcceptingStore::item(std::string_view id) {
  if (auto a = accepted(id)) return a->info;
  return backend_->item(id);
}

std::optional<ItemInfo> AcceptingStore::item_by_ino(int64_t ino) {
  {
    std::lock_guard lock(mu_);
    if (auto it = by_ino_.find(ino); it != by_ino_.end()) return it->second->info;
  }
  return backend_->item_by_ino(ino);
}

std::vector<ItemInfo> AcceptingStore::list_shard(std::string_view shard) {
  std::vector<ItemInfo> mine;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, a] : by_id_)
      if (shard_of(id) == shard) mine.push_back(a->info);
  }
  std::vector<ItemInfo> listed = backend_->list_shard(shard);
  if (mine.empty()) return listed;
  std::unordered_map<std::string, size_t> at;
  for (size_t k = 0; k < listed.size(); ++k) at.emplace(listed[k].id, k);
  for (auto& info : mine) {
    if (auto it = at.find(info.id); it != at.end()) listed[it->second] = std::move(info);
    else listed.push_back(std::move(info));
  }
  return listed;
}

std::unique_ptr<ItemReader> AcceptingStore::open_item(const ItemInfo& item, bool lazy) {
  {
    std::lock_guard lock(mu_);
    if (auto it = by_ino_.find(item.ino); it != by_ino_.end() && it->second->info.sha256 == item.sha256)
      return std::make_unique<AcceptedReader>(it->second->bytes);
  }
  return backend_->open_item(item, lazy);
}

}  // namespace itemfs::store
