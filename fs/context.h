// What every kind of node of a mount shares: the store, the log, the
// counters of stats.json, the inode table of items/, the open handles, the
// invalidation thread and the staging pool; and the few things several
// kinds do alike (a store write mapped to an errno, the invalidations a
// change of items/ needs, an item's attributes).
//
// Lock order: namespace_mutex, then FileState::body, then table.mutex, then
// FileState::mutex.
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <istream>
#include <memory>
#include <mutex>
#include <string>

#include "fs/event_log.h"
#include "fs/filesystem.h"
#include "fs/handles.h"
#include "fs/inode_table.h"
#include "fs/invalidator.h"
#include "fs/staging.h"
#include "store/store.h"

namespace itemfs::fs {

struct Counters {
  std::atomic<uint64_t> lookups{0}, opens{0}, reads{0}, writes{0}, commits{0}, commits_refused{0}, creates{0},
      unlinks{0}, renames{0}, readdirs{0};
};

// `attrs` with what a setattr of `to_set` changes (mode, owner, group, mtime).
store::Attrs apply_setattr(store::Attrs attrs, const struct stat* attr, int to_set);

class Context {
 public:
  // Makes STORE/staging (0700) unless the store is read-only, opens the log.
  Context(store::Store& the_store, const MountConfig& the_config);
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  store::Store& store;
  const MountConfig& config;
  EventLog log;
  Counters counters;
  InodeTable table;
  HandleTable handles;
  Invalidator invalidator;
  std::shared_ptr<StagingPool> staging;
  std::mutex namespace_mutex;  // create, rename, unlink, commit: one at a time
  const int64_t mount_time = now_ns();

  // Runs one store call in its own transaction and maps failures to errno.
  // Refusals (EINVAL, EFBIG, ...) are the caller's to log; the store
  // failing (EIO, ENOSPC, ENOMEM) is logged here.
  int write_status(const std::function<store::Status(store::WriteBatch&)>& fn, std::string* message = nullptr);
  // store.accept() of an item's new bytes, errors as write_status() has them.
  int accept_status(const std::string& id, std::istream& content, const store::Attrs& attrs, store::ItemInfo* stored,
                    std::string* message);
  // Runs a store call, its exceptions as a Status; logs what needs an operator.
  int store_status(const std::function<store::Status()>& fn, std::string* message);
  // Store::sync() as an errno (0, or the disk's error, logged).
  int sync_store();

  // The store moved the times of `shard` (and of items/ with it).
  void invalidate_shard(const std::string& shard);
  // A change made through the flat name items/<id>.json: the kernel may
  // still hold items/<shard>/<id>.json.
  void invalidate_item_entry(const std::string& id);
  // Another process changed the store: everything the kernel may hold of
  // items/ is dropped (shard entries, listings, every item node it knows).
  void invalidate_items_tree();

  static struct stat item_stat(const store::ItemInfo& item);
  // A new empty body in the staging pool, or null with `err` set.
  std::shared_ptr<FileState> new_body(int& err);
  // The path a user knows node `ino` of items/ by, for the log.
  std::string node_path(fuse_ino_t ino);

  // The attributes of a staged body (an open item or a scratch file).
  static struct stat body_stat(fuse_ino_t ino, FileState& state);
  // Writes into a staged body; the caller holds state.body. The disk must
  // keep room for the commit (Store::check_staging_room): a refused write
  // is logged. Returns the bytes written, or -errno.
  ssize_t write_body(fuse_ino_t ino, FileState& state, const char* buf, size_t size, off_t off);
};

}  // namespace itemfs::fs
