// The inode table of items/ (fs/inode_table.h).
#include "fs/inode_table.h"

namespace itemfs::fs {

Node InodeTable::shard(const std::string& name) {
  Node node{.kind = Kind::kShard};
  node.name_as("", name);
  return node;
}

void InodeTable::remember(fuse_ino_t ino, const Node& like) {
  std::lock_guard lock(mutex);
  auto [it, fresh] = nodes.try_emplace(ino, like);
  // A committed item's node needs no name; a lookup that found a pending
  // node committed meanwhile (item_ino 0 here) leaves it as its commit made it.
  if (!fresh && it->second.kind == Kind::kItem && like.kind == Kind::kItem && !it->second.pending && like.item_ino) {
    it->second.item_ino = like.item_ino;
    it->second.where.reset();
  }
  ++it->second.lookups;
}

bool InodeTable::remember_listed(fuse_ino_t ino, const std::string& name) {
  if (is_shard_ino(ino)) {
    remember(ino, shard(name));
    return true;
  }
  std::lock_guard lock(mutex);
  if (auto it = nodes.find(ino); it != nodes.end()) {
    ++it->second.lookups;
    return true;
  }
  if (!is_item_ino(ino)) return false;
  Node node;
  node.kind = Kind::kItem;
  node.item_ino = item_ino_of(ino);
  node.lookups = 1;
  nodes[ino] = node;
  return true;
}

void InodeTable::forget(fuse_ino_t ino, uint64_t count) {
  std::lock_guard lock(mutex);
  auto it = nodes.find(ino);
  if (it == nodes.end()) return;
  it->second.lookups = it->second.lookups > count ? it->second.lookups - count : 0;
  maybe_drop(it);
}

std::optional<Node> InodeTable::copy(fuse_ino_t ino) {
  std::lock_guard lock(mutex);
  auto it = nodes.find(ino);
  if (it == nodes.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> InodeTable::items_dir_of(fuse_ino_t parent) {
  if (parent == kItemsIno) return std::string();
  std::lock_guard lock(mutex);
  auto it = nodes.find(parent);
  if (it == nodes.end() || it->second.kind != Kind::kShard) return std::nullopt;
  return it->second.name();
}

fuse_ino_t InodeTable::find_scratch(const std::string& dir, const std::string& name) {
  std::lock_guard lock(mutex);
  auto it = scratch.find({dir, name});
  return it == scratch.end() ? 0 : it->second;
}

void InodeTable::mark_unlinked(fuse_ino_t ino) {
  std::lock_guard lock(mutex);
  if (auto it = nodes.find(ino); it != nodes.end()) it->second.unlinked = true;
}

size_t InodeTable::size() {
  std::lock_guard lock(mutex);
  return nodes.size();
}

void InodeTable::maybe_drop(Nodes::iterator it) {
  Node& node = it->second;
  if (node.lookups > 0 || node.open_handles > 0) return;
  if (node.kind == Kind::kScratch && !node.unlinked) return;  // its body lives only here
  if (node.kind == Kind::kItem && node.pending && !node.unlinked) unpend(node.name(), it->first);
  if (node.kind == Kind::kItem) forget_alias(node.item_ino, it->first);
  if (!unlinked_open.empty()) unlinked_open.erase(it->first);
  nodes.erase(it);
}

void InodeTable::forget_alias(int64_t item_ino, fuse_ino_t nodeid) {
  auto [from, to] = aliases_.equal_range(item_ino);
  for (auto a = from; a != to; ++a)
    if (a->second == nodeid) {
      aliases_.erase(a);
      return;
    }
}

void InodeTable::bind_to_item(fuse_ino_t nodeid, Node& node, int64_t ino) {
  if (node.kind == Kind::kItem && node.item_ino && node.item_ino != ino) forget_alias(node.item_ino, nodeid);
  node.kind = Kind::kItem;
  node.pending = false;
  node.item_ino = ino;
  node.where.reset();  // the store knows its id
  if (nodeid != item_node(ino)) {
    forget_alias(ino, nodeid);
    aliases_.emplace(ino, nodeid);
  }
}

std::vector<fuse_ino_t> InodeTable::nodes_of_item(int64_t ino) {
  std::vector<fuse_ino_t> out;
  if (nodes.count(item_node(ino))) out.push_back(item_node(ino));
  auto [from, to] = aliases_.equal_range(ino);
  for (auto a = from; a != to; ++a) out.push_back(a->second);
  return out;
}

void InodeTable::unpend(const std::string& id, fuse_ino_t ino) {
  if (auto p = pending.find(id); p != pending.end() && p->second == ino) pending.erase(p);
}

void InodeTable::replace_pending(const std::string& id) {
  if (auto p = pending.find(id); p != pending.end()) {
    nodes[p->second].unlinked = true;
    pending.erase(p);
  }
}

void InodeTable::replace_scratch(const std::string& dir, const std::string& name) {
  if (auto old = scratch.find({dir, name}); old != scratch.end()) {
    nodes[old->second].unlinked = true;
    scratch.erase(old);
  }
}

}  // namespace itemfs::fs
