// Scratch files (fs/scratch.h).
#include "fs/scratch.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <istream>

#include "fs/names.h"

namespace itemfs::fs {

int Scratch::lookup(const std::string& dir, const std::string& name, fuse_entry_param& e) {
  fuse_ino_t ino = ctx_.table.find_scratch(dir, name);
  if (!ino) return ENOENT;
  auto node = ctx_.table.copy(ino);
  struct stat st;
  if (!node || stat(ino, *node, st) != 0) return ENOENT;
  ctx_.table.remember(ino, Node{.kind = Kind::kScratch});
  e = entry_of(ino, st, kItemTimeout);
  return 0;
}

int Scratch::stat(fuse_ino_t ino, const Node& node, struct stat& st) {
  if (!node.state) return ENOENT;
  st = Context::body_stat(ino, *node.state);
  if (node.unlinked) st.st_nlink = 0;  // removed while open
  return 0;
}

int Scratch::setattr(const Node& node, const struct stat* attr, int to_set) {
  if (!node.state) return 0;
  FileState& state = *node.state;
  std::lock_guard body(state.body);
  std::lock_guard lock(state.mutex);
  if (to_set & FUSE_SET_ATTR_SIZE) {
    if (ftruncate(state.fd, off_t(attr->st_size)) != 0) return errno;
    state.size = uint64_t(attr->st_size);
    state.dirty = true;
    ++state.version;
    state.emptied_by_open = false;
    if (!(to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))) state.attrs.mtime_ns = now_ns();
  }
  state.attrs = apply_setattr(state.attrs, attr, to_set);
  state.ctime_ns = now_ns();
  return 0;
}

int Scratch::truncate(FileState& state) {
  std::lock_guard body(state.body);
  std::lock_guard lock(state.mutex);
  if (ftruncate(state.fd, 0) != 0) return errno;
  state.size = 0;
  state.attrs.mtime_ns = state.ctime_ns = now_ns();
  return 0;
}

int Scratch::open(fuse_ino_t ino, const Node& node, fuse_file_info* fi) {
  if (!node.state) return ENOENT;
  bool writing = (fi->flags & O_ACCMODE) != O_RDONLY;
  if (writing && (fi->flags & O_TRUNC))
    if (int err = truncate(*node.state)) return err;
  {
    std::lock_guard lock(ctx_.table.mutex);
    auto it = ctx_.table.nodes.find(ino);
    if (it != ctx_.table.nodes.end()) ++it->second.open_handles;
  }
  fi->fh = ctx_.handles.add(ino, ScratchHandle{node.state});
  return 0;
}

int Scratch::read(ScratchHandle& h, size_t size, off_t off, std::string& out) {
  out.assign(size, '\0');
  ssize_t n = pread(h.state->fd, out.data(), size, off);
  if (n < 0) return errno;
  out.resize(size_t(n));
  return 0;
}

ssize_t Scratch::write(fuse_ino_t ino, ScratchHandle& h, const char* buf, size_t size, off_t off) {
  std::lock_guard body(h.state->body);
  return ctx_.write_body(ino, *h.state, buf, size, off);
}

int Scratch::fsync(ScratchHandle& h) {
  fdatasync(h.state->fd);
  return 0;
}

void Scratch::release(fuse_ino_t ino) {
  std::lock_guard lock(ctx_.table.mutex);
  auto it = ctx_.table.nodes.find(ino);
  if (it == ctx_.table.nodes.end()) return;
  --it->second.open_handles;
  ctx_.table.maybe_drop(it);
}

int Scratch::create(const std::string& dir, const std::string& name, mode_t mode, const fuse_ctx* who,
                    fuse_file_info* fi, fuse_entry_param& e) {
  if (fuse_ino_t existing = ctx_.table.find_scratch(dir, name)) {
    if (fi->flags & O_EXCL) return EEXIST;
    auto node = ctx_.table.copy(existing);
    struct stat st;
    if (node && stat(existing, *node, st) == 0) {
      // create() of a scratch file that exists (no O_EXCL): open it.
      if (fi->flags & O_TRUNC)
        if (int err = truncate(*node->state)) return err;
      ctx_.table.remember(existing, Node{.kind = Kind::kScratch});
      {
        std::lock_guard lock(ctx_.table.mutex);
        ++ctx_.table.nodes[existing].open_handles;
      }
      e = entry_of(existing, st, kItemTimeout);
      fi->fh = ctx_.handles.add(existing, ScratchHandle{node->state});
      return 0;
    }
  }
  int err = 0;
  auto state = ctx_.new_body(err);
  if (!state) return err;
  state->attrs = store::Attrs{uint32_t(S_IFREG | (mode & 07777)), who->uid, who->gid, now_ns()};
  state->ctime_ns = state->attrs.mtime_ns;
  state->emptied_by_open = true;
  Node node;
  node.kind = Kind::kScratch;
  node.state = state;
  node.lookups = 1;
  node.open_handles = 1;
  node.name_as(dir, name);
  fuse_ino_t ino;
  {
    std::lock_guard lock(ctx_.table.mutex);
    ctx_.table.replace_scratch(dir, name);
    ino = ctx_.table.new_dynamic();
    ctx_.table.scratch[{dir, name}] = ino;
    ctx_.table.nodes[ino] = node;
  }
  e = entry_of(ino, Context::body_stat(ino, *state), kItemTimeout);
  fi->fh = ctx_.handles.add(ino, ScratchHandle{state});
  return 0;
}

