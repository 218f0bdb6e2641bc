// Inode layout of the mount and the parts of the tree beyond items/:
// search/ and backups/. Filesystem (filesystem.cpp) serves items/ and the
// fixed files; Tree (tree.cpp) serves what search/ and backup/ provide.
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <memory>
#include <utility>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "fs/event_log.h"
#include "fs/filesystem.h"
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
  std::unique_ptr<store::ItemReader> reader;
  std::shared_ptr<FileState> state;  // writes and reads of a staged body
  bool writer = false;
  std::string generated;  // a virtual file's content, made at open
  std::vector<std::pair<std::string, struct stat>> entries;  // a directory listing, made at opendir
  std::string pending_command;                               // backups/ctl
};

class Tree {
 public:
  virtual ~Tree();
  virtual EventLog& log() = 0;
  virtual store::Store& store() = 0;
  virtual void invalidate_inode(fuse_ino_t ino) = 0;
  virtual void invalidate_entry(fuse_ino_t parent, const std::string& name) = 0;

  void attach_services(const MountConfig& config);
  void detach_services();

  // Nodes below search/ and backups/ (other than ctl and status).
  int extra_stat(fuse_ino_t ino, struct stat& st);
  int extra_lookup(fuse_ino_t parent, const std::string& name, fuse_entry_param& e);
  int extra_open(fuse_ino_t ino, bool writing, Handle& handle, fuse_file_info* fi, fuse_req_t req);
  int extra_list(fuse_ino_t ino, std::vector<std::pair<std::string, struct stat>>& entries);
  void extra_remember(fuse_ino_t dir, const std::string& name, fuse_ino_t ino);
  void readlink(fuse_req_t req, fuse_ino_t ino);
  void extend_stats(nlohmann::json& stats);
  std::string backup_status();
  int run_control(const std::string& line);  // one backups/ctl command; errno

 protected:
  struct TreeNode {
    enum Kind { kQueryDir, kResult, kFile, kBackupDir, kBackupFile } kind;
    std::string a, b;  // query/backup id and entry/file name
    struct stat st {};
    std::string content;  // kFile: generated document; kResult: link target
  };
  fuse_ino_t add_tree_node(TreeNode node);
  std::mutex tree_mutex_;
  std::unordered_map<fuse_ino_t, TreeNode> tree_nodes_;
  uint64_t next_tree_ = 1;
};

}  // namespace itemfs::fs
