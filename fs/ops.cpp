// The libfuse low-level operations table (fs/ops.h).
#include "fs/ops.h"

#include <fcntl.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>

#include "fs/commit_rules.h"
#include "fs/names.h"

namespace itemfs::fs {

namespace {

Filesystem& self(fuse_req_t req) { return *static_cast<FsHolder*>(fuse_req_userdata(req))->fs; }

// No failure of the store may take the daemon down: an operation that
// throws answers with the errno the store gave (EIO if none) and is logged.
template <typename F>
void guarded(fuse_req_t req, F&& operation) {
  try {
    operation(self(req));
  } catch (const store::StoreError& e) {
    self(req).ctx.log.add(std::string("error: ") + e.what());
    fuse_reply_err(req, e.code() ? e.code() : EIO);
  } catch (const std::exception& e) {
    self(req).ctx.log.add(std::string("error: ") + e.what());
    fuse_reply_err(req, EIO);
  }
}

void reply_entry(fuse_req_t req, int err, const fuse_entry_param& e) {
  if (err) return (void)fuse_reply_err(req, err);
  fuse_reply_entry(req, &e);
}

void forget_one(Filesystem& fs, fuse_ino_t ino, uint64_t n) {
  try {
    if (is_search_ino(ino))
      fs.search.forget(ino, n);
    else if (is_backup_ino(ino))
      fs.backups.forget(ino, n);
    else
      fs.ctx.table.forget(ino, n);
  } catch (const std::exception&) {
    // forget has no reply to carry an error; the node is left as it was.
  }
}

void op_init(void*, fuse_conn_info* conn) {
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  if (conn->capable & FUSE_CAP_EXPORT_SUPPORT) conn->want |= FUSE_CAP_EXPORT_SUPPORT;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  // Commits happen at close; the kernel must send writes and flushes through.
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

// A name under items/: an item, a shard, or a scratch file.
int lookup_in_items(Filesystem& fs, const std::string& dir, const std::string& name, fuse_entry_param& e) {
  if (name.size() > kNameMax) return ENAMETOOLONG;
  Resolved r = classify(dir, name);
  if (r.what == Resolved::kItem) return fs.items.lookup(dir, r.id, e);
  if (r.what == Resolved::kShard && fs.shards.lookup(name, e) == 0) return 0;
  if (r.what == Resolved::kShard || r.what == Resolved::kScratch) return fs.scratch.lookup(dir, name, e);
  return ENOENT;
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  guarded(req, [&](Filesystem& fs) {
    ++fs.ctx.counters.lookups;
    fuse_entry_param e{};
    int err = ENOENT;
    if (parent == kRootIno)
      err = fs.virtual_files.lookup(name, e);
    else if (parent == kSearchIno || is_search_ino(parent))
      err = fs.search.lookup(parent, name, e, req);
    else if (parent == kBackupsIno || is_backup_ino(parent))
      err = fs.backups.lookup(parent, name, e);
    else if (auto dir = fs.items_dir(parent))
      err = lookup_in_items(fs, *dir, name, e);
    reply_entry(req, err, e);
  });
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t n) {
  forget_one(self(req), ino, n);
  fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* list) {
  for (size_t i = 0; i < count; ++i) forget_one(self(req), list[i].ino, list[i].nlookup);
  fuse_reply_none(req);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  guarded(req, [&](Filesystem& fs) {
    struct stat st;
    if (int err = fs.stat(ino, st)) return (void)fuse_reply_err(req, err);
    fuse_reply_attr(req, &st, Filesystem::attr_timeout(ino, st));
  });
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  guarded(req, [&](Filesystem& fs) {
    Target t = fs.target(ino);
    int err = is_fixed_ino(ino) && ino != kItemsIno ? EPERM : ENOENT;
    if (t.kind == NodeKind::kItemsDir) err = fs.shards.setattr(ino, t.node.name(), attr, to_set);
    if (t.kind == NodeKind::kItem) err = fs.items.setattr(ino, t.node, attr, to_set);
    if (t.kind == NodeKind::kScratch) err = fs.scratch.setattr(t.node, attr, to_set);
    if (err) return (void)fuse_reply_err(req, err);
    op_getattr(req, ino, fi);
  });
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  guarded(req, [&](Filesystem& fs) {
    std::string target;
    int err = is_search_ino(ino)   ? fs.search.readlink(ino, target)
              : is_backup_ino(ino) ? fs.backups.readlink(ino)
                                   : ENOENT;
    if (err) return (void)fuse_reply_err(req, err);
    fuse_reply_readlink(req, target.c_str());
  });
}

// Items come into being by create (open with O_CREAT), never by mknod,
// symlink or link.
void op_mknod(fuse_req_t req, fuse_ino_t, const char* name, mode_t, dev_t) {
  fuse_reply_err(req, std::strlen(name) > kNameMax ? ENAMETOOLONG : EPERM);
}
void op_symlink(fuse_req_t req, const char*, fuse_ino_t, const char* name) {
  fuse_reply_err(req, std::strlen(name) > kNameMax ? ENAMETOOLONG : EPERM);
}
void op_link(fuse_req_t req, fuse_ino_t, fuse_ino_t, const char* name) {
  fuse_reply_err(req, std::strlen(name) > kNameMax ? ENAMETOOLONG : EPERM);
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  guarded(req, [&](Filesystem& fs) {
    fuse_entry_param e{};
    reply_entry(req, fs.shards.mkdir(parent, name, mode, fuse_req_ctx(req), e), e);
  });
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  guarded(req, [&](Filesystem& fs) {
    // One at a time with creates and renames: an item renamed into the
    // shard meanwhile either comes first (ENOTEMPTY) or after (ENOENT).
    std::lock_guard ns(fs.ctx.namespace_mutex);
    fuse_reply_err(req, fs.shards.rmdir(parent, name));
  });
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* raw_name) {
  guarded(req, [&](Filesystem& fs) {
    ++fs.ctx.counters.unlinks;
    std::string name(raw_name);
    auto dir = fs.items_dir(parent);
    if (!dir) return (void)fuse_reply_err(req, parent < kItemBase ? EACCES : EPERM);
    Resolved r = classify(*dir, name);
    std::lock_guard ns(fs.ctx.namespace_mutex);
    switch (plan_unlink(r)) {
      case UnlinkKind::kItem:
        return (void)fuse_reply_err(req, fs.items.unlink(*dir, r.id));
      case UnlinkKind::kScratch:
        return (void)fuse_reply_err(req, fs.scratch.unlink(*dir, name));
      case UnlinkKind::kNoSuchName:
        break;
    }
    fuse_reply_err(req, ENOENT);
  });
}

int rename(Filesystem& fs, fuse_ino_t parent, const std::string& name, fuse_ino_t newparent,
           const std::string& newname, unsigned int flags) {
  if (flags & RENAME_EXCHANGE) return EINVAL;
  auto from_dir = fs.items_dir(parent);
  auto to_dir = fs.items_dir(newparent);
  if (!from_dir || !to_dir) return parent < kItemBase || newparent < kItemBase ? EACCES : EXDEV;
  Resolved from = classify(*from_dir, name);
  Resolved to = classify(*to_dir, newname);
  RenamePlan plan = plan_rename(from, name, to, newname);
  if (plan.log_refusal)
    fs.ctx.log.add("refused rename to " + items_path(*to_dir, newname) + ": " +
                   (to.what == Resolved::kBadItemName
                        ? to.why
                        : "a name is at most " + std::to_string(kNameMax) + " bytes"));
  if (plan.kind == RenameKind::kRefused) return plan.error;
  std::lock_guard ns(fs.ctx.namespace_mutex);
  struct stat st;
  bool target_exists = to.what == Resolved::kItem ? fs.items.find(to.id, st) != 0
                                                  : fs.ctx.table.find_scratch(*to_dir, newname) != 0;
  if ((flags & RENAME_NOREPLACE) && target_exists) return EEXIST;
  switch (plan.kind) {
    case RenameKind::kItemToItem:
      return fs.items.rename(*from_dir, from.id, *to_dir, to.id);
    case RenameKind::kItemToScratch:
      return fs.scratch.from_item(*from_dir, from.id, *to_dir, newname);
    case RenameKind::kScratchToItem:
      return fs.scratch.to_item(*from_dir, name, *to_dir, to.id);
    case RenameKind::kScratchToScratch:
      return fs.scratch.rename(*from_dir, name, *to_dir, newname);
    case RenameKind::kRefused:
      break;
  }
  return plan.error;
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
               unsigned int flags) {
  guarded(req, [&](Filesystem& fs) {
    ++fs.ctx.counters.renames;
    fuse_reply_err(req, rename(fs, parent, name, newparent, newname, flags));
  });
}

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  guarded(req, [&](Filesystem& fs) {
    ++fs.ctx.counters.opens;
    bool writing = (fi->flags & O_ACCMODE) != O_RDONLY;
    Target t = fs.target(ino);
    int err = ENOENT;
    if (t.kind == NodeKind::kVirtual || ino == kItemsIno) err = fs.virtual_files.open(ino, writing, fi);
    if (t.kind == NodeKind::kItemsDir && ino != kItemsIno) err = EISDIR;
    if (t.kind == NodeKind::kItem) err = fs.items.open(ino, t.node, fi);
    if (t.kind == NodeKind::kScratch) err = fs.scratch.open(ino, t.node, fi);
    if (t.kind == NodeKind::kSearch) err = fs.search.open(ino, writing, fi, req);
    if (t.kind == NodeKind::kBackups) err = fs.backups.open(ino, writing, fi);
    if (err) return (void)fuse_reply_err(req, err);
    fuse_reply_open(req, fi);
  });
}

void op_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  guarded(req, [&](Filesystem& fs) {
    ++fs.ctx.counters.reads;
    auto h = fs.ctx.handles.get(fi);
    std::string out;
    int err = 0;
    if (auto* item = h->as<ItemHandle>()) err = fs.items.read(h->ino, *item, size, off, out);
    if (auto* scratch = h->as<ScratchHandle>()) err = fs.scratch.read(*scratch, size, off, out);
    if (auto* file = h->as<BackupFileHandle>()) err = fs.backups.read(*file, size, off, out);
    if (h->as<LogHandle>()) out = fs.virtual_files.read_log(size, off);
    if (auto* text = h->as<TextHandle>(); text && uint64_t(off) < text->text.size())
      out = text->text.substr(size_t(off), size);
    if (err) return (void)fuse_reply_err(req, err);
    fuse_reply_buf(req, out.data(), out.size());
  });
}

void op_write(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  guarded(req, [&](Filesystem& fs) {
    ++fs.ctx.counters.writes;
    auto h = fs.ctx.handles.get(fi);
    ssize_t n = -EBADF;
    if (auto* ctl = h->as<CtlHandle>()) {
      int err = fs.backups.control_write(std::string_view(buf, size), *ctl);
      n = err ? -err : ssize_t(size);
    }
    if (auto* item = h->as<ItemHandle>()) n = fs.items.write(h->ino, *item, buf, size, off);
    if (auto* scratch = h->as<ScratchHandle>()) n = fs.scratch.write(h->ino, *scratch, buf, size, off);
    if (n < 0) return (void)fuse_reply_err(req, int(-n));
    fuse_reply_write(req, size_t(n));
  });
}

void op_flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  guarded(req, [&](Filesystem& fs) {
    auto h = fs.ctx.handles.get(fi);
    int err = 0;
    if (auto* ctl = h->as<CtlHandle>()) err = fs.backups.control_flush(*ctl);
    if (auto* item = h->as<ItemHandle>()) err = fs.items.flush(ino, *item);
    fuse_reply_err(req, err);
  });
}

