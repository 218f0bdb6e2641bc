// Scratch files: every name under items/ that is not an item or a shard
// (rsync's `.x.json.AbC123`, vim's `.x.json.swp` and `4913`, `x.json~`).
// Full POSIX files while mounted, held in a staging body, never stored,
// indexed or backed up. Renaming one onto an item name commits its bytes as
// that item (to_item); renaming an item onto a scratch name takes the item
// out of the store into a scratch file (from_item: editors' backups).
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <string>

#include "fs/context.h"
#include "fs/items.h"

namespace itemfs::fs {

class Scratch {
 public:
  Scratch(Context& ctx, Items& items) : ctx_(ctx), items_(items) {}

  int lookup(const std::string& dir, const std::string& name, fuse_entry_param& e);
  int stat(fuse_ino_t ino, const Node& node, struct stat& st);
  int setattr(const Node& node, const struct stat* attr, int to_set);
  int open(fuse_ino_t ino, const Node& node, fuse_file_info* fi);
  int read(ScratchHandle& h, size_t size, off_t off, std::string& out);
  ssize_t write(fuse_ino_t ino, ScratchHandle& h, const char* buf, size_t size, off_t off);
  int fsync(ScratchHandle& h);
  void release(fuse_ino_t ino);
  // The caller holds namespace_mutex and replies with `e`.
  int create(const std::string& dir, const std::string& name, mode_t mode, const fuse_ctx* who, fuse_file_info* fi,
             fuse_entry_param& e);
  int unlink(const std::string& dir, const std::string& name);
  // The renames that involve a scratch file (the caller holds namespace_mutex).
  int rename(const std::string& from_dir, const std::string& name, const std::string& to_dir,
             const std::string& newname);
  int to_item(const std::string& dir, const std::string& name, const std::string& to_dir, const std::string& id);
  int from_item(const std::string& from_dir, const std::string& id, const std::string& dir, const std::string& name);

 private:
  // Empties a scratch file opened with O_TRUNC.
  static int truncate(FileState& state);

  Context& ctx_;
  Items& items_;
};

}  // namespace itemfs::fs
