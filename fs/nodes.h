// A mounted filesystem: the parts shared by every kind of node (Context)
// and one part per kind of node, each answering only its own operations:
//   VirtualFiles  the root, stats.json, log              fs/virtual_files.h
//   Shards        items/ and its shard directories       fs/shards.h
//   Items         items/<shard>/<id>.json                fs/items.h
//   Scratch       every other file name under items/     fs/scratch.h
//   SearchNode    search/                                fs/search_node.h
//   BackupsNode   backups/ (ctl, status, the backups)    fs/backups_node.h
// target() says which kind answers for an inode; the libfuse operations
// (fs/ops.cpp) dispatch on it. The threads of a mount (the invalidation
// thread, the store watcher, the backup schedule) start with start() and
// stop with stop().
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <optional>

#include "fs/backups_node.h"
#include "fs/context.h"
#include "fs/items.h"
#include "fs/memory_trim.h"
#include "fs/scratch.h"
#include "fs/search_node.h"
#include "fs/shards.h"
#include "fs/store_watcher.h"
#include "fs/virtual_files.h"

namespace itemfs::fs {

enum class NodeKind { kVirtual, kItemsDir, kItem, kScratch, kSearch, kBackups, kGone };

struct Target {
  NodeKind kind = NodeKind::kGone;
  Node node;  // kItemsDir (a shard), kItem, kScratch: a copy of the inode table's node
};

class Filesystem {
 public:
  Filesystem(store::Store& store, const MountConfig& config);
  ~Filesystem();
  Filesystem(const Filesystem&) = delete;
  Filesystem& operator=(const Filesystem&) = delete;

  // Starts the invalidation thread and the store watcher, creates the
  // search index and the backup manager.
  void start(fuse_session* session);
  // Cancels a running backup job without waiting (any thread).
  void cancel_jobs() { backups.cancel_jobs(); }
  // Stops the backup manager (waiting for its job), drops the index, stops the threads.
  void stop();

  Target target(fuse_ino_t ino);
  // The attributes of any node; ENOENT when what it names is gone.
  int stat(fuse_ino_t ino, struct stat& st);
  int stat(fuse_ino_t ino, const Target& t, struct stat& st);
  // How long the kernel may keep the attributes `st` of `ino`.
  static double attr_timeout(fuse_ino_t ino, const struct stat& st);
  // The directory under items/ ("" = items/) that `ino` is, if it is one.
  std::optional<std::string> items_dir(fuse_ino_t ino) { return ctx.table.items_dir_of(ino); }

  Context ctx;
  Items items{ctx};
  Scratch scratch{ctx, items};
  Shards shards{ctx};
  SearchNode search{ctx};
  BackupsNode backups{ctx};
  VirtualFiles virtual_files;

 private:
  StoreWatcher watcher_;
  MemoryTrimmer trimmer_;
};

}  // namespace itemfs::fs
