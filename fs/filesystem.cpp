
#include "fs/filesystem.h"

#include <fcntl.h>
#include <malloc.h>
#include <fuse_lowlevel.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <deque>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <unordered_map>

#include "fs/event_log.h"
#include "fs/staging.h"
#include "fs/stats_json.h"
#include "fs/tree.h"

namespace itemfs::fs {

// The body and attributes of a file that is being written (an item between
// open and commit) or that lives only while mounted (a scratch file).
struct FileState {
  // `body` is held while the staging file is written, truncated or read for
  // a commit, so a commit never takes a half-written body; `mutex` guards the
  // fields below and is only ever held briefly, so that lookups and listings
  // (which hold the node table lock while they read them) never wait for a
  // long commit. Order: body, then the node table, then mutex.
  std::mutex body;
  std::mutex mutex;
  int fd = -1;
  uint64_t size = 0;
  store::Attrs attrs;
  int64_t ctime_ns = 0;
  bool dirty = false;
  int writers = 0;
  // A refused body is not offered again until it changes: release after a
  // failed flush must not log the same refusal twice.
  uint64_t version = 0;
  // Emptied by open(O_TRUNC) and not written since: a shell's `> file`
  // closes one copy of the descriptor before anything is written.
  bool emptied_by_open = false;
  uint64_t refused_version = UINT64_MAX;
  int refused_error = 0;
  // Bumped by every open(O_TRUNC) of an item for writing: that open starts
  // a new version, and writers that opened before it may no longer write
  // into the body (see Handle::generation).
  uint64_t generation = 0;
  std::shared_ptr<StagingPool> pool;  // where fd goes back to
  ~FileState() {
    if (fd >= 0) pool ? pool->give(fd) : void(close(fd));
  }
};

namespace {

using store::Attrs;
using store::Status;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

timespec to_timespec(int64_t ns) { return timespec{time_t(ns / 1000000000), long(ns % 1000000000)}; }
int64_t from_timespec(const timespec& ts) { return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec; }

// How long the kernel may keep an item's entry and attributes. Every change
// made through the mount reaches the kernel's caches directly or by explicit
// invalidation (restore, other nodes of the same item, flat names), and so
// does a writer outside the mount (itemfs import while mounted), which the
// store watcher notices within kWatchPeriod. Long, because every expiry
// costs a round trip per file: an rsync re-run of a large tree would stat
// every file through the daemon again.
constexpr double kItemTimeout = 3600.0;
constexpr auto kWatchPeriod = std::chrono::seconds(1);

// Growth of the free bytes in malloc's arenas that makes the daemon give
// the free pages back to the system (see give_back_memory).
constexpr size_t kTrimStep = size_t(8) << 20;

// The longest name of a file or directory, as statfs says (NAME_MAX).
constexpr size_t kNameMax = 255;

bool ends_with_json(std::string_view name) { return name.size() > 5 && name.substr(name.size() - 5) == ".json"; }

enum class Kind : uint8_t { kItem, kScratch, kShard };

// The name a node stands under when the store does not know it: a pending
// item's id (in its shard), a scratch file's directory and name, a shard's
// name. Never changed once made, so copies of a node share it.
struct NodeName {
  std::string dir;  // the shard ("" = items/) a scratch file or pending item lives in
  std::string name;
};

// One per inode the kernel holds (or that has an open body). There is one of
// these for every item the kernel has looked up, so it is kept small: a
// committed item is known by item_ino alone (its id is the store's), with
// no name of its own; a node the kernel moved onto an item by rename stands
// for that item wherever it goes next.
struct Node {
  Kind kind = Kind::kItem;
  bool pending = false;  // an item created but never committed
  bool unlinked = false;
  // The kernel's page cache of this node is shared by every opener. It is
  // only trusted (keep_cache) when it holds one committed version: readers
  // of an older version still open could fetch old pages into it.
  bool cache_valid = false;
  int open_handles = 0;
  uint64_t lookups = 0;
  int64_t item_ino = 0;  // the store's ino of a committed item
  std::shared_ptr<const NodeName> where;  // null for a committed item
  std::shared_ptr<FileState> state;
  store::Sha256 cached_sha{};  // the version the page cache holds
  uint64_t commits = 0;     // committed versions seen through this node
  int current_readers = 0;  // cached readers opened at `commits`
  int stale_readers = 0;    // cached readers of an older version

  const std::string& name() const { return where ? where->name : no_name(); }
  const std::string& dir() const { return where ? where->dir : no_name(); }
  void name_as(std::string dir, std::string name) {
    where = std::make_shared<const NodeName>(NodeName{std::move(dir), std::move(name)});
  }
  static const std::string& no_name() {
    static const std::string empty;
    return empty;
  }
};

// Open handles by number. A request holds its handle by a shared_ptr, so
// that a release racing an interrupted read (the kernel sends it as soon as
// the caller gives up) cannot free the handle under the read.
class HandleTable {
 public:
  uint64_t add(std::unique_ptr<Handle> handle) {
    std::lock_guard lock(mutex_);
    uint64_t id = next_++;
    handles_.emplace(id, std::shared_ptr<Handle>(std::move(handle)));
    return id;
  }
  std::shared_ptr<Handle> get(uint64_t id) {
    std::lock_guard lock(mutex_);
    auto it = handles_.find(id);
    return it == handles_.end() ? nullptr : it->second;
  }
  std::shared_ptr<Handle> take(uint64_t id) {
    std::lock_guard lock(mutex_);
    auto it = handles_.find(id);
    if (it == handles_.end()) return nullptr;
    auto handle = std::move(it->second);
    handles_.erase(it);
    return handle;
  }

 private:
  std::mutex mutex_;
  uint64_t next_ = 1;
  std::unordered_map<uint64_t, std::shared_ptr<Handle>> handles_;
};

HandleTable& handles() {
  static HandleTable table;
  return table;
}

std::shared_ptr<Handle> handle_of(fuse_file_info* fi) {
  auto handle = handles().get(fi->fh);
  if (!handle) throw store::StoreError(EBADF, "no such open file");
  return handle;
}

class Filesystem;
struct Holder {
  std::unique_ptr<Filesystem> fs;
};
Filesystem* self(fuse_req_t req) { return static_cast<Holder*>(fuse_req_userdata(req))->fs.get(); }

struct Counters {
  std::atomic<uint64_t> lookups{0}, opens{0}, reads{0}, writes{0}, commits{0}, commits_refused{0}, creates{0},
      unlinks{0}, renames{0}, readdirs{0};
};

class Filesystem : public Tree {
 public:
  Filesystem(store::Store& store, const MountConfig& config)
      : store_(store), config_(config), staging_dir_(config.store_dir / "staging") {
    // Staged bodies are items' text: the store's owner's alone, as the store
    // is. A read-only mount stages nothing (the kernel refuses every write).
    if (!store.options().read_only && ::mkdir(staging_dir_.c_str(), 0700) != 0 && errno != EEXIST)
      throw store::StoreError(errno, "cannot create " + staging_dir_.string() + ": " + std::strerror(errno));
    staging_ = std::make_shared<StagingPool>(staging_dir_);
    std::string error;
    if (!log_.use_file(config.log_file.empty() ? config.store_dir / "log" : config.log_file, config.log_max_bytes,
                       &error))
      log_.add("warning: " + error + "; MNT/log holds this mount's last events only");
    if (std::string warning = store::permissions_warning(config.store_dir); !warning.empty())
      log_.add("warning: " + warning);
  }

  ~Filesystem() override {
    stop_watcher();
    stop_invalidator();
  }

  EventLog& log() override { return log_; }

  // The kernel caches attributes and pages; when what it holds is no longer
  // true (a refused write, a restore) it is told so from this thread, never
  // from inside a request for the same inode, where libfuse warns of deadlock.
  void invalidate_inode(fuse_ino_t ino) override {
    std::lock_guard lock(inval_mutex_);
    inval_queue_.push_back({ino, ""});
    ++inval_pending_[ino];
    inval_cv_.notify_one();
  }
  // Whether the kernel has yet to hear that what it caches of `ino` (its
  // size above all) is stale. A reader opened meanwhile must not trust it.
  bool invalidation_pending(fuse_ino_t ino) {
    std::lock_guard lock(inval_mutex_);
    return inval_pending_.count(ino) > 0;
  }
  void invalidate_entry(fuse_ino_t parent, const std::string& name) override {
    std::lock_guard lock(inval_mutex_);
    inval_queue_.push_back({parent, name});
    inval_cv_.notify_one();
  }
  void start_invalidator() {
    inval_thread_ = std::thread([this] {
      std::unique_lock lock(inval_mutex_);
      while (true) {
        inval_cv_.wait(lock, [&] { return inval_stop_ || !inval_queue_.empty(); });
        if (inval_queue_.empty()) return;
        auto [ino, name] = inval_queue_.front();
        inval_queue_.pop_front();
        inval_busy_ = true;
        lock.unlock();
        if (name.empty())
          fuse_lowlevel_notify_inval_inode(session_, ino, 0, 0);
        else
          fuse_lowlevel_notify_inval_entry(session_, ino, name.c_str(), name.size());
        lock.lock();
        if (name.empty())
          if (auto p = inval_pending_.find(ino); p != inval_pending_.end() && --p->second == 0) inval_pending_.erase(p);
        inval_busy_ = false;
        if (inval_queue_.empty()) inval_drained_.notify_all();
      }
    });
  }

  // Waits (a bounded time) until the kernel has heard every invalidation
  // queued so far, so that a command such as a restore returns only once
  // what the kernel caches is true again. Never called from the thread
  // that sends them, nor while handling a request on an invalidated inode.
  void wait_for_invalidations(std::chrono::milliseconds at_most = std::chrono::seconds(10)) {
    std::unique_lock lock(inval_mutex_);
    inval_drained_.wait_for(lock, at_most,
                            [&] { return inval_stop_ || (inval_queue_.empty() && !inval_busy_); });
  }
  void stop_invalidator() {
    {
      std::lock_guard lock(inval_mutex_);
      inval_stop_ = true;
      inval_queue_.clear();
      inval_pending_.clear();
      inval_cv_.notify_one();
      inval_drained_.notify_all();
    }
    if (inval_thread_.joinable()) inval_thread_.join();
  }
  // Another process writing the store (an `itemfs import`, a second
  // mount) changes items behind the kernel's back. Which ones is not known
  // here, so everything the kernel may hold of items/ is dropped: shard
  // dentries (the kernel prunes their children with them), the listings
  // and attributes of shards, and the attributes and pages of every item
  // node it knows.
  void start_watcher() {
    store_.changed_by_others();  // the baseline
    watch_thread_ = std::thread([this] {
      std::unique_lock lock(watch_mutex_);
      while (!watch_cv_.wait_for(lock, kWatchPeriod, [&] { return watch_stop_; })) {
        lock.unlock();
        try {
          if (store_.changed_by_others()) invalidate_items_tree();
        } catch (const std::exception& e) {
          log().add("store watcher: " + std::string(e.what()));
        }
        give_back_memory();
        lock.lock();
      }
    });
  }
  // Memory freed stays in malloc's arenas, and resident: glibc gives back
  // only the top of a heap, never the free chunks between live ones. After
  // an `rm -rf` of 100k items (the kernel forgets their inodes, and their
  // nodes go) the arenas held 95 MB of which 45 were in use, the daemon
  // stayed at 95 MiB, and the `rsync` in after it grew from there to 105
  // (creating, writing and renaming 100k files frees as much as it takes).
  // So once a period, when the arenas' free bytes have grown by kTrimStep
  // since their lowest point since the last trim (memory freed since, which
  // may be resident), all their free pages go back to the system. Looking
  // costs a walk of malloc's free lists (mallinfo2: a few milliseconds with
  // 30k free chunks), so an idle daemon does not look. Called from the
  // watcher's thread only.
  void give_back_memory() {
    uint64_t ops = counters_.lookups + counters_.opens + counters_.writes + counters_.unlinks + counters_.renames +
                   counters_.readdirs;
    if (ops == ops_seen_) return;
    ops_seen_ = ops;
    size_t free_bytes = mallinfo2().fordblks;
    free_low_ = std::min(free_low_, free_bytes);
    if (free_bytes < free_low_ + kTrimStep) return;
    malloc_trim(0);
    free_low_ = mallinfo2().fordblks;
  }
  void stop_watcher() {
    {
      std::lock_guard lock(watch_mutex_);
      watch_stop_ = true;
      watch_cv_.notify_one();
    }
    if (watch_thread_.joinable()) watch_thread_.join();
  }
  void invalidate_items_tree() {
    std::vector<fuse_ino_t> inodes;
    {
      std::lock_guard lock(mutex_);
      for (const auto& [ino, node] : nodes_)
        if (node.kind == Kind::kShard || (node.kind == Kind::kItem && !node.pending)) inodes.push_back(ino);
    }
    for (const auto& d : store_.list_dirs()) invalidate_entry(kItemsIno, d.name);
    invalidate_inode(kItemsIno);
    for (fuse_ino_t ino : inodes) invalidate_inode(ino);
  }

