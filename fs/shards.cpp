// items/ and its shards (fs/shards.h).
#include "fs/shards.h"

#include <cerrno>

#include "fs/names.h"

namespace itemfs::fs {

namespace {

struct stat dir_stat(fuse_ino_t ino, const store::DirInfo& dir) {
  return stat_of(ino, dir.attrs.mode, 0, dir.attrs.uid, dir.attrs.gid, dir.attrs.mtime_ns, dir.ctime_ns);
}

}  // namespace

int Shards::stat(fuse_ino_t ino, const std::string& name, struct stat& st) {
  auto dir = ctx_.store.dir_info(name);
  if (!dir) return ENOENT;
  st = dir_stat(ino, *dir);
  return 0;
}

int Shards::lookup(const std::string& name, fuse_entry_param& e) {
  auto info = ctx_.store.dir_info(name);
  if (!info) return ENOENT;
  fuse_ino_t ino = InodeTable::shard_node(info->ino);
  ctx_.table.remember(ino, InodeTable::shard(name));
  e = entry_of(ino, dir_stat(ino, *info), kItemTimeout);
  return 0;
}

int Shards::setattr(fuse_ino_t, const std::string& name, const struct stat* attr, int to_set) {
  if (to_set & FUSE_SET_ATTR_SIZE) return EISDIR;
  auto dir = ctx_.store.dir_info(name);
  if (!dir) return ENOENT;
  store::Attrs attrs = apply_setattr(dir->attrs, attr, to_set);
  return ctx_.write_status([&](store::WriteBatch& b) { return b.set_dir_attrs(name, attrs); });
}

int Shards::mkdir(fuse_ino_t parent, const std::string& name, mode_t mode, const fuse_ctx* who,
                  fuse_entry_param& e) {
  if (name.size() > kNameMax) return ENAMETOOLONG;
  if (parent != kItemsIno) return parent == kRootIno || parent < kItemBase ? EACCES : EPERM;
  if (classify("", name).what != Resolved::kShard) {
    ctx_.log.add("refused mkdir items/" + name + ": directories under items/ are shards named by two characters");
    return EINVAL;
  }
  store::Attrs attrs{uint32_t(S_IFDIR | (mode & 07777)), who->uid, who->gid, store::kMtimeNow};
  if (int err = ctx_.write_status([&](store::WriteBatch& b) { return b.make_dir(name, attrs); })) return err;
  auto info = ctx_.store.dir_info(name);
  if (!info) return EIO;
  fuse_ino_t ino = InodeTable::shard_node(info->ino);
  ctx_.table.remember(ino, InodeTable::shard(name));
  e = entry_of(ino, dir_stat(ino, *info), kItemTimeout);
  return 0;
}

int Shards::rmdir(fuse_ino_t parent, const std::string& name) {
  if (parent != kItemsIno) return parent < kItemBase ? EACCES : ENOTDIR;
  {
    std::lock_guard lock(ctx_.table.mutex);
    for (auto& [key, ino] : ctx_.table.scratch)
      if (key.first == name) return ENOTEMPTY;
    for (auto& [id, ino] : ctx_.table.pending)
      if (store::shard_of(id) == name) return ENOTEMPTY;
  }
  return ctx_.write_status([&](store::WriteBatch& b) { return b.remove_dir(name); });
}

void Shards::opendir(const std::string& dir, DirHandle& handle, fuse_file_info* fi) {
  // The kernel keeps the listing across opens. Changes made through the
  // mount reset it by themselves (the kernel bumps the directory's
  // version); the others invalidate the directory's inode. While the
  // kernel holds it, it opens the directory but does not read it: the
  // listing is made at the first readdir.
  fi->cache_readdir = 1;
  fi->keep_cache = 1;
  handle.unlisted_dir = dir;
}

void Shards::list(const std::string& dir, DirEntries& entries) {
  auto add = [&](const std::string& name, const struct stat& st) { entries.emplace_back(name, st); };
  if (dir.empty()) {
    for (const auto& d : ctx_.store.list_dirs()) add(d.name, dir_stat(InodeTable::shard_node(d.ino), d));
  } else {
    for (const auto& item : ctx_.store.list_shard(dir)) add(item.id + ".json", Context::item_stat(item));
    std::lock_guard lock(ctx_.table.mutex);
    for (auto& [id, pending_ino] : ctx_.table.pending)
      if (store::shard_of(id) == dir)
        add(id + ".json", Context::body_stat(pending_ino, *ctx_.table.nodes.at(pending_ino).state));
  }
  std::lock_guard lock(ctx_.table.mutex);
  for (auto& [key, scratch_ino] : ctx_.table.scratch)
    if (key.first == dir) add(key.second, Context::body_stat(scratch_ino, *ctx_.table.nodes.at(scratch_ino).state));
}

}  // namespace itemfs::fs
