// backups/: the backup manager's directory, as the mount shows it.
//   backups/ctl            write one command line (full, incremental,
//                          verify ID, restore ID ..., prune ..., delete ID)
//   backups/status         the running job with progress, else the last result
//   backups/<id>/          manifest, archive, checksums, verify.json: read-only
// backups/ and what it holds are the mount owner's (0500/0400), or a
// backup group's too. ctl is handled wholly here: opening it for writing
// while a job runs is refused (EBUSY), a command is one line of at most
// kMaxControlBytes, run at its newline or at close. A restore changes items
// behind the kernel's back: restored() drops what the kernel caches of them.
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "backup/backup.h"
#include "fs/context.h"
#include "fs/entry_table.h"

namespace itemfs::fs {

class BackupsNode {
 public:
  static constexpr size_t kMaxControlBytes = 4096;

  explicit BackupsNode(Context& ctx) : ctx_(ctx) {}

  // Creates the backup manager (and its schedule, unless read-only).
  void attach(const MountConfig& config);
  // Cancels a running job (and later ones) without waiting: the mount is
  // going away. Any thread.
  void cancel_jobs();
  // Stops the schedule and waits for a running job.
  void detach();

  int stat(fuse_ino_t ino, struct stat& st);
  int lookup(fuse_ino_t parent, const std::string& name, fuse_entry_param& e);
  int list(fuse_ino_t ino, DirEntries& entries);
  // On success the handle is in the table and fi->fh names it.
  int open(fuse_ino_t ino, bool writing, fuse_file_info* fi);
  int read(BackupFileHandle& h, size_t size, off_t off, std::string& out);
  // backups/ctl: text written, a close, a release.
  int control_write(std::string_view data, CtlHandle& h);
  int control_flush(CtlHandle& h);
  // No node of backups/ is a link.
  int readlink(fuse_ino_t ino) {
    std::lock_guard lock(nodes_.mutex);
    return nodes_.find(ino) ? EINVAL : ENOENT;
  }
  void remember(fuse_ino_t ino) { nodes_.remember(ino); }
  void forget(fuse_ino_t ino, uint64_t n) { nodes_.forget(ino, n); }
  size_t size() { return nodes_.size(); }
  // stats.json: how many backups, the newest.
  void extend_stats(nlohmann::json& stats);

 private:
  struct Node {
    enum Kind { kBackupDir, kBackupFile } kind = kBackupDir;
    fuse_ino_t parent = 0;
    std::string name;
    std::string id, file;  // the backup id; the file name ("" for the directory)
    struct stat st {};
    uint64_t lookups = 0;
  };

  // Whether a backup job runs now.
  bool job_running();
  // A string field of the manager's status document ("" if none).
  std::string status_field(const char* name);
  std::string status();
  int control_open();
  int run_control(const std::string& line);
  int stat_backup(const std::string& id, const std::string& file, struct stat& st);
  void restored(const std::vector<std::string>& ids);
  // Modes and group of backups/ and the nodes below it (not ctl): the
  // owner's only, or the backup_group's too.
  uint32_t perm(bool dir) const {
    return (dir ? 0500 : 0400) | (group_ >= 0 ? (dir ? 0050 : 0040) : 0);
  }
  gid_t gid() const { return group_ >= 0 ? gid_t(group_) : getgid(); }

  Context& ctx_;
  std::unique_ptr<backup::Manager> manager_;
  EntryTable<Node> nodes_{kBackupBase};
  int64_t group_ = -1;
};

}  // namespace itemfs::fs