  store::Store& store() override { return store_; }
  void set_session(fuse_session* session) { session_ = session; }

  // ---- attributes ------------------------------------------------------

  static struct stat stat_of(fuse_ino_t ino, uint32_t mode, uint64_t size, uint32_t uid, uint32_t gid, int64_t mtime,
                             int64_t ctime) {
    struct stat st {};
    st.st_ino = ino;
    st.st_mode = mode;
    st.st_nlink = S_ISDIR(mode) ? 2 : 1;
    st.st_size = off_t(size);
    st.st_uid = uid;
    st.st_gid = gid;
    st.st_blksize = 4096;
    st.st_blocks = blkcnt_t((size + 511) / 512);
    st.st_mtim = to_timespec(mtime);
    st.st_atim = st.st_mtim;
    st.st_ctim = to_timespec(ctime ? ctime : mtime);
    return st;
  }

  struct stat virtual_stat(fuse_ino_t ino) {
    uint32_t mode = S_IFREG | 0444;
    if (ino == kRootIno || ino == kSearchIno || ino == kBackupsIno) mode = S_IFDIR | 0755;
    if (ino == kCtlIno) mode = S_IFREG | 0600;  // reads as empty, so `rsync -a MNT/backups/` works
    if (ino == kLogIno) mode = S_IFREG | 0400;
    if (ino == kBackupsIno) mode = S_IFDIR | backup_perm(true);
    if (ino == kStatusIno) mode = S_IFREG | backup_perm(false);
    gid_t gid = ino == kBackupsIno || ino == kStatusIno ? backup_gid() : getgid();
    // The log's size is its file's, so that `tail -f` sees it grow.
    uint64_t size = ino == kLogIno ? log_.size() : 0;
    return stat_of(ino, mode, size, getuid(), gid, mount_time_, mount_time_);
  }

  // Attributes of a node; ENOENT when what it names is gone.
  int node_stat(fuse_ino_t ino, struct stat& st) {
    if (ino < kItemBase && ino != kItemsIno) {
      if (is_virtual(ino)) {
        st = virtual_stat(ino);
        return 0;
      }
      return extra_stat(ino, st);
    }
    if (ino == kItemsIno) {
      auto dir = store_.dir_info("");
      if (!dir) return ENOENT;
      st = stat_of(ino, dir->attrs.mode, 0, dir->attrs.uid, dir->attrs.gid, dir->attrs.mtime_ns, dir->ctime_ns);
      return 0;
    }
    Node copy;
    std::shared_ptr<FileState> state;
    std::optional<struct stat> gone;
    {
      std::lock_guard lock(mutex_);
      auto it = nodes_.find(ino);
      if (it == nodes_.end()) return extra_stat(ino, st);
      copy = it->second;
      state = copy.state;
      if (copy.unlinked)
        if (auto g = unlinked_open_.find(ino); g != unlinked_open_.end()) gone = g->second;
    }
    // Removed while open (as on ext4, fstat of the open file still works,
    // with no link left).
    if (state) {
      std::lock_guard lock(state->mutex);
      st = stat_of(st_ino_of(copy, ino), state->attrs.mode, state->size, state->attrs.uid, state->attrs.gid,
                   state->attrs.mtime_ns, state->ctime_ns);
      if (copy.unlinked) st.st_nlink = 0;
      return 0;
    }
    if (gone) {
      st = *gone;
      return 0;
    }
    if (copy.kind == Kind::kShard) {
      auto dir = store_.dir_info(copy.name());
      if (!dir) return ENOENT;
      st = stat_of(ino, dir->attrs.mode, 0, dir->attrs.uid, dir->attrs.gid, dir->attrs.mtime_ns, dir->ctime_ns);
      return 0;
    }
    if (copy.kind == Kind::kItem && !copy.pending) {
      auto item = store_.item_by_ino(copy.item_ino);
      if (!item) return ENOENT;
      st = item_stat(*item);
      return 0;
    }
    return ENOENT;
  }

  static fuse_ino_t st_ino_of(const Node& node, fuse_ino_t nodeid) {
    return node.kind == Kind::kItem && node.item_ino ? kItemBase + fuse_ino_t(node.item_ino) : nodeid;
  }

  static struct stat item_stat(const store::ItemInfo& item) {
    return stat_of(kItemBase + fuse_ino_t(item.ino), item.attrs.mode, item.size, item.attrs.uid, item.attrs.gid,
                   item.attrs.mtime_ns, item.ctime_ns);
  }

  static bool is_items_dir(fuse_ino_t ino) { return ino == kItemsIno || (ino >= kDirBase && ino < kDynBase); }

  // The store moved the times of `shard` (and of items/ with it).
  void invalidate_shard(const std::string& shard) {
    if (auto dir = store_.dir_info(shard)) invalidate_inode(kDirBase + fuse_ino_t(dir->ino));
    invalidate_inode(kItemsIno);
  }

  static bool is_virtual(fuse_ino_t ino) {
    return ino == kRootIno || ino == kSearchIno || ino == kBackupsIno || ino == kStatsIno || ino == kLogIno ||
           ino == kCtlIno || ino == kStatusIno;
  }

  // ---- the node table --------------------------------------------------

  static Node shard_node(const std::string& name) {
    Node node{.kind = Kind::kShard};
    node.name_as("", name);
    return node;
  }

  // Registers one more kernel reference to `ino`, creating the node.
  void remember(fuse_ino_t ino, const Node& like) {
    std::lock_guard lock(mutex_);
    auto [it, fresh] = nodes_.try_emplace(ino, like);
    // A committed item's node needs no name; a lookup that found a pending
    // node committed meanwhile (item_ino 0 here) leaves it as its commit made it.
    if (!fresh && it->second.kind == Kind::kItem && like.kind == Kind::kItem && !it->second.pending &&
        like.item_ino) {
      it->second.item_ino = like.item_ino;
      it->second.where.reset();
    }
    ++it->second.lookups;
  }

  void forget_node(fuse_ino_t ino, uint64_t count) {
    std::lock_guard lock(mutex_);
    auto it = nodes_.find(ino);
    if (it == nodes_.end()) return;
    it->second.lookups = it->second.lookups > count ? it->second.lookups - count : 0;
    maybe_drop(it);
  }

  // Caller holds mutex_.
  void maybe_drop(std::unordered_map<fuse_ino_t, Node>::iterator it) {
    Node& node = it->second;
    if (node.lookups > 0 || node.open_handles > 0) return;
    if (node.kind == Kind::kScratch && !node.unlinked) return;  // its body lives only here
    if (node.kind == Kind::kItem && node.pending && !node.unlinked) {
      auto p = pending_.find(node.name());
      if (p != pending_.end() && p->second == it->first) pending_.erase(p);
    }
    if (node.kind == Kind::kItem) forget_alias(node.item_ino, it->first);
    if (!unlinked_open_.empty()) unlinked_open_.erase(it->first);
    nodes_.erase(it);
  }

  // Caller holds mutex_.
  void forget_alias(int64_t item_ino, fuse_ino_t nodeid) {
    auto [from, to] = aliases_.equal_range(item_ino);
    for (auto a = from; a != to; ++a)
      if (a->second == nodeid) {
        aliases_.erase(a);
        return;
      }
  }

  // Caller holds mutex_. Makes node `nodeid` stand for committed item `ino`.
  void bind_to_item(fuse_ino_t nodeid, Node& node, int64_t ino) {
    if (node.kind == Kind::kItem && node.item_ino && node.item_ino != ino) forget_alias(node.item_ino, nodeid);
    node.kind = Kind::kItem;
    node.pending = false;
    node.item_ino = ino;
    node.where.reset();  // the store knows its id
    if (nodeid != kItemBase + fuse_ino_t(ino)) {
      forget_alias(ino, nodeid);
      aliases_.emplace(ino, nodeid);
    }
  }

  // Caller holds mutex_. Every node the kernel may use for item `ino`.
  std::vector<fuse_ino_t> nodes_of_item(int64_t ino) {
    std::vector<fuse_ino_t> out;
    if (nodes_.count(kItemBase + fuse_ino_t(ino))) out.push_back(kItemBase + fuse_ino_t(ino));
    auto [from, to] = aliases_.equal_range(ino);
    for (auto a = from; a != to; ++a) out.push_back(a->second);
    return out;
  }

  // A committed item's node of `ino`, with any open body it has.
  std::shared_ptr<FileState> body_of_item(int64_t ino) {
    std::lock_guard lock(mutex_);
    for (fuse_ino_t n : nodes_of_item(ino))
      if (auto it = nodes_.find(n); it != nodes_.end() && it->second.state) return it->second.state;
    return nullptr;
  }

  fuse_entry_param entry_for(fuse_ino_t ino, const struct stat& st, double timeout) {
    fuse_entry_param e{};
    e.ino = ino;
    e.attr = st;
    // A shard's times move when an item in it is committed, which is not a
    // directory operation the kernel sees: every such commit invalidates the
    // shard (invalidate_shard), since rsync compares directory times.
    e.attr_timeout = is_items_dir(ino) ? std::min(timeout, kItemTimeout) : timeout;
    e.entry_timeout = timeout;
    return e;
  }

  // What a name under items/ refers to. `dir` is "" for items/ itself.
  struct Resolved {
    enum { kNone, kItem, kScratch, kShard, kBadItemName } what = kNone;
    std::string id;   // kItem: the item id
    int error = 0;    // kBadItemName: the errno
    std::string why;  // kBadItemName: the reason, for the log
  };

  Resolved classify(const std::string& dir, const std::string& name) {
    Resolved r;
    if (ends_with_json(name)) {
      r.id = name.substr(0, name.size() - 5);
      Status valid = store::check_id(r.id);
      if (!valid.ok()) {
        r.what = Resolved::kBadItemName;
        r.error = valid.code;
        r.why = valid.message;
      } else if (!dir.empty() && store::shard_of(r.id) != dir) {
        r.what = Resolved::kBadItemName;
        r.error = EINVAL;
        r.why = "an item belongs in the shard of its first two characters (" + store::shard_of(r.id) + ")";
      } else {
        r.what = Resolved::kItem;
      }
      return r;
    }
    r.what = dir.empty() && store::shard_of(name) == name && name.size() <= 8 ? Resolved::kShard : Resolved::kScratch;
    return r;
  }

