// The node table of a part of the mount whose nodes live only while the
// kernel holds them (search/, backups/): nodes by inode number, and by
// (parent, name). A node the kernel looked up is counted; when the kernel
// forgets it, it goes, and with it the entries listed in it but never
// looked up. `Node` has `kind`, `parent`, `name` and `lookups`.
#pragma once

#include <fuse_lowlevel.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace itemfs::fs {

template <typename Node>
class EntryTable {
 public:
  explicit EntryTable(fuse_ino_t base) : base_(base) {}

  std::mutex mutex;

  // The node named `name` in `parent`, created (of `kind`) if there is none
  // of that kind; the caller holds mutex.
  Node& at(fuse_ino_t parent, const std::string& name, decltype(Node::kind) kind, fuse_ino_t& ino) {
    auto key = std::make_pair(parent, name);
    if (auto it = names_.find(key); it != names_.end()) {
      auto node = nodes_.find(it->second);
      if (node != nodes_.end() && node->second.kind == kind) {
        ino = it->second;
        return node->second;
      }
    }
    ino = base_ + next_++;
    Node& node = nodes_[ino];
    node.kind = kind;
    node.parent = parent;
    node.name = name;
    names_[key] = ino;
    return node;
  }
  // Node `ino` or null; the caller holds mutex.
  Node* find(fuse_ino_t ino) {
    auto it = nodes_.find(ino);
    return it == nodes_.end() ? nullptr : &it->second;
  }
  // Drops the entries of `dir` that the kernel never took, but those named
  // in `keep`; the caller holds mutex.
  void drop_untaken(fuse_ino_t dir, const std::set<std::string>& keep = {}) {
    std::vector<fuse_ino_t> untaken;
    for (auto c = names_.lower_bound({dir, std::string()}); c != names_.end() && c->first.first == dir; ++c) {
      if (keep.count(c->first.second)) continue;
      auto child = nodes_.find(c->second);
      if (child != nodes_.end() && child->second.lookups == 0) untaken.push_back(c->second);
    }
    for (fuse_ino_t u : untaken) drop(u);
  }
  // Locks. A readdirplus entry: one more reference to `ino`.
  void remember(fuse_ino_t ino) {
    std::lock_guard lock(mutex);
    if (Node* node = find(ino)) ++node->lookups;
  }
  // Locks. The kernel gave back `n` references to `ino`.
  void forget(fuse_ino_t ino, uint64_t n) {
    std::lock_guard lock(mutex);
    Node* node = find(ino);
    if (!node) return;
    node->lookups = node->lookups > n ? node->lookups - n : 0;
    if (node->lookups > 0) return;
    drop_untaken(ino);  // entries listed but never looked up die with their directory
    drop(ino);
  }
  // Locks. How many nodes there are.
  size_t size() {
    std::lock_guard lock(mutex);
    return nodes_.size();
  }

 private:
  void drop(fuse_ino_t ino) {
    auto it = nodes_.find(ino);
    if (it == nodes_.end()) return;
    auto key = std::make_pair(it->second.parent, it->second.name);
    if (auto n = names_.find(key); n != names_.end() && n->second == ino) names_.erase(n);
    nodes_.erase(it);
  }

  fuse_ino_t base_;
  uint64_t next_ = 1;
  std::unordered_map<fuse_ino_t, Node> nodes_;
  std::map<std::pair<fuse_ino_t, std::string>, fuse_ino_t> names_;
};

}  // namespace itemfs::fs