void op_fsync(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info* fi) {
  guarded(req, [&](Filesystem& fs) {
    auto h = fs.ctx.handles.get(fi);
    int err = 0;
    if (auto* item = h->as<ItemHandle>()) err = fs.items.fsync(ino, *item);
    if (auto* scratch = h->as<ScratchHandle>()) err = fs.scratch.fsync(*scratch);
    fuse_reply_err(req, err);
  });
}

void op_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  guarded(req, [&](Filesystem& fs) {
    auto h = fs.ctx.handles.take(fi->fh);
    if (!h) return (void)fuse_reply_err(req, 0);
    if (auto* ctl = h->as<CtlHandle>()) fs.backups.control_flush(*ctl);
    if (auto* item = h->as<ItemHandle>()) fs.items.release(ino, *item);
    if (h->as<ScratchHandle>()) fs.scratch.release(ino);
    fuse_reply_err(req, 0);
  });
}

// New file under items/: an item (pending until its first commit) or a
// scratch file.
void op_create(fuse_req_t req, fuse_ino_t parent, const char* raw_name, mode_t mode, fuse_file_info* fi) {
  guarded(req, [&](Filesystem& fs) {
    ++fs.ctx.counters.creates;
    std::string name(raw_name);
    auto dir = fs.items_dir(parent);
    if (!dir) return (void)fuse_reply_err(req, parent == kRootIno || parent < kItemBase ? EACCES : EPERM);
    Resolved r = classify(*dir, name);
    if (r.what == Resolved::kBadItemName) {
      fs.ctx.log.add("refused to create " + items_path(*dir, name) + ": " + r.why);
      return (void)fuse_reply_err(req, r.error);
    }
    if (name.size() > kNameMax) {
      fs.ctx.log.add("refused to create " + items_path(*dir, name) + ": a name is at most " +
                     std::to_string(kNameMax) + " bytes");
      return (void)fuse_reply_err(req, ENAMETOOLONG);
    }
    fuse_entry_param e{};
    std::lock_guard ns(fs.ctx.namespace_mutex);
    int err = r.what == Resolved::kItem ? fs.items.create(*dir, r.id, mode, fuse_req_ctx(req), fi, e)
                                        : fs.scratch.create(*dir, name, mode, fuse_req_ctx(req), fi, e);
    if (err) return (void)fuse_reply_err(req, err);
    fuse_reply_create(req, &e, fi);
  });
}