  // The node currently standing for item `id`, or 0 if none exists.
  fuse_ino_t find_item(const std::string& id, struct stat& st) {
    {
      std::lock_guard lock(mutex_);
      if (auto p = pending_.find(id); p != pending_.end()) {
        Node& node = nodes_.at(p->second);
        std::lock_guard state_lock(node.state->mutex);
        st = stat_of(p->second, node.state->attrs.mode, node.state->size, node.state->attrs.uid, node.state->attrs.gid,
                     node.state->attrs.mtime_ns, node.state->ctime_ns);
        return p->second;
      }
    }
    auto item = store_.item(id);
    if (!item) return 0;
    fuse_ino_t ino = kItemBase + fuse_ino_t(item->ino);
    st = item_stat(*item);
    {
      std::lock_guard lock(mutex_);
      auto it = nodes_.find(ino);
      if (it != nodes_.end() && it->second.state) {
        std::lock_guard state_lock(it->second.state->mutex);
        st.st_size = off_t(it->second.state->size);
        st.st_mode = it->second.state->attrs.mode;
        st.st_mtim = to_timespec(it->second.state->attrs.mtime_ns);
      }
    }
    return ino;
  }

  fuse_ino_t find_scratch(const std::string& dir, const std::string& name) {
    std::lock_guard lock(mutex_);
    auto it = scratch_.find({dir, name});
    return it == scratch_.end() ? 0 : it->second;
  }

  // Directory ("" = items/) of a parent inode, or nullopt if it is not one.
  std::optional<std::string> items_dir_of(fuse_ino_t parent) {
    if (parent == kItemsIno) return std::string();
    std::lock_guard lock(mutex_);
    auto it = nodes_.find(parent);
    if (it == nodes_.end() || it->second.kind != Kind::kShard) return std::nullopt;
    return it->second.name();
  }

  // ---- operations ------------------------------------------------------

  void lookup(fuse_req_t req, fuse_ino_t parent, const char* raw_name) {
    ++counters_.lookups;
    std::string name(raw_name);
    if (parent == kRootIno) {
      static const std::map<std::string, fuse_ino_t> kTop = {{"items", kItemsIno},
                                                             {"search", kSearchIno},
                                                             {"backups", kBackupsIno},
                                                             {"stats.json", kStatsIno},
                                                             {"log", kLogIno}};
      auto it = kTop.find(name);
      if (it == kTop.end()) return (void)fuse_reply_err(req, ENOENT);
      struct stat st;
      if (int err = node_stat(it->second, st)) return (void)fuse_reply_err(req, err);
      auto e = entry_for(it->second, st, 3600);
      if (it->second == kLogIno) e.attr_timeout = 0;  // it grows
      return (void)fuse_reply_entry(req, &e);
    }
    if (parent == kBackupsIno && (name == "ctl" || name == "status")) {
      fuse_ino_t ino = name == "ctl" ? kCtlIno : kStatusIno;
      auto e = entry_for(ino, virtual_stat(ino), 3600);
      return (void)fuse_reply_entry(req, &e);
    }
    auto dir = items_dir_of(parent);
    if (!dir) {
      fuse_entry_param e{};
      int err = extra_lookup(parent, name, e, req);
      if (err) return (void)fuse_reply_err(req, err);
      return (void)fuse_reply_entry(req, &e);
    }
    if (name.size() > kNameMax) return (void)fuse_reply_err(req, ENAMETOOLONG);
    Resolved r = classify(*dir, name);
    struct stat st {};
    fuse_ino_t ino = 0;
    double timeout = kItemTimeout;
    Node like;
    switch (r.what) {
      case Resolved::kItem:
        ino = find_item(r.id, st);
        like.kind = Kind::kItem;
        like.item_ino = ino >= kItemBase && ino < kDirBase ? int64_t(ino - kItemBase) : 0;
        // A flat name (items/<id>.json) is an alias the kernel must not keep.
        if (dir->empty()) timeout = 0;
        break;
      case Resolved::kShard:
        if (auto info = store_.dir_info(name)) {
          ino = kDirBase + fuse_ino_t(info->ino);
          st =
              stat_of(ino, info->attrs.mode, 0, info->attrs.uid, info->attrs.gid, info->attrs.mtime_ns, info->ctime_ns);
          like.kind = Kind::kShard;
          like.name_as("", name);
          break;
        }
        [[fallthrough]];
      case Resolved::kScratch:
        ino = find_scratch(*dir, name);
        if (ino && node_stat(ino, st) != 0) ino = 0;
        like.kind = Kind::kScratch;
        break;
      default:
        break;
    }
    if (!ino) return (void)fuse_reply_err(req, ENOENT);
    remember(ino, like);
    auto e = entry_for(ino, st, timeout);
    fuse_reply_entry(req, &e);
  }

  void forget(fuse_ino_t ino, uint64_t n) {
    if (is_tree_ino(ino))
      extra_forget(ino, n);
    else
      forget_node(ino, n);
  }

  void getattr(fuse_req_t req, fuse_ino_t ino) {
    struct stat st;
    if (int err = node_stat(ino, st)) return (void)fuse_reply_err(req, err);
    double timeout = is_items_dir(ino)     ? kItemTimeout
                     : S_ISDIR(st.st_mode) ? (is_virtual(ino) ? 3600 : 0)
                     : is_tree_ino(ino)    ? 0
                     : ino >= kItemBase    ? kItemTimeout
                     : ino == kLogIno      ? 0
                                           : (is_virtual(ino) ? 3600 : 0);
    fuse_reply_attr(req, &st, timeout);
  }

  Attrs apply_setattr(Attrs attrs, const struct stat* attr, int to_set) {
    if (to_set & FUSE_SET_ATTR_MODE) attrs.mode = (attrs.mode & S_IFMT) | (attr->st_mode & 07777);
    if (to_set & FUSE_SET_ATTR_UID) attrs.uid = attr->st_uid;
    if (to_set & FUSE_SET_ATTR_GID) attrs.gid = attr->st_gid;
    if (to_set & FUSE_SET_ATTR_MTIME) attrs.mtime_ns = from_timespec(attr->st_mtim);
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) attrs.mtime_ns = now_ns();
    return attrs;
  }

  void setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
    int err = do_setattr(ino, attr, to_set);
    if (err) return (void)fuse_reply_err(req, err);
    getattr(req, ino);
  }

