// Inode layout of the mount and the parts of the tree beyond items/:
// search/ and backups/. Filesystem (filesystem.cpp) serves items/ and the
// fixed files; Tree (tree.cpp) serves what search/ and backup/ provide.
#pragma once

#include <unistd.h>

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "backup/backup.h"
#include "fs/event_log.h"
#include "fs/filesystem.h"
#include "search/search.h"
#include "store/store.h"

namespace itemfs::fs {

inline constexpr fuse_ino_t kRootIno = FUSE_ROOT_ID;
inline constexpr fuse_ino_t kItemsIno = 2;
inline constexpr fuse_ino_t kSearchIno = 3;
inline constexpr fuse_ino_t kBackupsIno = 4;
inline constexpr fuse_ino_t kStatsIno = 5;
inline constexpr fuse_ino_t kLogIno = 6;
inline constexpr fuse_ino_t kCtlIno = 7;
inline constexpr fuse_ino_t kStatusIno = 8;
// Ranges by kind, so an inode number says what it is: items keep the store's
// ino (stable across remounts), shards the store's dir ino.
inline constexpr fuse_ino_t kItemBase = fuse_ino_t(1) << 48;
inline constexpr fuse_ino_t kDirBase = fuse_ino_t(2) << 48;
inline constexpr fuse_ino_t kDynBase = fuse_ino_t(3) << 48;   // scratch files
inline constexpr fuse_ino_t kTreeBase = fuse_ino_t(4) << 48;  // search/ and backups/ entries

struct FileState;

// An open file or directory of the mount.
struct Handle {
  fuse_ino_t ino = 0;
  // Reads of a committed item, or of a backup file (tree.cpp: a reader over
  // the real file's descriptor).
  std::unique_ptr<store::ItemReader> reader;
  std::shared_ptr<FileState> state;  // writes and reads of a staged body
  bool writer = false;
  uint64_t generation = 0;  // the FileState::generation this writer writes
  std::string generated;  // a virtual file's content, made at open
  std::vector<std::pair<std::string, struct stat>> entries;  // a directory listing, made at opendir
  std::optional<std::string> unlisted_dir;  // an items/ directory whose listing is made at the first readdir
  std::string pending_command;                               // backups/ctl
  bool command_refused = false;  // backups/ctl: a write was refused; the rest of this open fails too
  uint64_t cached_reader_of = 0;  // reads through the page cache: 1 + the node's commit count at open
};

// The kernel is never allowed to cache anything below search/ or backups/:
// entries and attributes of tree nodes have timeout 0 (queries run at every
// lookup; backups come and go and verify.json changes).
inline bool is_tree_ino(fuse_ino_t ino) { return ino >= kTreeBase; }

class Tree {
 public:
  virtual ~Tree();
  virtual EventLog& log() = 0;
  virtual store::Store& store() = 0;
  virtual void invalidate_inode(fuse_ino_t ino) = 0;
  virtual void invalidate_entry(fuse_ino_t parent, const std::string& name) = 0;

  // Creates the search index (as a store hook) and the backup manager; the
  // index must be created before the first write of the mount.
  void attach_services(const MountConfig& config);
  // Stops scheduled backups, waits for a running job, drops the index.
  void detach_services();
  // Cancels a running backup job (and later ones) without waiting: the
  // mount is going away. Call before detach_services, from any thread.
  void cancel_jobs();

