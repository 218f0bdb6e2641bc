// The FUSE layer: maps the mount tree of DESIGN.md §3 onto the store.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "store/store.h"

namespace itemfs::fs {

struct MountConfig {
  std::filesystem::path store_dir;
  std::filesystem::path mountpoint;
  bool foreground = false;
  store::Options store_options;
  std::vector<std::string> fuse_options;  // passed to libfuse as -o
  std::filesystem::path backup_dir;       // empty: STORE/backups
  std::string backup_key_file;
  int64_t backup_every_seconds = 0;
  int backup_keep_last = 0;
  int backup_chain_max = 7;
  // backups/ and what it holds are the mount owner's alone (0500 / 0400):
  // archives hold every item, private ones too. A group id here may read
  // them as well (g+rx / g+r, the nodes' group).
  int64_t backup_group = -1;
  std::filesystem::path log_file;          // empty: STORE/log
  uint64_t log_max_bytes = 4u << 20;      // then moved to <log_file>.1
  // Why the mount is read-only when the user did not ask (said in the log).
  std::string read_only_reason;
};

// Mounts and serves until unmounted or signalled. Returns a process exit code.
int run_mount(const MountConfig& config);

}  // namespace itemfs::fs