  int do_setattr(fuse_ino_t ino, struct stat* attr, int to_set) {
    if (ino == kItemsIno || (ino >= kDirBase && ino < kDynBase)) {
      if (to_set & FUSE_SET_ATTR_SIZE) return EISDIR;
      std::string shard;
      if (ino != kItemsIno) {
        std::lock_guard lock(mutex_);
        auto it = nodes_.find(ino);
        if (it == nodes_.end()) return ENOENT;
        shard = it->second.name();
      }
      auto dir = store_.dir_info(shard);
      if (!dir) return ENOENT;
      Attrs attrs = apply_setattr(dir->attrs, attr, to_set);
      return write_status([&](store::WriteBatch& b) { return b.set_dir_attrs(shard, attrs); });
    }
    std::shared_ptr<FileState> state;
    Node copy;
    {
      std::lock_guard lock(mutex_);
      auto it = nodes_.find(ino);
      if (it == nodes_.end()) return is_virtual(ino) ? EPERM : ENOENT;
      copy = it->second;
      state = copy.state;
    }
    if (copy.kind == Kind::kShard) return EPERM;
    bool size_change = to_set & FUSE_SET_ATTR_SIZE;
    if (!state && copy.kind == Kind::kItem && size_change) {
      // truncate(2) by path with nobody writing: stage, cut, commit now.
      int err = 0;
      state = stage_item(ino, false, err);
      if (!state) return err;
      {
        std::lock_guard body(state->body);
        std::lock_guard lock(state->mutex);
        if (ftruncate(state->fd, off_t(attr->st_size)) != 0) err = errno;
        state->size = uint64_t(attr->st_size);
        state->attrs = apply_setattr(state->attrs, attr, to_set & ~FUSE_SET_ATTR_SIZE);
        state->attrs.mtime_ns =
            (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) ? state->attrs.mtime_ns : now_ns();
        state->dirty = true;
        ++state->version;
      }
      if (!err) err = commit(ino, true);
      unstage(ino, state);
      return err;
    }
    store::Attrs staged_attrs;
    if (state) {
      std::lock_guard body(state->body);
      std::lock_guard lock(state->mutex);
      if (size_change) {
        if (copy.kind == Kind::kItem && uint64_t(attr->st_size) > store_.options().max_item_size) return EFBIG;
        if (ftruncate(state->fd, off_t(attr->st_size)) != 0) return errno;
        state->size = uint64_t(attr->st_size);
        state->dirty = true;
        ++state->version;
        state->emptied_by_open = false;
        if (!(to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))) state->attrs.mtime_ns = now_ns();
      }
      state->attrs = apply_setattr(state->attrs, attr, to_set);
      state->ctime_ns = now_ns();
      // A body not yet committed carries its attributes to the commit: if
      // that commit is refused, the store keeps the old times and mode too.
      if (copy.kind == Kind::kScratch || copy.pending || state->dirty) return 0;
      staged_attrs = state->attrs;
    }
    if (copy.kind == Kind::kItem && (to_set & ~FUSE_SET_ATTR_SIZE)) {
      auto item = store_.item_by_ino(copy.item_ino);
      if (!item) return ENOENT;
      Attrs attrs = state ? staged_attrs : apply_setattr(item->attrs, attr, to_set);
      return write_status([&](store::WriteBatch& b) { return b.set_attrs(item->id, attrs); });
    }
    return 0;
  }

  // Runs one store call in its own transaction and maps failures to errno.
  int write_status(const std::function<Status(store::WriteBatch&)>& fn, std::string* message = nullptr) {
    Status status;
    try {
      store_.write([&](store::WriteBatch& batch) { status = fn(batch); });
    } catch (const store::StoreError& e) {
      status = Status::error(e.code(), e.what());
    } catch (const std::exception& e) {
      status = Status::error(EIO, e.what());
    }
    if (message) *message = status.message;
    // Refusals (EINVAL, EFBIG, ...) are logged by the caller, which knows
    // the file; what is left here is the store failing.
    if (!status.ok() && (status.code == EIO || status.code == ENOSPC || status.code == ENOMEM))
      log_.add("error: " + status.message);
    return status.code;
  }

  // A staging body holding item `item`'s content (empty if `truncate`).
  std::shared_ptr<FileState> body_from_store(const store::ItemInfo& item, bool truncate, int& err) {
    auto state = std::make_shared<FileState>();
    state->pool = staging_;
    state->fd = staging_->take();
    if (state->fd < 0) {
      err = -state->fd;
      return nullptr;
    }
    state->attrs = item.attrs;
    state->ctime_ns = item.ctime_ns;
    if (truncate) return state;
    auto reader = store_.open_item(item);
    if (!reader) {
      err = ESTALE;
      return nullptr;
    }
    std::string piece;
    for (uint64_t offset = 0; offset < item.size; offset += piece.size()) {
      Status s = reader->pread(offset, store::kChunkSize, piece);
      if (!s.ok() || piece.empty()) {
        err = s.ok() ? EIO : s.code;
        return nullptr;
      }
      if (pwrite(state->fd, piece.data(), piece.size(), off_t(offset)) != ssize_t(piece.size())) {
        err = errno ? errno : EIO;
        return nullptr;
      }
    }
    state->size = item.size;
    return state;
  }

  // Gives item node `ino` a staging body holding its committed content
  // (empty if `truncate`), counting the caller as one more writer of it, so
  // that no release can drop the body between here and the caller's write.
  // Returns the state, or null with `err` set.
  std::shared_ptr<FileState> stage_item(fuse_ino_t ino, bool truncate, int& err) {
    int64_t item_ino;
    {
      std::lock_guard lock(mutex_);
      auto it = nodes_.find(ino);
      if (it == nodes_.end() || it->second.unlinked) {
        err = ENOENT;
        return nullptr;
      }
      if (auto& state = it->second.state) {
        std::lock_guard state_lock(state->mutex);
        ++state->writers;
        return state;
      }
      item_ino = it->second.item_ino;
    }
    auto item = store_.item_by_ino(item_ino);
    if (!item) {
      err = ENOENT;
      return nullptr;
    }
    auto state = body_from_store(*item, truncate, err);
    if (!state) return nullptr;
    std::lock_guard lock(mutex_);
    auto it = nodes_.find(ino);
    if (it == nodes_.end()) {
      err = ENOENT;
      return nullptr;
    }
    if (!it->second.state) it->second.state = state;
    std::lock_guard state_lock(it->second.state->mutex);
    ++it->second.state->writers;
    return it->second.state;
  }

  // Drops a writer of node `ino`'s body; the body goes when nobody writes it
  // (a pending item keeps it: it is all there is of the item). One never committed
  // (refused, superseded) may have reached the kernel as a size: until the
  // state is dropped here a getattr answers with its size, which the kernel
  // keeps for kItemTimeout. So the kernel is told to forget it only now, in
  // the same critical section: an open that no longer sees the state sees
  // the invalidation pending and bypasses the kernel's size.
  void unstage(fuse_ino_t ino, const std::shared_ptr<FileState>& state) {
    std::lock_guard lock(mutex_);
    bool idle, uncommitted;
    {
      std::lock_guard state_lock(state->mutex);
      idle = --state->writers == 0;
      uncommitted = state->dirty;
    }
    auto it = nodes_.find(ino);
    if (!idle || it == nodes_.end() || it->second.state != state || it->second.kind != Kind::kItem) return;
    if (it->second.pending && !it->second.unlinked) return;
    it->second.state.reset();
    if (uncommitted) {
      it->second.cache_valid = false;
      invalidate_inode(ino);
    }
  }

  // The path a user knows node `ino` by, for the log.
  std::string node_path(fuse_ino_t ino) {
    int64_t item_ino = 0;
    {
      std::lock_guard lock(mutex_);
      auto it = nodes_.find(ino);
      if (it == nodes_.end()) return "a removed file";
      const Node& node = it->second;
      if (node.kind == Kind::kItem && (node.pending || !node.item_ino)) return item_path(node.name());
      if (node.kind != Kind::kItem) return "items/" + (node.dir().empty() ? "" : node.dir() + "/") + node.name();
      item_ino = node.item_ino;
    }
    auto item = store_.item_by_ino(item_ino);  // a committed item's id is the store's
    return item ? item_path(item->id) : "a removed file";
  }

  std::string item_path(const std::string& id) { return "items/" + store::shard_of(id) + "/" + id + ".json"; }

  // Commits the staged body of item node `ino`. `final` is the last chance
  // (release, fsync, truncate): an empty body is refused then, not deferred.
  int commit(fuse_ino_t ino, bool final) {
    std::lock_guard ns(namespace_mutex_);
    return commit_locked(ino, final);
  }

  // commit() for a caller that holds namespace_mutex_.
  int commit_locked(fuse_ino_t ino, bool final) {
    std::shared_ptr<FileState> state;
    std::string id;
    bool pending;
    int64_t item_ino;
    {
      std::lock_guard lock(mutex_);
      auto it = nodes_.find(ino);
      if (it == nodes_.end() || it->second.kind != Kind::kItem || it->second.unlinked || !it->second.state) return 0;
      state = it->second.state;
      id = it->second.name();
      pending = it->second.pending;
      item_ino = it->second.item_ino;
    }
    if (!pending) {
      // Renamed meanwhile under another of its nodes, or removed: the
      // store's id is the truth, and a removed item's writes go nowhere.
      auto current = store_.item_by_ino(item_ino);
      if (!current) return 0;
      id = current->id;
    }
    std::lock_guard body(state->body);
    uint64_t size, version;
    store::Attrs attrs;
    {
      std::lock_guard state_lock(state->mutex);
      if (!state->dirty) return 0;
      // An empty body may still be filled through another copy of the fd.
      if (state->size == 0 && state->emptied_by_open && !final) return 0;
      if (state->refused_version == state->version) return state->refused_error;
      size = state->size;
      version = state->version;
      attrs = state->attrs;
    }
    FdStreamBuf buf(state->fd, size);
    std::istream in(&buf);
    std::string message;
    store::ItemInfo stored;
    int err = write_status([&](store::WriteBatch& batch) { return batch.put(id, in, attrs, &stored); }, &message);
    if (err) {
      {
        std::lock_guard state_lock(state->mutex);
        state->refused_version = version;
        state->refused_error = err;
      }
      forget_cached(ino);
      ++counters_.commits_refused;
      log_.add("refused " + item_path(id) + ": " + message + (err == EINVAL ? " (the previous version is kept)" : ""));
      return err;
    }
    ++counters_.commits;
    std::optional<store::ItemInfo> committed = stored;
    if (pending) invalidate_shard(store::shard_of(id));
    {
      std::lock_guard state_lock(state->mutex);
      if (state->version == version) state->dirty = false;
    }
    std::lock_guard lock(mutex_);
    auto it = nodes_.find(ino);
    if (it != nodes_.end() && committed) {
      Node& node = it->second;
      if (node.pending) {
        auto p = pending_.find(id);
        if (p != pending_.end() && p->second == ino) pending_.erase(p);
      }
      bind_to_item(ino, node, committed->ino);
      // The page cache now holds the writer's pages, and maybe pages a reader
      // of the old version fetched meanwhile: none of it is to be trusted,
      // here or under the item's other nodes.
      for (fuse_ino_t other : nodes_of_item(committed->ino)) new_version_committed(other);
    }
    return 0;
  }

  // Caller holds mutex_. Readers open now read an older version from here
  // on; the kernel is told to drop its pages (from the queue's thread).
  void new_version_committed(fuse_ino_t ino) {
    Node& node = nodes_[ino];
    node.cache_valid = false;
    ++node.commits;
    node.stale_readers += node.current_readers;
    node.current_readers = 0;
    invalidate_inode(ino);
  }

  // The kernel may hold pages and a size of a body that was not committed.
  void forget_cached(fuse_ino_t ino) {
    {
      std::lock_guard lock(mutex_);
      if (auto it = nodes_.find(ino); it != nodes_.end()) it->second.cache_valid = false;
    }
    invalidate_inode(ino);
  }

  void open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    ++counters_.opens;
    bool writing = (fi->flags & O_ACCMODE) != O_RDONLY;
    auto handle = std::make_unique<Handle>();
    handle->ino = ino;
    if (is_virtual(ino) || ino < kItemBase) {
      int err = open_virtual(ino, writing, *handle);
      if (err) return (void)fuse_reply_err(req, err);
      fi->direct_io = 1;
      fi->noflush = !writing;
      fi->fh = handles().add(std::move(handle));
      return (void)fuse_reply_open(req, fi);
    }
    Node copy;
    bool tree = false;
    {
      std::lock_guard lock(mutex_);
      auto it = nodes_.find(ino);
      if (it == nodes_.end())
        tree = true;
      else
        copy = it->second;
    }
    if (tree) {
      if (int err = extra_open(ino, writing, *handle, fi, req)) return (void)fuse_reply_err(req, err);
      fi->fh = handles().add(std::move(handle));
      return (void)fuse_reply_open(req, fi);
    }
    if (copy.kind == Kind::kShard) return (void)fuse_reply_err(req, EISDIR);
    bool truncate = fi->flags & O_TRUNC;
    if (copy.kind == Kind::kScratch) {
      handle->state = copy.state;
      if (writing && truncate) {
        std::lock_guard body(copy.state->body);
        std::lock_guard lock(copy.state->mutex);
        if (ftruncate(copy.state->fd, 0) != 0) return (void)fuse_reply_err(req, errno);
        copy.state->size = 0;
        copy.state->attrs.mtime_ns = copy.state->ctime_ns = now_ns();
      }
    } else if (writing) {
      int err = 0;
      auto state = stage_item(ino, truncate, err);
      if (!state) return (void)fuse_reply_err(req, err);
      if (truncate && (err = truncate_for_open(*state)) != 0) {
        unstage(ino, state);
        return (void)fuse_reply_err(req, err);
      }
      handle->state = state;
      handle->writer = true;
      handle->generation = generation_of(*state);
    } else if (copy.state && copy.pending) {
      handle->state = copy.state;  // a new item has no other version yet
      fi->keep_cache = 0;
    } else {
      auto item = store_.item_by_ino(copy.item_ino);
      if (!item) return (void)fuse_reply_err(req, ENOENT);
      // Readers get the committed version, never a writer's staged body.
      // While someone writes the item in place (the kernel's size of the
      // file is the writer's) or a reader of an older version is still open
      // (it may fill the page cache with old pages), a reader bypasses the
      // page cache, so that it reads one committed version whole. So does
      // one opened before the kernel has dropped a size it was told (a
      // refused truncate, a restore): reads through the page cache stop at
      // the size the kernel holds.
      bool kernel_size_stale = invalidation_pending(ino);
      {
        std::lock_guard lock(mutex_);
        auto it = nodes_.find(ino);
        if (it != nodes_.end()) {
          Node& node = it->second;
          if (copy.state || node.stale_readers > 0 || kernel_size_stale) {
            fi->direct_io = 1;
            fi->keep_cache = 0;
          } else {
            fi->keep_cache = node.cache_valid && node.cached_sha == item->sha256;
            node.cached_sha = item->sha256;
            node.cache_valid = true;
            ++node.current_readers;
            handle->cached_reader_of = node.commits + 1;
          }
        }
      }
      // The first chunk is read now even when the kernel holds the pages:
      // should it drop some and ask again, they must come from the version
      // it cached, whatever a writer commits meanwhile.
      handle->reader = store_.open_item(*item);
      if (!handle->reader) return (void)fuse_reply_err(req, ESTALE);
      fi->noflush = 1;
    }
    {
      std::lock_guard lock(mutex_);
      auto it = nodes_.find(ino);
      if (it != nodes_.end()) ++it->second.open_handles;
    }
    fi->fh = handles().add(std::move(handle));
    fuse_reply_open(req, fi);
  }

  // open(O_TRUNC) of an item: empty the body, to be committed at close.
  int truncate_for_open(FileState& state) {
    std::lock_guard body(state.body);
    std::lock_guard lock(state.mutex);
    if (state.size != 0 && ftruncate(state.fd, 0) != 0) return errno;
    state.size = 0;
    state.dirty = true;
    ++state.version;
    ++state.generation;
    state.emptied_by_open = true;
    state.attrs.mtime_ns = now_ns();
    return 0;
  }

  static uint64_t generation_of(FileState& state) {
    std::lock_guard lock(state.mutex);
    return state.generation;
  }

  // A writer whose version another open(O_TRUNC) replaced: its writes and
  // its close fail with ESTALE, and nothing it wrote is committed, so that
  // two programs rewriting one item at once never leave a mix of the two.
  static bool superseded(const Handle& h) {
    return h.writer && h.state && generation_of(*h.state) != h.generation;
  }

  int open_virtual(fuse_ino_t ino, bool writing, Handle& handle) {
    if (ino == kCtlIno) return writing ? control_open() : 0;
    if (writing) return EACCES;
    if (ino == kStatsIno)
      handle.generated = stats_json();
    else if (ino == kLogIno)
      ;  // read as it grows (read())
    else if (ino == kStatusIno)
      handle.generated = backup_status();
    else
      return EISDIR;
    return 0;
  }

  std::string stats_json() {
    nlohmann::json j = fs::stats_json(store_.stats());
    j["operations"] = {{"lookups", counters_.lookups.load()}, {"opens", counters_.opens.load()},
                       {"reads", counters_.reads.load()},     {"writes", counters_.writes.load()},
                       {"commits", counters_.commits.load()}, {"commits_refused", counters_.commits_refused.load()},
                       {"creates", counters_.creates.load()}, {"unlinks", counters_.unlinks.load()},
                       {"renames", counters_.renames.load()}, {"readdirs", counters_.readdirs.load()}};
    extend_stats(j);
    return j.dump(2) + "\n";
  }

  void read(fuse_req_t req, size_t size, off_t off, fuse_file_info* fi) {
    ++counters_.reads;
    auto h = handle_of(fi);
    if (h->reader) {
      std::string out;
      Status s = h->reader->pread(uint64_t(off), size, out);
      // Damaged content (its bytes are not what its hash names) is never
      // handed out: the reader gets EIO, the log says which item.
      if (s.code == EIO) log_.add("error: reading " + node_path(h->ino) + ": " + s.message);
      if (!s.ok()) return (void)fuse_reply_err(req, s.code);
      return (void)fuse_reply_buf(req, out.data(), out.size());
    }
    if (h->state) {
      std::string out(size, '\0');
      ssize_t n = pread(h->state->fd, out.data(), size, off);
      if (n < 0) return (void)fuse_reply_err(req, errno);
      return (void)fuse_reply_buf(req, out.data(), size_t(n));
    }
    if (h->ino == kLogIno) {
      std::string out = log_.read(uint64_t(off), size);
      return (void)fuse_reply_buf(req, out.data(), out.size());
    }
    if (uint64_t(off) >= h->generated.size()) return (void)fuse_reply_buf(req, nullptr, 0);
    size_t n = std::min(size, h->generated.size() - size_t(off));
    fuse_reply_buf(req, h->generated.data() + off, n);
  }

  void write(fuse_req_t req, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
    ++counters_.writes;
    auto h = handle_of(fi);
    if (h->ino == kCtlIno) {
      int err = control_write(std::string_view(buf, size), *h);
      if (err) return (void)fuse_reply_err(req, err);
      return (void)fuse_reply_write(req, size);
    }
    if (!h->state) return (void)fuse_reply_err(req, EBADF);
    auto& state = *h->state;
    bool is_item = h->writer;
    if (is_item && uint64_t(off) + size > store_.options().max_item_size) return (void)fuse_reply_err(req, EFBIG);
    std::lock_guard body(state.body);
    if (is_item && superseded(*h)) return (void)fuse_reply_err(req, ESTALE);
    if (uint64_t end = uint64_t(off) + size; end > state.size) {
      uint64_t grow = end - state.size;
      if (auto room = store_.check_staging_room(grow); !room.ok()) {
        log_.add("refused a write to " + node_path(h->ino) + ": " + room.message);
        return (void)fuse_reply_err(req, room.code);
      }
    }
    ssize_t n = pwrite(state.fd, buf, size, off);
    if (n < 0) return (void)fuse_reply_err(req, errno);
    std::lock_guard lock(state.mutex);
    state.emptied_by_open = false;
    state.size = std::max<uint64_t>(state.size, uint64_t(off) + uint64_t(n));
    state.dirty = true;
    ++state.version;
    state.attrs.mtime_ns = state.ctime_ns = now_ns();
    fuse_reply_write(req, size_t(n));
  }

  void flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    auto h = handle_of(fi);
    int err = 0;
    if (h->ino == kCtlIno)
      err = control_flush(*h);
    else if (h->writer)
      err = superseded(*h) ? ESTALE : commit(ino, false);
    fuse_reply_err(req, err);
  }

  void fsync(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    auto h = handle_of(fi);
    int err = !h->writer ? 0 : superseded(*h) ? ESTALE : commit(ino, true);
    if (!err && h->state && !h->writer) fdatasync(h->state->fd);
    fuse_reply_err(req, err);
  }

  void release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    auto h = handles().take(fi->fh);
    if (!h) return (void)fuse_reply_err(req, 0);
    if (h->ino == kCtlIno) control_flush(*h);
    if (h->writer) {
      bool last;
      {
        std::lock_guard lock(h->state->mutex);
        last = h->state->writers == 1;
      }
      // What flush did not commit; its errors reach nobody but the log.
      if (last && !superseded(*h)) commit(ino, true);
      std::string discarded;
      {
        std::lock_guard lock(mutex_);
        auto it = nodes_.find(ino);
        bool still_last;
        {
          std::lock_guard state_lock(h->state->mutex);
          still_last = h->state->writers == 1;
        }
        if (still_last && it != nodes_.end() && it->second.state == h->state && it->second.kind == Kind::kItem &&
            it->second.pending && !it->second.unlinked) {
          log_.add("discarded " + item_path(it->second.name()) + ": closed without a valid JSON document");
          auto p = pending_.find(it->second.name());
          if (p != pending_.end() && p->second == ino) pending_.erase(p);
          it->second.unlinked = true;
          discarded = it->second.name();
        }
      }
      unstage(ino, h->state);
      // The kernel may have cached the name and attributes (a stat between
      // the refusing flush and this release): the file is gone now.
      if (!discarded.empty()) {
        invalidate_item_entry(discarded);
        invalidate_inode(ino);
        invalidate_shard(store::shard_of(discarded));  // its cached listing
      }
    }
    {
      std::lock_guard lock(mutex_);
      auto it = nodes_.find(ino);
      if (it != nodes_.end()) {
        Node& node = it->second;
        if (h->cached_reader_of == node.commits + 1) {
          --node.current_readers;
        } else if (h->cached_reader_of != 0 && --node.stale_readers == 0) {
          node.cache_valid = false;  // it may have left old pages behind
        }
        --node.open_handles;
        maybe_drop(it);
      }
    }
    fuse_reply_err(req, 0);
  }

  // New file under items/: an item (pending until its first commit) or a
  // scratch file.
  void create(fuse_req_t req, fuse_ino_t parent, const char* raw_name, mode_t mode, fuse_file_info* fi) {
    ++counters_.creates;
    std::string name(raw_name);
    auto dir = items_dir_of(parent);
    if (!dir) return (void)fuse_reply_err(req, parent == kRootIno || parent < kItemBase ? EACCES : EPERM);
    Resolved r = classify(*dir, name);
    if (r.what == Resolved::kBadItemName) {
      log_.add("refused to create items/" + (dir->empty() ? "" : *dir + "/") + name + ": " + r.why);
      return (void)fuse_reply_err(req, r.error);
    }
    if (name.size() > kNameMax) {
      log_.add("refused to create items/" + (dir->empty() ? "" : *dir + "/") + name + ": a name is at most " +
               std::to_string(kNameMax) + " bytes");
      return (void)fuse_reply_err(req, ENAMETOOLONG);
    }
    const fuse_ctx* ctx = fuse_req_ctx(req);
    struct stat st;
    std::lock_guard ns(namespace_mutex_);
    if (r.what == Resolved::kItem) {
      if (fuse_ino_t existing = find_item(r.id, st)) {
        if (fi->flags & O_EXCL) return (void)fuse_reply_err(req, EEXIST);
        bool canonical = existing >= kItemBase && existing < kDirBase;
        Node like{.kind = Kind::kItem, .item_ino = canonical ? int64_t(existing - kItemBase) : 0};
        return open_existing(req, existing, like, st, dir->empty() ? 0 : kItemTimeout, fi);
      }
    } else if (fuse_ino_t existing = find_scratch(*dir, name)) {
      if (fi->flags & O_EXCL) return (void)fuse_reply_err(req, EEXIST);
      if (node_stat(existing, st) == 0)
        return open_existing(req, existing, Node{.kind = Kind::kScratch}, st, kItemTimeout, fi);
    }
    auto state = std::make_shared<FileState>();
    state->pool = staging_;
    state->fd = staging_->take();
    if (state->fd < 0) return (void)fuse_reply_err(req, -state->fd);
    state->attrs = Attrs{uint32_t(S_IFREG | (mode & 07777)), ctx->uid, ctx->gid, now_ns()};
    state->ctime_ns = state->attrs.mtime_ns;
    state->dirty = r.what == Resolved::kItem;
    state->emptied_by_open = true;
    Node node;
    node.state = state;
    node.lookups = 1;
    fuse_ino_t ino;
    std::lock_guard lock(mutex_);
    if (r.what == Resolved::kItem) {
      node.kind = Kind::kItem;
      node.name_as(store::shard_of(r.id), r.id);
      node.pending = true;
      ino = kDynBase + next_dynamic_++;
      pending_[r.id] = ino;
    } else {
      if (auto old = scratch_.find({*dir, name}); old != scratch_.end()) {
        nodes_[old->second].unlinked = true;
        scratch_.erase(old);
      }
      node.kind = Kind::kScratch;
      node.name_as(*dir, name);
      ino = kDynBase + next_dynamic_++;
      scratch_[{*dir, name}] = ino;
    }
    node.open_handles = 1;
    nodes_[ino] = node;
    auto handle = std::make_unique<Handle>();
    handle->ino = ino;
    handle->state = state;
    if (r.what == Resolved::kItem) {
      handle->writer = true;
      state->writers = 1;
    }
    fuse_entry_param e = entry_for(
        ino,
        stat_of(ino, state->attrs.mode, 0, state->attrs.uid, state->attrs.gid, state->attrs.mtime_ns, state->ctime_ns),
        dir->empty() && r.what == Resolved::kItem ? 0 : kItemTimeout);
    fi->fh = handles().add(std::move(handle));
    fuse_reply_create(req, &e, fi);
  }

  // create() of a name that exists (no O_EXCL): open it, counting the
  // kernel's new reference only once the open has worked.
  void open_existing(fuse_req_t req, fuse_ino_t ino, const Node& like, const struct stat& st, double timeout,
                     fuse_file_info* fi) {
    auto handle = std::make_unique<Handle>();
    handle->ino = ino;
    bool truncate = fi->flags & O_TRUNC;
    if (like.kind == Kind::kScratch) {
      std::lock_guard lock(mutex_);
      auto it = nodes_.find(ino);
      if (it == nodes_.end() || !it->second.state) return (void)fuse_reply_err(req, ENOENT);
      handle->state = it->second.state;
    } else {
      remember(ino, like);  // the kernel's reference; given back if the open fails
      int err = 0;
      auto state = stage_item(ino, truncate, err);
      if (state && truncate && (err = truncate_for_open(*state)) != 0) {
        unstage(ino, state);
        state = nullptr;
      }
      if (!state) {
        forget_node(ino, 1);
        return (void)fuse_reply_err(req, err);
      }
      handle->state = state;
      handle->writer = true;
      handle->generation = generation_of(*state);
    }
    if (like.kind == Kind::kScratch && truncate) {
      std::lock_guard body(handle->state->body);
      std::lock_guard lock(handle->state->mutex);
      if (ftruncate(handle->state->fd, 0) != 0) return (void)fuse_reply_err(req, errno);
      handle->state->size = 0;
      handle->state->attrs.mtime_ns = handle->state->ctime_ns = now_ns();
    }
    if (like.kind == Kind::kScratch) remember(ino, like);
    {
      std::lock_guard lock(mutex_);
      ++nodes_[ino].open_handles;
    }
    fuse_entry_param e = entry_for(ino, st, timeout);
    fi->fh = handles().add(std::move(handle));
    fuse_reply_create(req, &e, fi);
  }

  // Only used when create is not: items come into being by open(O_CREAT).
  void mknod(fuse_req_t req, fuse_ino_t, const char* name, mode_t, dev_t) {
    fuse_reply_err(req, std::strlen(name) > kNameMax ? ENAMETOOLONG : EPERM);
  }

  void unlink(fuse_req_t req, fuse_ino_t parent, const char* raw_name) {
    ++counters_.unlinks;
    std::string name(raw_name);
    auto dir = items_dir_of(parent);
    if (!dir) return (void)fuse_reply_err(req, parent < kItemBase ? EACCES : EPERM);
    Resolved r = classify(*dir, name);
    std::lock_guard ns(namespace_mutex_);
    if (r.what == Resolved::kItem) {
      {
        std::lock_guard lock(mutex_);
        if (auto p = pending_.find(r.id); p != pending_.end()) {
          nodes_.at(p->second).unlinked = true;
          pending_.erase(p);
          return (void)fuse_reply_err(req, 0);
        }
      }
      auto item = store_.item(r.id);
      if (!item) return (void)fuse_reply_err(req, ENOENT);
      int err = write_status([&](store::WriteBatch& b) { return b.remove(r.id); });
      if (!err) {
        mark_item_unlinked(item->ino, &*item);
        if (dir->empty()) invalidate_item_entry(r.id);
        invalidate_shard(store::shard_of(r.id));
      }
      return (void)fuse_reply_err(req, err);
    }
    if (r.what == Resolved::kBadItemName) return (void)fuse_reply_err(req, ENOENT);
    std::lock_guard lock(mutex_);
    auto it = scratch_.find({*dir, name});
    if (it == scratch_.end()) return (void)fuse_reply_err(req, ENOENT);
    auto node = nodes_.find(it->second);
    scratch_.erase(it);
    if (node != nodes_.end()) {
      node->second.unlinked = true;
      maybe_drop(node);
    }
    fuse_reply_err(req, 0);
  }

  void mark_unlinked(fuse_ino_t ino) {
    std::lock_guard lock(mutex_);
    auto it = nodes_.find(ino);
    if (it != nodes_.end()) it->second.unlinked = true;
  }

  // `last` is the item's attributes before it went: nodes still open keep
  // them, with no link, for fstat. The kernel may know the item under
  // several inodes (a created file and a later lookup) and drops the link
  // count of only the one it unlinked: the others that are open are told to
  // forget their attributes, and this waits (a bounded time) until the
  // kernel has heard, so that an fstat right after the removal asks again.
  void mark_item_unlinked(int64_t item_ino, const store::ItemInfo* last = nullptr) {
    bool open = false;
    {
      std::lock_guard lock(mutex_);
      for (fuse_ino_t n : nodes_of_item(item_ino)) {
        Node& node = nodes_[n];
        node.unlinked = true;
        if (node.open_handles == 0) continue;
        open = true;
        invalidate_inode(n);
        if (last && !node.state) {
          struct stat st = item_stat(*last);
          st.st_nlink = 0;
          unlinked_open_[n] = st;
        }
      }
    }
    // Briefly: an entry invalidation queued before these (a shard's, while
    // an import runs) waits for the directory this unlink or rename holds,
    // so a long wait here would stall it and every namespace change behind
    // it. The queue drains in microseconds otherwise.
    if (open) wait_for_invalidations(std::chrono::milliseconds(200));
  }

  // A change made through the flat name items/<id>.json: the kernel may
  // still hold items/<shard>/<id>.json.
  void invalidate_item_entry(const std::string& id) {
    if (auto dir = store_.dir_info(store::shard_of(id)))
      invalidate_entry(kDirBase + fuse_ino_t(dir->ino), id + ".json");
  }

  void mkdir(fuse_req_t req, fuse_ino_t parent, const char* raw_name, mode_t mode) {
    std::string name(raw_name);
    if (name.size() > kNameMax) return (void)fuse_reply_err(req, ENAMETOOLONG);
    if (parent != kItemsIno)
      return (void)fuse_reply_err(req, parent == kRootIno || parent < kItemBase ? EACCES : EPERM);
    if (classify("", name).what != Resolved::kShard) {
      log_.add("refused mkdir items/" + name + ": directories under items/ are shards named by two characters");
      return (void)fuse_reply_err(req, EINVAL);
    }
    const fuse_ctx* ctx = fuse_req_ctx(req);
    Attrs attrs{uint32_t(S_IFDIR | (mode & 07777)), ctx->uid, ctx->gid, store::kMtimeNow};
    int err = write_status([&](store::WriteBatch& b) { return b.make_dir(name, attrs); });
    if (err) return (void)fuse_reply_err(req, err);
    auto info = store_.dir_info(name);
    if (!info) return (void)fuse_reply_err(req, EIO);
    fuse_ino_t ino = kDirBase + fuse_ino_t(info->ino);
    remember(ino, shard_node(name));
    auto e = entry_for(
        ino, stat_of(ino, info->attrs.mode, 0, info->attrs.uid, info->attrs.gid, info->attrs.mtime_ns, info->ctime_ns),
        kItemTimeout);
    fuse_reply_entry(req, &e);
  }

  void rmdir(fuse_req_t req, fuse_ino_t parent, const char* raw_name) {
    std::string name(raw_name);
    if (parent != kItemsIno) return (void)fuse_reply_err(req, parent < kItemBase ? EACCES : ENOTDIR);
    {
      std::lock_guard lock(mutex_);
      for (auto& [key, ino] : scratch_)
        if (key.first == name) return (void)fuse_reply_err(req, ENOTEMPTY);
      for (auto& [id, ino] : pending_)
        if (store::shard_of(id) == name) return (void)fuse_reply_err(req, ENOTEMPTY);
    }
    fuse_reply_err(req, write_status([&](store::WriteBatch& b) { return b.remove_dir(name); }));
  }

  void rename(fuse_req_t req, fuse_ino_t parent, const char* raw_name, fuse_ino_t newparent, const char* raw_newname,
              unsigned int flags) {
    ++counters_.renames;
    fuse_reply_err(req, do_rename(parent, raw_name, newparent, raw_newname, flags));
  }

  int do_rename(fuse_ino_t parent, const std::string& name, fuse_ino_t newparent, const std::string& newname,
                unsigned int flags) {
    if (flags & RENAME_EXCHANGE) return EINVAL;
    auto from_dir = items_dir_of(parent);
    auto to_dir = items_dir_of(newparent);
    if (!from_dir || !to_dir) return parent < kItemBase || newparent < kItemBase ? EACCES : EXDEV;
    Resolved from = classify(*from_dir, name);
    Resolved to = classify(*to_dir, newname);
    if (from.what == Resolved::kShard || to.what == Resolved::kShard) return EINVAL;
    if (to.what == Resolved::kBadItemName) {
      log_.add("refused rename to items/" + (to_dir->empty() ? "" : *to_dir + "/") + newname + ": " + to.why);
      return to.error;
    }
    if (newname.size() > kNameMax) {
      log_.add("refused rename to items/" + (to_dir->empty() ? "" : *to_dir + "/") + newname + ": a name is at most " +
               std::to_string(kNameMax) + " bytes");
      return ENAMETOOLONG;
    }
    if (name.size() > kNameMax) return ENAMETOOLONG;
    if (from.what == Resolved::kBadItemName) return ENOENT;
    std::lock_guard ns(namespace_mutex_);
    struct stat st;
    bool target_exists = to.what == Resolved::kItem ? find_item(to.id, st) != 0 : find_scratch(*to_dir, newname) != 0;
    if ((flags & RENAME_NOREPLACE) && target_exists) return EEXIST;

    if (from.what == Resolved::kItem) {
      fuse_ino_t source = find_item(from.id, st);
      if (!source) return ENOENT;
      bool pending;
      {
        std::lock_guard lock(mutex_);
        auto it = nodes_.find(source);
        pending = it != nodes_.end() && it->second.pending;
      }
      int err = to.what == Resolved::kItem ? rename_item(source, from.id, to.id, pending)
                                           : item_to_scratch(source, from.id, *to_dir, newname, pending);
      if (!err && from_dir->empty()) invalidate_item_entry(from.id);
      if (!err && to.what == Resolved::kItem && to_dir->empty()) invalidate_item_entry(to.id);
      if (!err) invalidate_shard(store::shard_of(from.id));
      if (!err && to.what == Resolved::kItem) invalidate_shard(store::shard_of(to.id));
      return err;
    }
    fuse_ino_t source = find_scratch(*from_dir, name);
    if (!source) return ENOENT;
    if (to.what == Resolved::kItem) {
      int err = scratch_to_item(source, *from_dir, name, to.id);
      if (!err && to_dir->empty()) invalidate_item_entry(to.id);
      if (!err) invalidate_shard(store::shard_of(to.id));
      return err;
    }
    std::lock_guard lock(mutex_);
    if (auto old = scratch_.find({*to_dir, newname}); old != scratch_.end() && old->second != source) {
      nodes_[old->second].unlinked = true;
      scratch_.erase(old);
    }
    scratch_.erase({*from_dir, name});
    scratch_[{*to_dir, newname}] = source;
    nodes_[source].name_as(*to_dir, newname);
    return 0;
  }

  // Renames item `from` onto `to`, replacing it. A body that was never
  // committed must prove valid before it may replace anything.
  int rename_item(fuse_ino_t source, const std::string& from, const std::string& to, bool pending) {
    if (from == to) return 0;
    struct stat st;
    fuse_ino_t target = find_item(to, st);
    if (pending) {
      {
        std::lock_guard lock(mutex_);
        if (auto p = pending_.find(from); p != pending_.end() && p->second == source) pending_.erase(p);
        nodes_[source].name_as(store::shard_of(to), to);
        if (!target) {
          pending_[to] = source;
          return 0;
        }
      }
      int err = commit_locked(source, true);
      std::lock_guard lock(mutex_);
      if (err) {
        nodes_[source].name_as(store::shard_of(from), from);
        pending_[from] = source;
        return err;
      }
      if (auto p = pending_.find(to); p != pending_.end() && p->second != source) {
        nodes_[p->second].unlinked = true;
        pending_.erase(p);
      }
      return 0;
    }
    {
      std::lock_guard lock(mutex_);
      if (auto p = pending_.find(to); p != pending_.end()) {
        nodes_[p->second].unlinked = true;
        pending_.erase(p);
      }
    }
    auto source_item = store_.item(from);
    auto target_item = store_.item(to);
    if (!source_item) return ENOENT;
    int err = write_status([&](store::WriteBatch& b) { return b.rename(from, to); });
    if (err) return err;
    if (target_item && target_item->ino != source_item->ino) mark_item_unlinked(target_item->ino, &*target_item);
    // The item's nodes follow it: they know it by its ino, not its id.
    return 0;
  }

  // vim and editors rename the original aside before writing the new file:
  // the item leaves the store and lives on as a scratch file.
  int item_to_scratch(fuse_ino_t source, const std::string& id, const std::string& dir, const std::string& name,
                      bool pending) {
    std::shared_ptr<FileState> state;
    std::vector<fuse_ino_t> nodes;
    int64_t item_ino = 0;
    if (pending) {
      std::lock_guard lock(mutex_);
      auto it = nodes_.find(source);
      if (it == nodes_.end() || !it->second.state) return ENOENT;
      state = it->second.state;
      nodes.push_back(source);
    } else {
      auto item = store_.item(id);
      if (!item) return ENOENT;
      item_ino = item->ino;
      int err = 0;
      state = body_of_item(item->ino);  // an open writer's body is the newest
      if (!state) state = body_from_store(*item, false, err);
      if (!state) return err;
      err = write_status([&](store::WriteBatch& b) { return b.remove(id); });
      if (err) return err;
    }
    std::lock_guard lock(mutex_);
    if (pending) {
      if (auto p = pending_.find(id); p != pending_.end() && p->second == source) pending_.erase(p);
    } else {
      nodes = nodes_of_item(item_ino);
    }
    if (auto old = scratch_.find({dir, name}); old != scratch_.end()) {
      nodes_[old->second].unlinked = true;
      scratch_.erase(old);
    }
    // Every node the kernel has for the item becomes the scratch file; if it
    // has none, the scratch file gets one of its own.
    if (nodes.empty()) nodes.push_back(kDynBase + next_dynamic_++);
    for (fuse_ino_t n : nodes) {
      Node& node = nodes_[n];
      if (node.kind == Kind::kItem && node.item_ino) forget_alias(node.item_ino, n);
      node.kind = Kind::kScratch;
      node.pending = false;
      node.unlinked = false;
      node.name_as(dir, name);
      node.item_ino = 0;
      node.state = state;
      node.cache_valid = false;
    }
    {
      std::lock_guard state_lock(state->mutex);
      state->dirty = false;
    }
    scratch_[{dir, name}] = nodes.front();
    return 0;
  }

  // rsync's `.x.json.AbC123` and editors' temp files become items here.
  int scratch_to_item(fuse_ino_t source, const std::string& dir, const std::string& name, const std::string& id) {
    std::shared_ptr<FileState> state;
    {
      std::lock_guard lock(mutex_);
      auto it = nodes_.find(source);
      if (it == nodes_.end() || !it->second.state) return ENOENT;
      state = it->second.state;
    }
    std::string message;
    int err;
    store::ItemInfo stored;
    {
      std::lock_guard body(state->body);
      uint64_t size;
      store::Attrs attrs;
      {
        std::lock_guard state_lock(state->mutex);
        size = state->size;
        attrs = state->attrs;
      }
      FdStreamBuf buf(state->fd, size);
      std::istream in(&buf);
      err = write_status([&](store::WriteBatch& b) { return b.put(id, in, attrs, &stored); }, &message);
    }
    if (err) {
      ++counters_.commits_refused;
      log_.add("refused rename of items/" + (dir.empty() ? "" : dir + "/") + name + " onto " + item_path(id) + ": " +
               message + (err == EINVAL ? " (the previous version is kept)" : ""));
      return err;
    }
    ++counters_.commits;
    std::optional<store::ItemInfo> committed = stored;
    std::lock_guard lock(mutex_);
    if (auto p = pending_.find(id); p != pending_.end()) {
      nodes_[p->second].unlinked = true;
      pending_.erase(p);
    }
    if (auto it = scratch_.find({dir, name}); it != scratch_.end() && it->second == source) scratch_.erase(it);
    // The kernel moves the scratch file's inode to the new name: it becomes
    // another node of the item.
    Node& node = nodes_[source];
    node.name_as(store::shard_of(id), id);
    node.state.reset();
    node.cache_valid = false;
    if (committed)
      bind_to_item(source, node, committed->ino);
    else
      node.unlinked = true;
    return 0;
  }

  // ---- directories -----------------------------------------------------

  void opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    ++counters_.readdirs;
    auto handle = std::make_unique<Handle>();
    handle->ino = ino;
    auto add = [&](const std::string& name, const struct stat& st) { handle->entries.emplace_back(name, st); };
    struct stat self_st;
    if (int err = node_stat(ino, self_st)) return (void)fuse_reply_err(req, err);
    add(".", self_st);
    add("..", virtual_stat(kRootIno));
    if (ino == kRootIno) {
      for (auto [name, child] : {std::pair<const char*, fuse_ino_t>{"items", kItemsIno},
                                 {"search", kSearchIno},
                                 {"backups", kBackupsIno},
                                 {"stats.json", kStatsIno},
                                 {"log", kLogIno}}) {
        struct stat st;
        if (node_stat(child, st) == 0) add(name, st);
      }
    } else if (ino == kBackupsIno) {
      add("ctl", virtual_stat(kCtlIno));
      add("status", virtual_stat(kStatusIno));
      extra_list(ino, handle->entries, req);
    } else if (auto dir = items_dir_of(ino)) {
      // The kernel keeps the listing across opens. Changes made through the
      // mount reset it by themselves (the kernel bumps the directory's
      // version); the others invalidate the directory's inode. While the
      // kernel holds it, it opens the directory but does not read it: the
      // listing is made at the first readdir.
      fi->cache_readdir = 1;
      fi->keep_cache = 1;
      handle->unlisted_dir = *dir;
    } else {
      int err = extra_list(ino, handle->entries, req);
      if (err) return (void)fuse_reply_err(req, err);
    }
    fi->fh = handles().add(std::move(handle));
    fuse_reply_open(req, fi);
  }

  // The listing of an items/ directory ("" = items/ itself): shards, or the
  // shard's items, pending items and scratch files.
  void list_items_dir(const std::string& dir, std::vector<std::pair<std::string, struct stat>>& entries) {
    auto add = [&](const std::string& name, const struct stat& st) { entries.emplace_back(name, st); };
    if (dir.empty()) {
      for (const auto& d : store_.list_dirs())
        add(d.name, stat_of(kDirBase + fuse_ino_t(d.ino), d.attrs.mode, 0, d.attrs.uid, d.attrs.gid, d.attrs.mtime_ns,
                            d.ctime_ns));
    } else {
      for (const auto& item : store_.list_shard(dir)) add(item.id + ".json", item_stat(item));
      std::lock_guard lock(mutex_);
      for (auto& [id, pending_ino] : pending_) {
        if (store::shard_of(id) != dir) continue;
        auto& s = *nodes_.at(pending_ino).state;
        std::lock_guard state_lock(s.mutex);
        add(id + ".json",
            stat_of(pending_ino, s.attrs.mode, s.size, s.attrs.uid, s.attrs.gid, s.attrs.mtime_ns, s.ctime_ns));
      }
    }
    std::lock_guard lock(mutex_);
    for (auto& [key, scratch_ino] : scratch_) {
      if (key.first != dir) continue;
      auto& s = *nodes_.at(scratch_ino).state;
      std::lock_guard state_lock(s.mutex);
      add(key.second, stat_of(scratch_ino, s.attrs.mode, s.size, s.attrs.uid, s.attrs.gid, s.attrs.mtime_ns, s.ctime_ns));
    }
  }

  void readdir(fuse_req_t req, size_t size, off_t off, fuse_file_info* fi, bool plus) {
    auto h = handle_of(fi);
    if (h->unlisted_dir) {
      list_items_dir(*h->unlisted_dir, h->entries);
      h->unlisted_dir.reset();
    }
    std::string buf(size, '\0');
    size_t used = 0;
    for (size_t i = size_t(off); i < h->entries.size(); ++i) {
      const auto& [name, st] = h->entries[i];
      size_t n;
      if (plus) {
        fuse_entry_param e{};
        bool dot = name == "." || name == "..";
        if (!dot) {
          e = entry_for(st.st_ino, st, is_tree_ino(st.st_ino) ? 0 : kItemTimeout);
          if (st.st_ino == kLogIno) e.attr_timeout = 0;  // it grows: tail -f asks for its size
        } else
          e.attr = st;
        n = fuse_add_direntry_plus(req, buf.data() + used, size - used, name.c_str(), &e, off_t(i + 1));
        if (n > size - used) break;
        if (!dot) remember_listed(h->ino, name, st);
      } else {
        n = fuse_add_direntry(req, buf.data() + used, size - used, name.c_str(), &st, off_t(i + 1));
        if (n > size - used) break;
      }
      used += n;
    }
    fuse_reply_buf(req, buf.data(), used);
  }

  // readdirplus hands the kernel a reference per entry, as lookup does.
  void remember_listed(fuse_ino_t dir_ino, const std::string& name, const struct stat& st) {
    fuse_ino_t ino = st.st_ino;
    if (ino >= kItemBase && ino < kDirBase) {
      std::lock_guard lock(mutex_);
      auto it = nodes_.find(ino);
      if (it != nodes_.end()) {
        ++it->second.lookups;
        return;
      }
      Node node;
      node.kind = Kind::kItem;
      node.item_ino = int64_t(ino - kItemBase);
      node.lookups = 1;
      nodes_[ino] = node;
    } else if (ino >= kDirBase && ino < kDynBase) {
      remember(ino, shard_node(name));
    } else if (ino >= kDynBase) {
      std::lock_guard lock(mutex_);
      if (auto it = nodes_.find(ino); it != nodes_.end())
        ++it->second.lookups;
      else
        extra_remember(dir_ino, name, ino);
    } else {
      std::lock_guard lock(mutex_);
      if (auto it = nodes_.find(ino); it != nodes_.end()) ++it->second.lookups;
    }
  }

  void releasedir(fuse_req_t req, fuse_file_info* fi) {
    handles().take(fi->fh);
    fuse_reply_err(req, 0);
  }

  void statfs(fuse_req_t req) {
    struct statvfs disk {};
    if (statvfs(config_.store_dir.c_str(), &disk) != 0) return (void)fuse_reply_err(req, errno);
    store::Stats s = store_.stats();
    struct statvfs out = disk;
    uint64_t unit = disk.f_frsize ? disk.f_frsize : 4096;
    uint64_t used = (s.database_bytes + unit - 1) / unit;
    out.f_blocks = used + disk.f_bavail;
    out.f_bfree = disk.f_bavail;
    out.f_bavail = disk.f_bavail;
    out.f_files = s.items + disk.f_ffree;
    out.f_ffree = disk.f_ffree;
    out.f_favail = disk.f_favail;
    out.f_namemax = 255;
    fuse_reply_statfs(req, &out);
  }

  // ---- the rest of the tree: search/ and backups/ (fs/tree.h) -----------
  // A ctl command is one line of at most kMaxControlBytes. A write that
  // would carry the text not yet run past that fails whole, and so does
  // every later write and close of that open file, so that nothing of it
  // runs: the kernel cuts a long write into requests (128 KiB each), the
  // first of which already passes the cap, so the caller's write() fails
  // instead of a part of it being taken, and a command cut short by a
  // refused request can never run.
  static constexpr size_t kMaxControlBytes = 4096;

  int control_write(std::string_view data, Handle& h) {
    if (h.command_refused) return EINVAL;
    if (h.pending_command.size() + data.size() > kMaxControlBytes) {
      h.command_refused = true;
      h.pending_command.clear();
      log_.add("backup: refused a write to backups/ctl: a command is one line of at most " +
               std::to_string(kMaxControlBytes) + " bytes (EINVAL); nothing of this open file is run");
      return EINVAL;
    }
    h.pending_command.append(data);
    int err = 0;
    for (auto nl = h.pending_command.find('\n'); nl != std::string::npos; nl = h.pending_command.find('\n')) {
      std::string line = h.pending_command.substr(0, nl);
      h.pending_command.erase(0, nl + 1);
      if (!err) err = run_control(line);
      wait_for_invalidations();
    }
    return err;
  }

  int control_flush(Handle& h) {
    if (h.command_refused) return EINVAL;
    if (h.pending_command.empty()) return 0;
    std::string line;
    line.swap(h.pending_command);
    int err = run_control(line);
    wait_for_invalidations();
    return err;
  }

  store::Store& store_;
  const MountConfig& config_;
  std::filesystem::path staging_dir_;
  std::shared_ptr<StagingPool> staging_;
  EventLog log_;
  Counters counters_;
  fuse_session* session_ = nullptr;
  int64_t mount_time_ = now_ns();
  std::mutex namespace_mutex_;  // create, rename, unlink, commit: one at a time
  std::mutex mutex_;            // the node table
  std::unordered_map<fuse_ino_t, Node> nodes_;
  std::map<std::string, fuse_ino_t> pending_;                          // item id -> node
  std::map<std::pair<std::string, std::string>, fuse_ino_t> scratch_;  // (dir, name) -> node
  // Item nodes other than the item's own kItemBase+ino: created files and
  // scratch files the kernel keeps under their nodeid once they are items.
  std::unordered_multimap<int64_t, fuse_ino_t> aliases_;
  // Attributes of committed items removed while open (nodes without a
  // body of their own), until the kernel drops the node.
  std::unordered_map<fuse_ino_t, struct stat> unlinked_open_;
  uint64_t next_dynamic_ = 1;
  uint64_t ops_seen_ = 0;        // give_back_memory(): the operations counted at its last look
  size_t free_low_ = SIZE_MAX;   // and the lowest free bytes seen since its last trim
  std::mutex inval_mutex_;
  std::condition_variable inval_cv_;
  std::condition_variable inval_drained_;
  bool inval_busy_ = false;  // a notification is being sent
  std::unordered_map<fuse_ino_t, int> inval_pending_;  // inode -> queued notifications
  std::deque<std::pair<fuse_ino_t, std::string>> inval_queue_;
  bool inval_stop_ = false;
  std::thread inval_thread_;
  std::mutex watch_mutex_;
  std::condition_variable watch_cv_;
  bool watch_stop_ = false;
  std::thread watch_thread_;
};

