// The root, stats.json and log (fs/virtual_files.h).
#include "fs/virtual_files.h"

#include <unistd.h>

#include <cerrno>
#include <utility>

#include "fs/stats_json.h"

namespace itemfs::fs {

namespace {

const std::pair<const char*, fuse_ino_t> kRootEntries[] = {{"items", kItemsIno},
                                                           {"search", kSearchIno},
                                                           {"backups", kBackupsIno},
                                                           {"stats.json", kStatsIno},
                                                           {"log", kLogIno}};

}  // namespace

int VirtualFiles::stat(fuse_ino_t ino, struct stat& st) {
  uint32_t mode;
  if (ino == kRootIno)
    mode = S_IFDIR | 0755;
  else if (ino == kStatsIno)
    mode = S_IFREG | 0444;
  else if (ino == kLogIno)
    mode = S_IFREG | 0400;
  else
    return stat_child_(ino, st);
  // The log's size is its file's, so that `tail -f` sees it grow.
  uint64_t size = ino == kLogIno ? ctx_.log.size() : 0;
  st = stat_of(ino, mode, size, getuid(), getgid(), ctx_.mount_time, ctx_.mount_time);
  return 0;
}

int VirtualFiles::lookup(const std::string& name, fuse_entry_param& e) {
  for (auto [entry, ino] : kRootEntries) {
    if (name != entry) continue;
    struct stat st;
    if (int err = stat(ino, st)) return err;
    e = entry_of(ino, st, kFixedTimeout);
    if (ino == kLogIno) e.attr_timeout = 0;  // it grows
    return 0;
  }
  return ENOENT;
}

void VirtualFiles::list(DirEntries& entries) {
  for (auto [name, ino] : kRootEntries) {
    struct stat st;
    if (stat(ino, st) == 0) entries.emplace_back(name, st);
  }
}

int VirtualFiles::open(fuse_ino_t ino, bool writing, fuse_file_info* fi) {
  if (writing) return EACCES;
  if (ino != kStatsIno && ino != kLogIno) return EISDIR;
  fi->direct_io = 1;
  fi->noflush = 1;
  fi->fh = ino == kStatsIno ? ctx_.handles.add(ino, TextHandle{stats_json()}) : ctx_.handles.add(ino, LogHandle{});
  return 0;
}

std::string VirtualFiles::read_log(size_t size, off_t off) { return ctx_.log.read(uint64_t(off), size); }

std::string VirtualFiles::stats_json() {
  nlohmann::json j = fs::stats_json(ctx_.store.stats());
  const Counters& c = ctx_.counters;
  j["operations"] = {{"lookups", c.lookups.load()}, {"opens", c.opens.load()},
                     {"reads", c.reads.load()},     {"writes", c.writes.load()},
                     {"commits", c.commits.load()}, {"commits_refused", c.commits_refused.load()},
                     {"creates", c.creates.load()}, {"unlinks", c.unlinks.load()},
                     {"renames", c.renames.load()}, {"readdirs", c.readdirs.load()}};
  extend_stats_(j);
  return j.dump(2) + "\n";
}

}  // namespace itemfs::fs