void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  guarded(req, [&](Filesystem& fs) {
    ++fs.ctx.counters.readdirs;
    Target t = fs.target(ino);
    DirHandle handle;
    struct stat self_st, root_st;
    if (int err = fs.stat(ino, t, self_st)) return (void)fuse_reply_err(req, err);
    fs.virtual_files.stat(kRootIno, root_st);
    handle.entries.emplace_back(".", self_st);
    handle.entries.emplace_back("..", root_st);
    int err = 0;
    if (ino == kRootIno)
      fs.virtual_files.list(handle.entries);
    else if (t.kind == NodeKind::kItemsDir)
      fs.shards.opendir(ino == kItemsIno ? "" : t.node.name(), handle, fi);
    else if (t.kind == NodeKind::kSearch)
      err = fs.search.list(ino, handle.entries, req);
    else if (t.kind == NodeKind::kBackups)
      err = fs.backups.list(ino, handle.entries);
    else
      err = ENOTDIR;
    if (err) return (void)fuse_reply_err(req, err);
    fi->fh = fs.ctx.handles.add(ino, std::move(handle));
    fuse_reply_open(req, fi);
  });
}

// readdirplus hands the kernel a reference per entry, as lookup does.
void remember_listed(Filesystem& fs, const std::string& name, fuse_ino_t ino) {
  if (is_search_ino(ino))
    fs.search.remember(ino);
  else if (is_backup_ino(ino))
    fs.backups.remember(ino);
  else
    fs.ctx.table.remember_listed(ino, name);
}

