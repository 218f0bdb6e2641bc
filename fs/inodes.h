// The inode numbers of the mount and the attributes every kind of node
// answers with. An inode number says what it names:
//   1..8                 the fixed nodes (root, items/, search/, backups/,
//                        stats.json, log, backups/ctl, backups/status)
//   kItemBase + ino      a committed item, by the store's ino (stable across remounts)
//   kDirBase + ino       a shard directory, by the store's dir ino
//   kDynBase + n         a pending item or a scratch file (this mount only)
//   kSearchBase + n      a node below search/ (this mount only; never cached)
//   kBackupBase + n      a node below backups/ other than ctl and status (never cached)
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <ctime>

#include "base/clock.h"

namespace itemfs::fs {

inline constexpr fuse_ino_t kRootIno = FUSE_ROOT_ID;
inline constexpr fuse_ino_t kItemsIno = 2;
inline constexpr fuse_ino_t kSearchIno = 3;
inline constexpr fuse_ino_t kBackupsIno = 4;
inline constexpr fuse_ino_t kStatsIno = 5;
inline constexpr fuse_ino_t kLogIno = 6;
inline constexpr fuse_ino_t kCtlIno = 7;
inline constexpr fuse_ino_t kStatusIno = 8;
inline constexpr fuse_ino_t kItemBase = fuse_ino_t(1) << 48;
inline constexpr fuse_ino_t kDirBase = fuse_ino_t(2) << 48;
inline constexpr fuse_ino_t kDynBase = fuse_ino_t(3) << 48;
inline constexpr fuse_ino_t kSearchBase = fuse_ino_t(4) << 48;
inline constexpr fuse_ino_t kBackupBase = fuse_ino_t(5) << 48;

// How long the kernel may keep an item's or a shard's entry and attributes.
// Every change made through the mount reaches the kernel's caches directly
// or by explicit invalidation (restore, other nodes of the same item, flat
// names), and so does a writer outside the mount (itemfs import while
// mounted), which the store watcher notices within a second. Long, because
// every expiry costs a round trip per file: an rsync re-run of a large tree
// would stat every file through the daemon again.
inline constexpr double kItemTimeout = 3600.0;
// The fixed nodes do not change (the log's size aside: its timeout is 0).
inline constexpr double kFixedTimeout = 3600.0;

// The longest name of a file or directory, as statfs says (NAME_MAX).
inline constexpr size_t kNameMax = 255;

inline bool is_fixed_ino(fuse_ino_t ino) { return ino >= kRootIno && ino <= kStatusIno; }
inline bool is_item_ino(fuse_ino_t ino) { return ino >= kItemBase && ino < kDirBase; }
inline bool is_shard_ino(fuse_ino_t ino) { return ino >= kDirBase && ino < kDynBase; }
inline bool is_dynamic_ino(fuse_ino_t ino) { return ino >= kDynBase && ino < kSearchBase; }
inline bool is_search_ino(fuse_ino_t ino) { return ino >= kSearchBase && ino < kBackupBase; }
inline bool is_backup_ino(fuse_ino_t ino) { return ino >= kBackupBase; }
// items/ itself or one of its shards.
inline bool is_items_dir(fuse_ino_t ino) { return ino == kItemsIno || is_shard_ino(ino); }
// The kernel is never allowed to cache anything below search/ or backups/:
// entries and attributes of those nodes have timeout 0 (queries run at every
// lookup; backups come and go and verify.json changes).
inline bool is_uncached_ino(fuse_ino_t ino) { return ino >= kSearchBase; }

using base::now_ns;
inline timespec to_timespec(int64_t ns) { return timespec{time_t(ns / 1000000000), long(ns % 1000000000)}; }
inline int64_t from_timespec(const timespec& ts) { return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec; }

// The attributes of a node (ctime 0: the mtime).
inline struct stat stat_of(fuse_ino_t ino, uint32_t mode, uint64_t size, uint32_t uid, uint32_t gid, int64_t mtime,
                           int64_t ctime) {
  struct stat st {};
  st.st_ino = ino;
  st.st_mode = mode;
  st.st_nlink = S_ISDIR(mode) ? 2 : 1;
  st.st_size = off_t(size);
  st.st_uid = uid;
  st.st_gid = gid;
  st.st_blksize = 4096;
  st.st_blocks = blkcnt_t((size + 511) / 512);
  st.st_mtim = to_timespec(mtime);
  st.st_atim = st.st_mtim;
  st.st_ctim = to_timespec(ctime ? ctime : mtime);
  return st;
}

// An entry for the kernel: the node, its attributes, and how long it may keep them.
inline fuse_entry_param entry_of(fuse_ino_t ino, const struct stat& st, double timeout) {
  fuse_entry_param e{};
  e.ino = ino;
  e.attr = st;
  // A shard's times move when an item in it is committed, which is not a
  // directory operation the kernel sees: every such commit invalidates the
  // shard (Context::invalidate_shard), since rsync compares directory times.
  e.attr_timeout = is_items_dir(ino) ? std::min(timeout, kItemTimeout) : timeout;
  e.entry_timeout = timeout;
  return e;
}

}  // namespace itemfs::fs