  // Nodes below search/ and backups/ (other than ctl and status). Search
  // answers the caller of `req` (its uid, gid and groups) with the items it
  // may read; see Tree::search_lookup.
  int extra_stat(fuse_ino_t ino, struct stat& st);
  int extra_lookup(fuse_ino_t parent, const std::string& name, fuse_entry_param& e, fuse_req_t req);
  // On success fills `handle` and fi's flags; the caller replies.
  int extra_open(fuse_ino_t ino, bool writing, Handle& handle, fuse_file_info* fi, fuse_req_t req);
  int extra_list(fuse_ino_t ino, std::vector<std::pair<std::string, struct stat>>& entries, fuse_req_t req);
  // readdirplus handed the kernel a reference to `ino`, as a lookup does.
  void extra_remember(fuse_ino_t dir, const std::string& name, fuse_ino_t ino);
  // The kernel dropped `n` references to tree node `ino`.
  void extra_forget(fuse_ino_t ino, uint64_t n);
  void readlink(fuse_req_t req, fuse_ino_t ino);
  void extend_stats(nlohmann::json& stats);
  std::string backup_status();
  int run_control(const std::string& line);  // one backups/ctl command; errno
  // Opening backups/ctl for writing while a job runs fails with EBUSY: the
  // kernel serialises writes to one inode, so a second writer would otherwise
  // wait for the running job instead of being told.
  int control_open();
  // Modes and group of backups/ and the nodes below it (not ctl): the
  // owner's only, or the backup_group's too.
  uint32_t backup_perm(bool dir) const {
    return (dir ? 0500 : 0400) | (backup_group_ >= 0 ? (dir ? 0050 : 0040) : 0);
  }
  gid_t backup_gid() const { return backup_group_ >= 0 ? gid_t(backup_group_) : getgid(); }

 protected:
  struct TreeNode {
    enum Kind { kReadme, kQueryDir, kResult, kFile, kBackupDir, kBackupFile } kind = kReadme;
    fuse_ino_t parent = 0;
    std::string name;  // the entry name in `parent` (for search/: and whom it answers, see node_name)
    std::string a, b;  // kQueryDir/kFile: query and file kind; kBackup*: backup id and file name
    struct stat st {};
    // kResult: the link target. kFile: the document made by the latest
    // lookup, handed to the next open (content_ready), else made at open.
    std::string content;
    bool content_ready = false;
    uint64_t seq = 0;               // which lookup made content/hits
    std::vector<std::string> hits;  // kQueryDir: item ids in rank order
    search::Reader made_for;        // kQueryDir, kFile: whom content/hits answer
    uint64_t lookups = 0;           // references the kernel holds
  };
  // Finds or creates the node named `name` in `parent`; caller holds tree_mutex_.
  TreeNode& node_at(fuse_ino_t parent, const std::string& name, TreeNode::Kind kind, fuse_ino_t& ino);
  void drop_node(fuse_ino_t ino);  // caller holds tree_mutex_

  int search_lookup(const std::string& name, fuse_entry_param& e, const search::Reader& who);
  int result_lookup(fuse_ino_t dir, const std::string& name, fuse_entry_param& e, const search::Reader& who);
  // The hits of query directory `dir` for `who`: the ones its lookup made
  // when they answer `who`, else the query run again for `who`.
  int hits_for(fuse_ino_t dir, const search::Reader& who, std::vector<std::string>& hits);
  int backup_lookup(fuse_ino_t parent, const std::string& name, fuse_entry_param& e);
  // Makes the document of search file `kind` ("json", "suggest", "facets")
  // for `query`, as `who` may see it; an errno, logged, on failure.
  int search_document(const std::string& kind, const std::string& query, std::string& out, const search::Reader& who);
  int stat_backup(const std::string& id, const std::string& file, struct stat& st);
  std::string readme_text() const;
  void restored(const std::vector<std::string>& ids);

  std::mutex tree_mutex_;
  std::unordered_map<fuse_ino_t, TreeNode> tree_nodes_;
  std::map<std::pair<fuse_ino_t, std::string>, fuse_ino_t> tree_names_;
  uint64_t next_tree_ = 1;
  std::atomic<uint64_t> search_seq_{0};
  int64_t tree_time_ns_ = 0;
  int64_t backup_group_ = -1;

  std::unique_ptr<search::Index> index_;
  std::unique_ptr<backup::Manager> backups_;
};

}  // namespace itemfs::fs
