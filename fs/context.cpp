// What every kind of node of a mount shares (fs/context.h).
#include "fs/context.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "fs/names.h"

namespace itemfs::fs {

Context::Context(store::Store& the_store, const MountConfig& the_config) : store(the_store), config(the_config) {
  // Staged bodies are items' text: the store's owner's alone, as the store
  // is. A read-only mount stages nothing (the kernel refuses every write).
  std::filesystem::path staging_dir = config.store_dir / "staging";
  if (!store.options().read_only && ::mkdir(staging_dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw store::StoreError(errno, "cannot create " + staging_dir.string() + ": " + std::strerror(errno));
  staging = std::make_shared<StagingPool>(staging_dir);
  std::string error;
  if (!log.use_file(config.log_file.empty() ? config.store_dir / "log" : config.log_file, config.log_max_bytes,
                    &error))
    log.add("warning: " + error + "; MNT/log holds this mount's last events only");
  if (std::string warning = store::permissions_warning(config.store_dir); !warning.empty())
    log.add("warning: " + warning);
}

int Context::write_status(const std::function<store::Status(store::WriteBatch&)>& fn, std::string* message) {
  return store_status([&] {
    store::Status status;
    store.write([&](store::WriteBatch& batch) { status = fn(batch); });
    return status;
  }, message);
}

int Context::accept_status(const std::string& id, std::istream& content, const store::Attrs& attrs,
                           store::ItemInfo* stored, std::string* message) {
  return store_status([&] { return store.accept(id, content, attrs, stored); }, message);
}

int Context::store_status(const std::function<store::Status()>& fn, std::string* message) {
  store::Status status;
  try {
    status = fn();
  } catch (const store::StoreError& e) {
    status = store::Status::error(e.code(), e.what());
  } catch (const std::exception& e) {
    status = store::Status::error(EIO, e.what());
  }
  if (message) *message = status.message;
  if (!status.ok() && (status.code == EIO || status.code == ENOSPC || status.code == ENOMEM))
    log.add("error: " + status.message);
  return status.code;
}

int Context::sync_store() {
  try {
    store.sync();
    return 0;
  } catch (const store::StoreError& e) {
    log.add(std::string("error: ") + e.what());
    return e.code() ? e.code() : EIO;
  }
}

void Context::invalidate_shard(const std::string& shard) {
  if (auto dir = store.dir_info(shard)) invalidator.inode(InodeTable::shard_node(dir->ino));
  invalidator.inode(kItemsIno);
}

void Context::invalidate_item_entry(const std::string& id) {
  if (auto dir = store.dir_info(store::shard_of(id)))
    invalidator.entry(InodeTable::shard_node(dir->ino), id + ".json");
}

void Context::invalidate_items_tree() {
  std::vector<fuse_ino_t> inodes;
  {
    std::lock_guard lock(table.mutex);
    for (const auto& [ino, node] : table.nodes)
      if (node.kind == Kind::kShard || (node.kind == Kind::kItem && !node.pending)) inodes.push_back(ino);
  }
  for (const auto& d : store.list_dirs()) invalidator.entry(kItemsIno, d.name);
  invalidator.inode(kItemsIno);
  for (fuse_ino_t ino : inodes) invalidator.inode(ino);
}

struct stat Context::item_stat(const store::ItemInfo& item) {
  return stat_of(InodeTable::item_node(item.ino), item.attrs.mode, item.size, item.attrs.uid, item.attrs.gid,
                 item.attrs.mtime_ns, item.ctime_ns);
}

std::shared_ptr<FileState> Context::new_body(int& err) {
  auto state = std::make_shared<FileState>();
  state->pool = staging;
  state->fd = staging->take();
  if (state->fd < 0) {
    err = -state->fd;
    return nullptr;
  }
  return state;
}

std::string Context::node_path(fuse_ino_t ino) {
  int64_t item_ino = 0;
  {
    std::lock_guard lock(table.mutex);
    auto it = table.nodes.find(ino);
    if (it == table.nodes.end()) return "a removed file";
    const Node& node = it->second;
    if (node.kind == Kind::kItem && (node.pending || !node.item_ino)) return store::item_path(node.name());
    if (node.kind != Kind::kItem) return items_path(node.dir(), node.name());
    item_ino = node.item_ino;
  }
  auto item = store.item_by_ino(item_ino);  // a committed item's id is the store's
  return item ? store::item_path(item->id) : "a removed file";
}

store::Attrs apply_setattr(store::Attrs attrs, const struct stat* attr, int to_set) {
  if (to_set & FUSE_SET_ATTR_MODE) attrs.mode = (attrs.mode & S_IFMT) | (attr->st_mode & 07777);
  if (to_set & FUSE_SET_ATTR_UID) attrs.uid = attr->st_uid;
  if (to_set & FUSE_SET_ATTR_GID) attrs.gid = attr->st_gid;
  if (to_set & FUSE_SET_ATTR_MTIME) attrs.mtime_ns = from_timespec(attr->st_mtim);
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) attrs.mtime_ns = now_ns();
  return attrs;
}

struct stat Context::body_stat(fuse_ino_t ino, FileState& state) {
  std::lock_guard lock(state.mutex);
  return stat_of(ino, state.attrs.mode, state.size, state.attrs.uid, state.attrs.gid, state.attrs.mtime_ns,
                 state.ctime_ns);
}

ssize_t Context::write_body(fuse_ino_t ino, FileState& state, const char* buf, size_t size, off_t off) {
  if (uint64_t end = uint64_t(off) + size; end > state.size) {
    uint64_t grow = end - state.size;
    if (auto room = store.check_staging_room(grow); !room.ok()) {
      log.add("refused a write to " + node_path(ino) + ": " + room.message);
      return -room.code;
    }
  }
  ssize_t n = pwrite(state.fd, buf, size, off);
  if (n < 0) return -errno;
  std::lock_guard lock(state.mutex);
  state.emptied_by_open = false;
  state.size = std::max<uint64_t>(state.size, uint64_t(off) + uint64_t(n));
  state.dirty = true;
  ++state.version;
  state.attrs.mtime_ns = state.ctime_ns = now_ns();
  return n;
}

}  // namespace itemfs::fs