void readdir(fuse_req_t req, size_t size, off_t off, fuse_file_info* fi, bool plus) {
  guarded(req, [&](Filesystem& fs) {
    auto h = fs.ctx.handles.get(fi);
    auto* dir = h->as<DirHandle>();
    if (!dir) return (void)fuse_reply_err(req, ENOTDIR);
    if (dir->unlisted_dir) {
      fs.shards.list(*dir->unlisted_dir, dir->entries);
      dir->unlisted_dir.reset();
    }
    std::string buf(size, '\0');
    size_t used = 0;
    for (size_t i = size_t(off); i < dir->entries.size(); ++i) {
      const auto& [name, st] = dir->entries[i];
      size_t n;
      if (plus) {
        fuse_entry_param e{};
        bool dot = name == "." || name == "..";
        if (!dot) {
          e = entry_of(st.st_ino, st, is_uncached_ino(st.st_ino) ? 0 : kItemTimeout);
          if (st.st_ino == kLogIno) e.attr_timeout = 0;  // it grows: tail -f asks for its size
        } else {
          e.attr = st;
        }
        n = fuse_add_direntry_plus(req, buf.data() + used, size - used, name.c_str(), &e, off_t(i + 1));
        if (n > size - used) break;
        if (!dot) remember_listed(fs, name, st.st_ino);
      } else {
        n = fuse_add_direntry(req, buf.data() + used, size - used, name.c_str(), &st, off_t(i + 1));
        if (n > size - used) break;
      }
      used += n;
    }
    fuse_reply_buf(req, buf.data(), used);
  });
}