// ---- libfuse glue ----------------------------------------------------------

void op_init(void* userdata, fuse_conn_info* conn) {
  (void)userdata;
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  if (conn->capable & FUSE_CAP_EXPORT_SUPPORT) conn->want |= FUSE_CAP_EXPORT_SUPPORT;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  // Commits happen at close; the kernel must send writes and flushes through.
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

// No failure of the store may take the daemon down: an operation that
// throws answers with the errno the store gave (EIO if none) and is logged.
template <typename F>
void guarded(fuse_req_t req, F&& operation) {
  try {
    operation();
  } catch (const store::StoreError& e) {
    self(req)->log().add(std::string("error: ") + e.what());
    fuse_reply_err(req, e.code() ? e.code() : EIO);
  } catch (const std::exception& e) {
    self(req)->log().add(std::string("error: ") + e.what());
    fuse_reply_err(req, EIO);
  }
}

template <typename F>
void quietly(F&& operation) {
  try {
    operation();
  } catch (const std::exception&) {
    // forget has no reply to carry an error; the node is left as it was.
  }
}

const fuse_lowlevel_ops kOps = [] {
  fuse_lowlevel_ops ops{};
  ops.init = op_init;
  ops.lookup = [](fuse_req_t req, fuse_ino_t parent, const char* name) {
    guarded(req, [&] { self(req)->lookup(req, parent, name); });
  };
  ops.forget = [](fuse_req_t req, fuse_ino_t ino, uint64_t n) {
    quietly([&] { self(req)->forget(ino, n); });
    fuse_reply_none(req);
  };
  ops.forget_multi = [](fuse_req_t req, size_t count, fuse_forget_data* list) {
    quietly([&] {
      for (size_t i = 0; i < count; ++i) self(req)->forget(list[i].ino, list[i].nlookup);
    });
    fuse_reply_none(req);
  };
  ops.getattr = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    guarded(req, [&] { self(req)->getattr(req, ino); });
  };
  ops.setattr = [](fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
    guarded(req, [&] { self(req)->setattr(req, ino, attr, to_set, fi); });
  };
  ops.readlink = [](fuse_req_t req, fuse_ino_t ino) { guarded(req, [&] { self(req)->readlink(req, ino); }); };
  ops.mknod = [](fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
    guarded(req, [&] { self(req)->mknod(req, parent, name, mode, rdev); });
  };
  ops.mkdir = [](fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
    guarded(req, [&] { self(req)->mkdir(req, parent, name, mode); });
  };
  ops.unlink = [](fuse_req_t req, fuse_ino_t parent, const char* name) {
    guarded(req, [&] { self(req)->unlink(req, parent, name); });
  };
  ops.rmdir = [](fuse_req_t req, fuse_ino_t parent, const char* name) {
    guarded(req, [&] { self(req)->rmdir(req, parent, name); });
  };
  ops.symlink = [](fuse_req_t req, const char*, fuse_ino_t, const char* name) {
    fuse_reply_err(req, std::strlen(name) > kNameMax ? ENAMETOOLONG : EPERM);
  };
  ops.link = [](fuse_req_t req, fuse_ino_t, fuse_ino_t, const char* name) {
    fuse_reply_err(req, std::strlen(name) > kNameMax ? ENAMETOOLONG : EPERM);
  };
  ops.rename = [](fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
                  unsigned int flags) {
    guarded(req, [&] { self(req)->rename(req, parent, name, newparent, newname, flags); });
  };
  ops.open = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    guarded(req, [&] { self(req)->open(req, ino, fi); });
  };
  ops.read = [](fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
    guarded(req, [&] { self(req)->read(req, size, off, fi); });
  };
  ops.write = [](fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
    guarded(req, [&] { self(req)->write(req, buf, size, off, fi); });
  };
  ops.flush = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    guarded(req, [&] { self(req)->flush(req, ino, fi); });
  };
  ops.release = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    guarded(req, [&] { self(req)->release(req, ino, fi); });
  };
  ops.fsync = [](fuse_req_t req, fuse_ino_t ino, int, fuse_file_info* fi) {
    guarded(req, [&] { self(req)->fsync(req, ino, fi); });
  };
  ops.opendir = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    guarded(req, [&] { self(req)->opendir(req, ino, fi); });
  };
  ops.readdir = [](fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
    guarded(req, [&] { self(req)->readdir(req, size, off, fi, false); });
  };
  ops.readdirplus = [](fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
    guarded(req, [&] { self(req)->readdir(req, size, off, fi, true); });
  };
  ops.releasedir = [](fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
    guarded(req, [&] { self(req)->releasedir(req, fi); });
  };
  ops.fsyncdir = [](fuse_req_t req, fuse_ino_t, int, fuse_file_info*) { fuse_reply_err(req, 0); };
  ops.statfs = [](fuse_req_t req, fuse_ino_t) { guarded(req, [&] { self(req)->statfs(req); }); };
  ops.create = [](fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
    guarded(req, [&] { self(req)->create(req, parent, name, mode, fi); });
  };
  return ops;
}();

}  // namespace