int Scratch::unlink(const std::string& dir, const std::string& name) {
  std::lock_guard lock(ctx_.table.mutex);
  auto it = ctx_.table.scratch.find({dir, name});
  if (it == ctx_.table.scratch.end()) return ENOENT;
  auto node = ctx_.table.nodes.find(it->second);
  ctx_.table.scratch.erase(it);
  if (node != ctx_.table.nodes.end()) {
    node->second.unlinked = true;
    ctx_.table.maybe_drop(node);
  }
  return 0;
}

int Scratch::rename(const std::string& from_dir, const std::string& name, const std::string& to_dir,
                    const std::string& newname) {
  fuse_ino_t source = ctx_.table.find_scratch(from_dir, name);
  if (!source) return ENOENT;
  std::lock_guard lock(ctx_.table.mutex);
  if (auto old = ctx_.table.scratch.find({to_dir, newname}); old != ctx_.table.scratch.end() && old->second != source)
    ctx_.table.replace_scratch(to_dir, newname);
  ctx_.table.scratch.erase({from_dir, name});
  ctx_.table.scratch[{to_dir, newname}] = source;
  ctx_.table.nodes[source].name_as(to_dir, newname);
  return 0;
}

// rsync's `.x.json.AbC123` and editors' temp files become items here: the
// store takes the bytes as item `id`, or refuses them (logged), and the
// scratch file stays as it was.
int Scratch::to_item(const std::string& dir, const std::string& name, const std::string& to_dir,
                     const std::string& id) {
  fuse_ino_t source = ctx_.table.find_scratch(dir, name);
  if (!source) return ENOENT;
  std::shared_ptr<FileState> state;
  {
    std::lock_guard lock(ctx_.table.mutex);
    auto it = ctx_.table.nodes.find(source);
    if (it == ctx_.table.nodes.end() || !it->second.state) return ENOENT;
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
    err = ctx_.accept_status(id, in, attrs, &stored, &message);
  }
  if (err) {
    ++ctx_.counters.commits_refused;
    ctx_.log.add("refused rename of " + items_path(dir, name) + " onto " + store::item_path(id) + ": " + message +
                 (err == EINVAL ? " (the previous version is kept)" : ""));
    return err;
  }
  ++ctx_.counters.commits;
  std::optional<store::ItemInfo> committed = stored;
  {
    std::lock_guard lock(ctx_.table.mutex);
    ctx_.table.replace_pending(id);
    if (auto it = ctx_.table.scratch.find({dir, name}); it != ctx_.table.scratch.end() && it->second == source)
      ctx_.table.scratch.erase(it);
    // The kernel moves the scratch file's inode to the new name: it becomes
    // another node of the item.
    Node& node = ctx_.table.nodes[source];
    node.name_as(store::shard_of(id), id);
    node.state.reset();
    node.cache_valid = false;
    if (committed)
      ctx_.table.bind_to_item(source, node, committed->ino);
    else
      node.unlinked = true;
  }
  if (to_dir.empty()) ctx_.invalidate_item_entry(id);
  ctx_.invalidate_shard(store::shard_of(id));
  return 0;
}

// vim and editors rename the original aside before writing the new file:
// the item leaves the store and lives on as a scratch file.
int Scratch::from_item(const std::string& from_dir, const std::string& id, const std::string& dir,
                       const std::string& name) {
  bool pending;
  fuse_ino_t source = items_.find_source(id, pending);
  if (!source) return ENOENT;
  std::shared_ptr<FileState> state;
  std::vector<fuse_ino_t> nodes;
  int64_t item_ino = 0;
  if (pending) {
    std::lock_guard lock(ctx_.table.mutex);
    auto it = ctx_.table.nodes.find(source);
    if (it == ctx_.table.nodes.end() || !it->second.state) return ENOENT;
    state = it->second.state;
    nodes.push_back(source);
  } else {
    auto item = ctx_.store.item(id);
    if (!item) return ENOENT;
    item_ino = item->ino;
    int err = 0;
    state = items_.body_of_item(item->ino);  // an open writer's body is the newest
    if (!state) state = items_.body_from_store(*item, false, err);
    if (!state) return err;
    err = ctx_.write_status([&](store::WriteBatch& b) { return b.remove(id); });
    if (err) return err;
  }
  {
    std::lock_guard lock(ctx_.table.mutex);
    if (pending)
      ctx_.table.unpend(id, source);
    else
      nodes = ctx_.table.nodes_of_item(item_ino);
    ctx_.table.replace_scratch(dir, name);
    // Every node the kernel has for the item becomes the scratch file; if it
    // has none, the scratch file gets one of its own.
    if (nodes.empty()) nodes.push_back(ctx_.table.new_dynamic());
    for (fuse_ino_t n : nodes) {
      Node& node = ctx_.table.nodes[n];
      if (node.kind == Kind::kItem && node.item_ino) ctx_.table.forget_alias(node.item_ino, n);
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
    ctx_.table.scratch[{dir, name}] = nodes.front();
  }
  if (from_dir.empty()) ctx_.invalidate_item_entry(id);
  ctx_.invalidate_shard(store::shard_of(id));
  return 0;
}

}  // namespace itemfs::fs
