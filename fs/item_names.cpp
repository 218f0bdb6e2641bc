// Items: create, unlink and rename of items (fs/items.h).
#include <fcntl.h>

#include <cerrno>

#include "fs/items.h"

namespace itemfs::fs {

int Items::create(const std::string& dir, const std::string& id, mode_t mode, const fuse_ctx* who,
                  fuse_file_info* fi, fuse_entry_param& e) {
  double timeout = dir.empty() ? 0 : kItemTimeout;  // a flat name is an alias the kernel must not keep
  struct stat st;
  if (fuse_ino_t existing = find(id, st)) {
    // create() of an item that exists (no O_EXCL): open it, counting the
    // kernel's new reference only once the open has worked.
    if (fi->flags & O_EXCL) return EEXIST;
    Node like{.kind = Kind::kItem, .item_ino = InodeTable::item_ino_of(existing)};
    ctx_.table.remember(existing, like);  // given back if the open fails
    ItemHandle handle;
    if (int err = open_for_writing(existing, fi->flags & O_TRUNC, handle)) {
      ctx_.table.forget(existing, 1);
      return err;
    }
    {
      std::lock_guard lock(ctx_.table.mutex);
      ++ctx_.table.nodes[existing].open_handles;
    }
    e = entry_of(existing, st, timeout);
    fi->fh = ctx_.handles.add(existing, std::move(handle));
    return 0;
  }
  int err = 0;
  auto state = ctx_.new_body(err);
  if (!state) return err;
  state->attrs = store::Attrs{uint32_t(S_IFREG | (mode & 07777)), who->uid, who->gid, now_ns()};
  state->ctime_ns = state->attrs.mtime_ns;
  state->dirty = true;
  state->emptied_by_open = true;
  state->writers = 1;
  Node node;
  node.kind = Kind::kItem;
  node.state = state;
  node.lookups = 1;
  node.open_handles = 1;
  node.pending = true;
  node.name_as(store::shard_of(id), id);
  fuse_ino_t ino;
  {
    std::lock_guard lock(ctx_.table.mutex);
    ino = ctx_.table.new_dynamic();
    ctx_.table.pending[id] = ino;
    ctx_.table.nodes[ino] = node;
  }
  ItemHandle handle;
  handle.state = state;
  handle.writer = true;
  e = entry_of(ino, Context::body_stat(ino, *state), timeout);
  fi->fh = ctx_.handles.add(ino, std::move(handle));
  return 0;
}

int Items::unlink(const std::string& dir, const std::string& id) {
  {
    std::lock_guard lock(ctx_.table.mutex);
    if (auto p = ctx_.table.pending.find(id); p != ctx_.table.pending.end()) {
      ctx_.table.nodes.at(p->second).unlinked = true;
      ctx_.table.pending.erase(p);
      return 0;
    }
  }
  auto item = ctx_.store.item(id);
  if (!item) return ENOENT;
  int err = ctx_.write_status([&](store::WriteBatch& b) { return b.remove(id); });
  if (err) return err;
  mark_unlinked(item->ino, &*item);
  if (dir.empty()) ctx_.invalidate_item_entry(id);
  ctx_.invalidate_shard(store::shard_of(id));
  return 0;
}

int Items::rename(const std::string& from_dir, const std::string& from, const std::string& to_dir,
                  const std::string& to) {
  bool pending;
  fuse_ino_t source = find_source(from, pending);
  if (!source) return ENOENT;
  int err = rename_node(source, from, to, pending);
  if (err) return err;
  if (from_dir.empty()) ctx_.invalidate_item_entry(from);
  if (to_dir.empty()) ctx_.invalidate_item_entry(to);
  ctx_.invalidate_shard(store::shard_of(from));
  ctx_.invalidate_shard(store::shard_of(to));
  return 0;
}

fuse_ino_t Items::find_source(const std::string& id, bool& pending) {
  struct stat st;
  fuse_ino_t source = find(id, st);
  std::lock_guard lock(ctx_.table.mutex);
  auto it = ctx_.table.nodes.find(source);
  pending = it != ctx_.table.nodes.end() && it->second.pending;
  return source;
}

// Renames item `from` onto `to`, replacing it. A body that was never
// committed must prove valid before it may replace anything.
int Items::rename_node(fuse_ino_t source, const std::string& from, const std::string& to, bool pending) {
  if (from == to) return 0;
  struct stat st;
  fuse_ino_t target = find(to, st);
  InodeTable& table = ctx_.table;
  if (pending) {
    {
      std::lock_guard lock(table.mutex);
      table.unpend(from, source);
      table.nodes[source].name_as(store::shard_of(to), to);
      if (!target) {
        table.pending[to] = source;
        return 0;
      }
    }
    int err = commit_locked(source, true);
    std::lock_guard lock(table.mutex);
    if (err) {
      table.nodes[source].name_as(store::shard_of(from), from);
      table.pending[from] = source;
      return err;
    }
    if (auto p = table.pending.find(to); p != table.pending.end() && p->second != source) {
      table.nodes[p->second].unlinked = true;
      table.pending.erase(p);
    }
    return 0;
  }
  {
    std::lock_guard lock(table.mutex);
    table.replace_pending(to);
  }
  auto source_item = ctx_.store.item(from);
  auto target_item = ctx_.store.item(to);
  if (!source_item) return ENOENT;
  int err = ctx_.write_status([&](store::WriteBatch& b) { return b.rename(from, to); });
  if (err) return err;
  if (target_item && target_item->ino != source_item->ino) mark_unlinked(target_item->ino, &*target_item);
  // The item's nodes follow it: they know it by its ino, not its id.
  return 0;
}

}  // namespace itemfs::fs
