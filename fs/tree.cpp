#include "fs/tree.h"

#include <cerrno>

namespace itemfs::fs {

Tree::~Tree() = default;

void Tree::attach_services(const MountConfig&) {}
void Tree::detach_services() {}

fuse_ino_t Tree::add_tree_node(TreeNode node) {
  std::lock_guard lock(tree_mutex_);
  fuse_ino_t ino = kTreeBase + next_tree_++;
  node.st.st_ino = ino;
  tree_nodes_[ino] = std::move(node);
  return ino;
}

int Tree::extra_stat(fuse_ino_t, struct stat&) { return ENOENT; }
int Tree::extra_lookup(fuse_ino_t, const std::string&, fuse_entry_param&) { return ENOENT; }
int Tree::extra_open(fuse_ino_t, bool, Handle&, fuse_file_info*, fuse_req_t) { return ENOENT; }
int Tree::extra_list(fuse_ino_t, std::vector<std::pair<std::string, struct stat>>&) { return 0; }
void Tree::extra_remember(fuse_ino_t, const std::string&, fuse_ino_t) {}
void Tree::readlink(fuse_req_t req, fuse_ino_t) { fuse_reply_err(req, EINVAL); }
void Tree::extend_stats(nlohmann::json&) {}
std::string Tree::backup_status() { return "{}\n"; }
int Tree::run_control(const std::string& line) {
  log().add("refused backups/ctl command '" + line + "': backups are not built yet");
  return EINVAL;
}

}  // namespace itemfs::fs
