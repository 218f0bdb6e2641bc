// The fixed files of the mount's root: the root directory itself,
// stats.json (made at open: items, bytes, dedup and compression ratios,
// operation counters, backups) and log (MNT/log: recent events, read as it
// grows, so `tail -f` follows it). Read-only; read with direct_io.
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "fs/context.h"

namespace itemfs::fs {

class VirtualFiles {
 public:
  // `stat_child`: the attributes of a child of the root (items/, search/,
  // backups/ are other kinds' nodes); `extend_stats`: what other kinds add
  // to stats.json.
  VirtualFiles(Context& ctx, std::function<int(fuse_ino_t, struct stat&)> stat_child,
               std::function<void(nlohmann::json&)> extend_stats)
      : ctx_(ctx), stat_child_(std::move(stat_child)), extend_stats_(std::move(extend_stats)) {}

  int stat(fuse_ino_t ino, struct stat& st);
  // A name in the root.
  int lookup(const std::string& name, fuse_entry_param& e);
  void list(DirEntries& entries);
  // On success the handle is in the table and fi->fh names it.
  int open(fuse_ino_t ino, bool writing, fuse_file_info* fi);
  std::string read_log(size_t size, off_t off);
  std::string stats_json();

 private:
  Context& ctx_;
  std::function<int(fuse_ino_t, struct stat&)> stat_child_;
  std::function<void(nlohmann::json&)> extend_stats_;
};

}  // namespace itemfs::fs
