// Items: the commit of a staged body, and the operations that end in one
// (flush, fsync, release) (fs/items.h).
#include <unistd.h>

#include <cerrno>
#include <istream>

#include "fs/commit_rules.h"
#include "fs/items.h"
#include "fs/names.h"

namespace itemfs::fs {

int Items::commit(fuse_ino_t ino, bool final) {
  std::lock_guard ns(ctx_.namespace_mutex);
  return commit_locked(ino, final);
}

// The store checks the body (one valid JSON document, not too large, room
// on disk): a refusal is logged here with the file's path and returned to
// the close, fsync, truncate or rename that asked, and the previous version
// stays.
int Items::commit_locked(fuse_ino_t ino, bool final) {
  std::shared_ptr<FileState> state;
  std::string id;
  bool pending;
  int64_t item_ino;
  {
    std::lock_guard lock(ctx_.table.mutex);
    auto it = ctx_.table.nodes.find(ino);
    if (it == ctx_.table.nodes.end() || it->second.kind != Kind::kItem || it->second.unlinked || !it->second.state)
      return 0;
    state = it->second.state;
    id = it->second.name();
    pending = it->second.pending;
    item_ino = it->second.item_ino;
  }
  if (!pending) {
    // Renamed meanwhile under another of its nodes, or removed: the
    // store's id is the truth, and a removed item's writes go nowhere.
    auto current = ctx_.store.item_by_ino(item_ino);
    if (!current) return 0;
    id = current->id;
  }
  std::lock_guard body(state->body);
  uint64_t size, version;
  store::Attrs attrs;
  {
    std::lock_guard state_lock(state->mutex);
    BodyView view{state->dirty,   state->size,           state->emptied_by_open,
                  state->version, state->refused_version, state->refused_error};
    switch (commit_step(view, final)) {
      case CommitStep::kNothing:
      case CommitStep::kDefer:
        return 0;
      case CommitStep::kRefused:
        return state->refused_error;
      case CommitStep::kPut:
        break;
    }
    size = state->size;
    version = state->version;
    attrs = state->attrs;
  }
  FdStreamBuf buf(state->fd, size);
  std::istream in(&buf);
  std::string message;
  store::ItemInfo stored;
  int err = ctx_.accept_status(id, in, attrs, &stored, &message);
  if (err) {
    {
      std::lock_guard state_lock(state->mutex);
      state->refused_version = version;
      state->refused_error = err;
    }
    forget_cached(ino);
    ++ctx_.counters.commits_refused;
    ctx_.log.add("refused " + store::item_path(id) + ": " + message +
                 (err == EINVAL ? " (the previous version is kept)" : ""));
    return err;
  }
  ++ctx_.counters.commits;
  std::optional<store::ItemInfo> committed = stored;
  if (pending) ctx_.invalidate_shard(store::shard_of(id));
  {
    std::lock_guard state_lock(state->mutex);
    if (state->version == version) state->dirty = false;
  }
  std::lock_guard lock(ctx_.table.mutex);
  auto it = ctx_.table.nodes.find(ino);
  if (it != ctx_.table.nodes.end() && committed) {
    Node& node = it->second;
    if (node.pending) ctx_.table.unpend(id, ino);
    ctx_.table.bind_to_item(ino, node, committed->ino);
    // The page cache now holds the writer's pages, and maybe pages a reader
    // of the old version fetched meanwhile: none of it is to be trusted,
    // here or under the item's other nodes.
    for (fuse_ino_t other : ctx_.table.nodes_of_item(committed->ino)) new_version_committed(other);
  }
  return 0;
}

void Items::new_version_committed(fuse_ino_t ino) {
  Node& node = ctx_.table.nodes[ino];
  node.cache_valid = false;
  ++node.commits;
  node.stale_readers += node.current_readers;
  node.current_readers = 0;
  ctx_.invalidator.inode(ino);
}

void Items::forget_cached(fuse_ino_t ino) {
  {
    std::lock_guard lock(ctx_.table.mutex);
    if (auto it = ctx_.table.nodes.find(ino); it != ctx_.table.nodes.end()) it->second.cache_valid = false;
  }
  ctx_.invalidator.inode(ino);
}

int Items::flush(fuse_ino_t ino, ItemHandle& h) {
  if (!h.writer) return 0;
  return superseded(h) ? ESTALE : commit(ino, false);
}

// fsync(): the item's staged bytes committed, then the store synced, so
// what fsync answered 0 for survives a power loss (concurrent fsyncs share
// a sync). A reader's fsync syncs what is committed, as on any file.
int Items::fsync(fuse_ino_t ino, ItemHandle& h) {
  if (h.writer) {
    if (superseded(h)) return ESTALE;
    if (int err = commit(ino, true)) return err;
  } else if (h.state && fdatasync(h.state->fd) != 0) {  // a pending item opened for reading
    return errno;
  }
  return ctx_.sync_store();
}

void Items::release(fuse_ino_t ino, ItemHandle& h) {
  if (h.writer) {
    bool last;
    {
      std::lock_guard lock(h.state->mutex);
      last = h.state->writers == 1;
    }
    // What flush did not commit; its errors reach nobody but the log.
    if (last && !superseded(h)) commit(ino, true);
    std::string discarded;
    {
      std::lock_guard lock(ctx_.table.mutex);
      auto it = ctx_.table.nodes.find(ino);
      bool still_last;
      {
        std::lock_guard state_lock(h.state->mutex);
        still_last = h.state->writers == 1;
      }
      if (it != ctx_.table.nodes.end() && it->second.state == h.state && it->second.kind == Kind::kItem &&
          discard_at_release(still_last, it->second.pending, it->second.unlinked)) {
        ctx_.log.add("discarded " + store::item_path(it->second.name()) + ": closed without a valid JSON document");
        ctx_.table.unpend(it->second.name(), ino);
        it->second.unlinked = true;
        discarded = it->second.name();
      }
    }
    unstage(ino, h.state);
    // The kernel may have cached the name and attributes (a stat between
    // the refusing flush and this release): the file is gone now.
    if (!discarded.empty()) {
      ctx_.invalidate_item_entry(discarded);
      ctx_.invalidator.inode(ino);
      ctx_.invalidate_shard(store::shard_of(discarded));  // its cached listing
    }
  }
  std::lock_guard lock(ctx_.table.mutex);
  auto it = ctx_.table.nodes.find(ino);
  if (it == ctx_.table.nodes.end()) return;
  Node& node = it->second;
  if (h.cached_reader_of == node.commits + 1) {
    --node.current_readers;
  } else if (h.cached_reader_of != 0 && --node.stale_readers == 0) {
    node.cache_valid = false;  // it may have left old pages behind
  }
  --node.open_handles;
  ctx_.table.maybe_drop(it);
}

// The kernel may know the item under several inodes (a created file and a
// later lookup) and drops the link count of only the one it unlinked: the
// others that are open are told to forget their attributes, and this waits
// (a bounded time) until the kernel has heard, so that an fstat right after
// the removal asks again.
void Items::mark_unlinked(int64_t item_ino, const store::ItemInfo* last) {
  bool open = false;
  {
    std::lock_guard lock(ctx_.table.mutex);
    for (fuse_ino_t n : ctx_.table.nodes_of_item(item_ino)) {
      Node& node = ctx_.table.nodes[n];
      node.unlinked = true;
      if (node.open_handles == 0) continue;
      open = true;
      ctx_.invalidator.inode(n);
      if (last && !node.state) {
        struct stat st = Context::item_stat(*last);
        st.st_nlink = 0;
        ctx_.table.unlinked_open[n] = st;
      }
    }
  }
  // Briefly: an entry invalidation queued before these (a shard's, while
  // an import runs) waits for the directory this unlink or rename holds,
  // so a long wait here would stall it and every namespace change behind
  // it. The queue drains in microseconds otherwise.
  if (open) ctx_.invalidator.wait(std::chrono::milliseconds(200));
}

}  // namespace itemfs::fs
