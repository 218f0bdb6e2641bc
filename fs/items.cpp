// Items: lookup, attributes, open, read, write, setattr (fs/items.h).
#include "fs/items.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "fs/commit_rules.h"

namespace itemfs::fs {

fuse_ino_t Items::find(const std::string& id, struct stat& st) {
  {
    std::lock_guard lock(ctx_.table.mutex);
    if (auto p = ctx_.table.pending.find(id); p != ctx_.table.pending.end()) {
      st = Context::body_stat(p->second, *ctx_.table.nodes.at(p->second).state);
      return p->second;
    }
  }
  auto item = ctx_.store.item(id);
  if (!item) return 0;
  fuse_ino_t ino = InodeTable::item_node(item->ino);
  st = Context::item_stat(*item);
  {
    std::lock_guard lock(ctx_.table.mutex);
    auto it = ctx_.table.nodes.find(ino);
    if (it != ctx_.table.nodes.end() && it->second.state) {
      std::lock_guard state_lock(it->second.state->mutex);
      st.st_size = off_t(it->second.state->size);
      st.st_mode = it->second.state->attrs.mode;
      st.st_mtim = to_timespec(it->second.state->attrs.mtime_ns);
    }
  }
  return ino;
}

int Items::lookup(const std::string& dir, const std::string& id, fuse_entry_param& e) {
  struct stat st {};
  fuse_ino_t ino = find(id, st);
  if (!ino) return ENOENT;
  Node like;
  like.kind = Kind::kItem;
  like.item_ino = InodeTable::item_ino_of(ino);
  ctx_.table.remember(ino, like);
  // A flat name (items/<id>.json) is an alias the kernel must not keep.
  e = entry_of(ino, st, dir.empty() ? 0 : kItemTimeout);
  return 0;
}

int Items::stat(fuse_ino_t ino, const Node& node, struct stat& st) {
  // Removed while open (as on ext4, fstat of the open file still works,
  // with no link left).
  if (node.state) {
    st = Context::body_stat(node.item_ino ? InodeTable::item_node(node.item_ino) : ino, *node.state);
    if (node.unlinked) st.st_nlink = 0;
    return 0;
  }
  if (node.unlinked) {
    std::lock_guard lock(ctx_.table.mutex);
    if (auto g = ctx_.table.unlinked_open.find(ino); g != ctx_.table.unlinked_open.end()) {
      st = g->second;
      return 0;
    }
  }
  if (node.pending) return ENOENT;
  auto item = ctx_.store.item_by_ino(node.item_ino);
  if (!item) return ENOENT;
  st = Context::item_stat(*item);
  return 0;
}

int Items::setattr(fuse_ino_t ino, const Node& node, const struct stat* attr, int to_set) {
  std::shared_ptr<FileState> state = node.state;
  bool size_change = to_set & FUSE_SET_ATTR_SIZE;
  if (!state && size_change) {
    // truncate(2) by path with nobody writing: stage, cut, commit now.
    int err = 0;
    state = stage(ino, false, err);
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
      if (uint64_t(attr->st_size) > ctx_.store.options().max_item_size) return EFBIG;
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
    if (node.pending || state->dirty) return 0;
    staged_attrs = state->attrs;
  }
  if (to_set & ~FUSE_SET_ATTR_SIZE) {
    auto item = ctx_.store.item_by_ino(node.item_ino);
    if (!item) return ENOENT;
    store::Attrs attrs = state ? staged_attrs : apply_setattr(item->attrs, attr, to_set);
    return ctx_.write_status([&](store::WriteBatch& b) { return b.set_attrs(item->id, attrs); });
  }
  return 0;
}

std::shared_ptr<FileState> Items::body_from_store(const store::ItemInfo& item, bool truncate, int& err) {
  auto state = ctx_.new_body(err);
  if (!state) return nullptr;
  state->attrs = item.attrs;
  state->ctime_ns = item.ctime_ns;
  if (truncate) return state;
  auto reader = ctx_.store.open_item(item);
  if (!reader) {
    err = ESTALE;
    return nullptr;
  }
  std::string piece;
  for (uint64_t offset = 0; offset < item.size; offset += piece.size()) {
    store::Status s = reader->pread(offset, store::kChunkSize, piece);
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

std::shared_ptr<FileState> Items::body_of_item(int64_t ino) {
  std::lock_guard lock(ctx_.table.mutex);
  for (fuse_ino_t n : ctx_.table.nodes_of_item(ino))
    if (auto it = ctx_.table.nodes.find(n); it != ctx_.table.nodes.end() && it->second.state) return it->second.state;
  return nullptr;
}

std::shared_ptr<FileState> Items::stage(fuse_ino_t ino, bool truncate, int& err) {
  int64_t item_ino;
  {
    std::lock_guard lock(ctx_.table.mutex);
    auto it = ctx_.table.nodes.find(ino);
    if (it == ctx_.table.nodes.end() || it->second.unlinked) {
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
  auto item = ctx_.store.item_by_ino(item_ino);
  if (!item) {
    err = ENOENT;
    return nullptr;
  }
  auto state = body_from_store(*item, truncate, err);
  if (!state) return nullptr;
  std::lock_guard lock(ctx_.table.mutex);
  auto it = ctx_.table.nodes.find(ino);
  if (it == ctx_.table.nodes.end()) {
    err = ENOENT;
    return nullptr;
  }
  if (!it->second.state) it->second.state = state;
  std::lock_guard state_lock(it->second.state->mutex);
  ++it->second.state->writers;
  return it->second.state;
}

// A pending item keeps its body: it is all there is of the item. One never
// committed (refused, superseded) may have reached the kernel as a size:
// until the state is dropped here a getattr answers with its size, which the
// kernel keeps for kItemTimeout. So the kernel is told to forget it only now,
// in the same critical section: an open that no longer sees the state sees
// the invalidation pending and bypasses the kernel's size.
void Items::unstage(fuse_ino_t ino, const std::shared_ptr<FileState>& state) {
  std::lock_guard lock(ctx_.table.mutex);
  bool idle, uncommitted;
  {
    std::lock_guard state_lock(state->mutex);
    idle = --state->writers == 0;
    uncommitted = state->dirty;
  }
  auto it = ctx_.table.nodes.find(ino);
  if (!idle || it == ctx_.table.nodes.end() || it->second.state != state || it->second.kind != Kind::kItem) return;
  if (!drop_body_when_idle(it->second.pending, it->second.unlinked)) return;
  it->second.state.reset();
  if (uncommitted) {
    it->second.cache_valid = false;
    ctx_.invalidator.inode(ino);
  }
}

int Items::truncate_for_open(FileState& state) {
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

uint64_t Items::generation_of(FileState& state) {
  std::lock_guard lock(state.mutex);
  return state.generation;
}

// Two programs rewriting one item at once never leave a mix of the two.
bool Items::superseded(const ItemHandle& h) {
  return h.state && fs::superseded(h.writer, h.generation, generation_of(*h.state));
}

int Items::open_for_writing(fuse_ino_t ino, bool truncate, ItemHandle& h) {
  int err = 0;
  auto state = stage(ino, truncate, err);
  if (!state) return err;
  if (truncate && (err = truncate_for_open(*state)) != 0) {
    unstage(ino, state);
    return err;
  }
  h.state = state;
  h.writer = true;
  h.generation = generation_of(*state);
  return 0;
}

// Undoes what open() counted for a cached reader that could not be opened:
// a count left behind would keep every later reader off the page cache.
void Items::forget_reader(fuse_ino_t ino, const ItemHandle& h) {
  if (h.cached_reader_of == 0) return;
  std::lock_guard lock(ctx_.table.mutex);
  auto it = ctx_.table.nodes.find(ino);
  if (it != ctx_.table.nodes.end() && h.cached_reader_of == it->second.commits + 1) --it->second.current_readers;
}

int Items::open(fuse_ino_t ino, const Node& node, fuse_file_info* fi) {
  bool writing = (fi->flags & O_ACCMODE) != O_RDONLY;
  ItemHandle handle;
  if (writing) {
    if (int err = open_for_writing(ino, fi->flags & O_TRUNC, handle)) return err;
  } else if (node.state && node.pending) {
    handle.state = node.state;  // a new item has no other version yet
    fi->keep_cache = 0;
  } else {
    auto item = ctx_.store.item_by_ino(node.item_ino);
    if (!item) return ENOENT;
    // Readers get the committed version, never a writer's staged body.
    // While someone writes the item in place (the kernel's size of the
    // file is the writer's) or a reader of an older version is still open
    // (it may fill the page cache with old pages), a reader bypasses the
    // page cache, so that it reads one committed version whole. So does
    // one opened before the kernel has dropped a size it was told (a
    // refused truncate, a restore): reads through the page cache stop at
    // the size the kernel holds.
    bool kernel_size_stale = ctx_.invalidator.pending(ino);
    {
      std::lock_guard lock(ctx_.table.mutex);
      auto it = ctx_.table.nodes.find(ino);
      if (it != ctx_.table.nodes.end()) {
        Node& live = it->second;
        if (node.state || live.stale_readers > 0 || kernel_size_stale) {
          fi->direct_io = 1;
          fi->keep_cache = 0;
        } else {
          fi->keep_cache = live.cache_valid && live.cached_sha == item->sha256;
          live.cached_sha = item->sha256;
          live.cache_valid = true;
          ++live.current_readers;
          handle.cached_reader_of = live.commits + 1;
        }
      }
    }
    // The first chunk is read now even when the kernel holds the pages:
    // should it drop some and ask again, they must come from the version
    // it cached, whatever a writer commits meanwhile.
    try {
      handle.reader = ctx_.store.open_item(*item);
    } catch (...) {
      forget_reader(ino, handle);
      throw;
    }
    if (!handle.reader) {
      forget_reader(ino, handle);
      return ESTALE;
    }
    fi->noflush = 1;
  }
  {
    std::lock_guard lock(ctx_.table.mutex);
    auto it = ctx_.table.nodes.find(ino);
    if (it != ctx_.table.nodes.end()) ++it->second.open_handles;
  }
  fi->fh = ctx_.handles.add(ino, std::move(handle));
  return 0;
}

int Items::read(fuse_ino_t ino, ItemHandle& h, size_t size, off_t off, std::string& out) {
  if (h.reader) {
    store::Status s = h.reader->pread(uint64_t(off), size, out);
    // Damaged content (its bytes are not what its hash names) is never
    // handed out: the reader gets EIO, the log says which item.
    if (s.code == EIO) ctx_.log.add("error: reading " + ctx_.node_path(ino) + ": " + s.message);
    return s.code;
  }
  out.assign(size, '\0');
  ssize_t n = pread(h.state->fd, out.data(), size, off);
  if (n < 0) return errno;
  out.resize(size_t(n));
  return 0;
}

ssize_t Items::write(fuse_ino_t ino, ItemHandle& h, const char* buf, size_t size, off_t off) {
  if (!h.state) return -EBADF;
  if (h.writer && uint64_t(off) + size > ctx_.store.options().max_item_size) return -EFBIG;
  std::lock_guard body(h.state->body);
  if (superseded(h)) return -ESTALE;
  return ctx_.write_body(ino, *h.state, buf, size, off);
}

}  // namespace itemfs::fs