int run_mount(const MountConfig& config) {
  // glibc gives each of the FUSE threads its own heap arena as they contend,
  // and freed memory stays in them: two arenas for two cores kept the
  // daemon 8 MB smaller after a cp -r of 30k items, at no measurable cost.
  mallopt(M_ARENA_MAX, 2);
  // Every file open for writing holds a staging fd: take all the descriptors
  // the system allows this process, not the 1,024 of the soft limit.
  struct rlimit files {};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  std::unique_ptr<store::Store> store;
  try {
    // Open once before detaching so a bad store is reported to the caller.
    store::Store::open(config.store_dir, config.store_options).reset();
    if (std::string warning = store::permissions_warning(config.store_dir); !warning.empty())
      std::cerr << "itemfs: warning: " << warning << "\n";
  } catch (const std::exception& e) {
    std::cerr << "itemfs: cannot open store " << config.store_dir << ": " << e.what() << "\n";
    return 1;
  }
  std::vector<std::string> args = {
      "itemfs",        "-o", "default_permissions", "-o", "fsname=itemfs:" + config.store_dir.string(), "-o",
      "subtype=itemfs"};
  for (const auto& opt : config.fuse_options) {
    args.push_back("-o");
    args.push_back(opt);
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  fuse_args fargs = FUSE_ARGS_INIT(int(argv.size()), argv.data());

  // The Filesystem needs the store, which is opened after daemonizing (SQLite
  // locks do not survive fork), so it is created behind a holder.
  Holder holder;
  fuse_session* se = fuse_session_new(&fargs, &kOps, sizeof(kOps), &holder);
  fuse_opt_free_args(&fargs);
  if (!se) {
    std::cerr << "itemfs: bad mount options\n";
    return 1;
  }
  if (fuse_set_signal_handlers(se) != 0) {
    fuse_session_destroy(se);
    return 1;
  }
  if (fuse_session_mount(se, config.mountpoint.c_str()) != 0) {
    std::cerr << "itemfs: cannot mount on " << config.mountpoint << "\n";
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    return 1;
  }
  fuse_daemonize(config.foreground ? 1 : 0);
  int rc = 1;
  try {
    store = store::Store::open(config.store_dir, config.store_options);
    holder.fs = std::make_unique<Filesystem>(*store, config);
    auto& fs = holder.fs;
    fs->log().use_syslog(!config.foreground);
    if (!config.read_only_reason.empty()) fs->log().add("warning: " + config.read_only_reason);
    fs->set_session(se);
    fs->start_invalidator();
    fs->start_watcher();
    fs->attach_services(config);
    fuse_loop_config* loop = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(loop, 16);
    fuse_loop_cfg_set_idle_threads(loop, 8);
    // libfuse reports an exit by signal as the signal's number: SIGTERM and
    // SIGINT are how a daemon is asked to unmount, so they are success.
    // Asked to exit (SIGTERM, SIGINT, unmount), the loop waits for every
    // request in progress, and a backups/ctl write waits for its job: the
    // job is cancelled as soon as the session is asked to exit.
    std::atomic<bool> loop_done{false};
    std::thread canceller([&] {
      while (!loop_done.load()) {
        if (fuse_session_exited(se)) {
          fs->cancel_jobs();
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
    int res = fuse_session_loop_mt(se, loop);
    loop_done = true;
    canceller.join();
    rc = res == 0 || res == SIGTERM || res == SIGINT || res == SIGHUP ? 0 : 1;
    fuse_loop_cfg_destroy(loop);
    fs->detach_services();
    fs->stop_watcher();
    fs->stop_invalidator();
  } catch (const std::exception& e) {
    std::cerr << "itemfs: " << e.what() << "\n";
  }
  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  holder.fs.reset();
  store.reset();
  return rc;
}

}  // namespace itemfs::fs