void op_readdir(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  readdir(req, size, off, fi, false);
}
void op_readdirplus(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  readdir(req, size, off, fi, true);
}

void op_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  guarded(req, [&](Filesystem& fs) {
    fs.ctx.handles.take(fi->fh);
    fuse_reply_err(req, 0);
  });
}

// fsync of items/ or of a shard: the barrier for scripts (sync(1) never
// reaches a FUSE daemon). Every change made before it is committed already;
// the store is synced. Other directories hold nothing to sync.
void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
  guarded(req, [&](Filesystem& fs) { fuse_reply_err(req, is_items_dir(ino) ? fs.ctx.sync_store() : 0); });
}

// The disk of the store: its free space, and the store's size as the space used.
void op_statfs(fuse_req_t req, fuse_ino_t) {
  guarded(req, [&](Filesystem& fs) {
    struct statvfs disk {};
    if (statvfs(fs.ctx.config.store_dir.c_str(), &disk) != 0) return (void)fuse_reply_err(req, errno);
    store::Stats s = fs.ctx.store.stats();
    struct statvfs out = disk;
    uint64_t unit = disk.f_frsize ? disk.f_frsize : 4096;
    uint64_t used = (s.database_bytes + unit - 1) / unit;
    out.f_blocks = used + disk.f_bavail;
    out.f_bfree = disk.f_bavail;
    out.f_bavail = disk.f_bavail;
    out.f_files = s.items + disk.f_ffree;
    out.f_ffree = disk.f_ffree;
    out.f_favail = disk.f_favail;
    out.f_namemax = kNameMax;
    fuse_reply_statfs(req, &out);
  });
}

const fuse_lowlevel_ops kOps = [] {
  fuse_lowlevel_ops ops{};
  ops.init = op_init;
  ops.lookup = op_lookup;
  ops.forget = op_forget;
  ops.forget_multi = op_forget_multi;
  ops.getattr = op_getattr;
  ops.setattr = op_setattr;
  ops.readlink = op_readlink;
  ops.mknod = op_mknod;
  ops.mkdir = op_mkdir;
  ops.unlink = op_unlink;
  ops.rmdir = op_rmdir;
  ops.symlink = op_symlink;
  ops.link = op_link;
  ops.rename = op_rename;
  ops.open = op_open;
  ops.read = op_read;
  ops.write = op_write;
  ops.flush = op_flush;
  ops.release = op_release;
  ops.fsync = op_fsync;
  ops.opendir = op_opendir;
  ops.readdir = op_readdir;
  ops.readdirplus = op_readdirplus;
  ops.releasedir = op_releasedir;
  ops.fsyncdir = op_fsyncdir;
  ops.statfs = op_statfs;
  ops.create = op_create;
  return ops;
}();

}  // namespace

const fuse_lowlevel_ops& low_level_ops() { return kOps; }

}  // namespace itemfs::fs
