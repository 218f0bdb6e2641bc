// items/ and its shards: the directories of items/. A shard is named by the
// first two characters (code points) of the ids it holds; mkdir makes one,
// rmdir removes an empty one, and their modes, owners and times are the
// store's. Listings are made at the first readdir and kept by the kernel
// (cache_readdir) until a change invalidates them.
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <string>

#include "fs/context.h"

namespace itemfs::fs {

class Shards {
 public:
  explicit Shards(Context& ctx) : ctx_(ctx) {}

  // Attributes of items/ or of shard node `ino` (named `name`).
  int stat(fuse_ino_t ino, const std::string& name, struct stat& st);
  // items/<name>: ENOENT when no such shard exists.
  int lookup(const std::string& name, fuse_entry_param& e);
  int setattr(fuse_ino_t ino, const std::string& name, const struct stat* attr, int to_set);
  int mkdir(fuse_ino_t parent, const std::string& name, mode_t mode, const fuse_ctx* who, fuse_entry_param& e);
  int rmdir(fuse_ino_t parent, const std::string& name);
  // opendir of items/ directory `dir` ("" = items/): the listing waits for the first readdir.
  void opendir(const std::string& dir, DirHandle& handle, fuse_file_info* fi);
  // The listing of `dir`: shards, or the shard's items, pending items and scratch files.
  void list(const std::string& dir, DirEntries& entries);

 private:
  Context& ctx_;
};

}  // namespace itemfs::fs
