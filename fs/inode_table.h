// The inode table of items/: one Node per inode the kernel holds under
// items/ (or that has an open body), with the kernel's lookup count and the
// open handles on it, and the names of the nodes the store does not know yet
// (pending items, scratch files).
//
// Counting: every lookup, create, mkdir and readdirplus entry the kernel
// takes is one more reference (remember); forget gives `n` back. A node goes
// when nothing references it and nothing has it open, except a scratch file
// that is still linked (its body lives only here). A committed item's node is
// kItemBase + the store's ino, the same number across remounts; a node the
// kernel got from create or a scratch file's rename stays under its own
// number and is an alias of the item (nodes_of_item lists them all).
//
// Locking: `mutex` guards everything here. The functions marked "locks" take
// it; the others are for a caller that holds it.
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "fs/file_state.h"
#include "fs/inodes.h"

namespace itemfs::fs {

enum class Kind : uint8_t { kItem, kScratch, kShard };

// The name a node stands under when the store does not know it: a pending
// item's id (in its shard), a scratch file's directory and name, a shard's
// name. Never changed once made, so copies of a node share it.
struct NodeName {
  std::string dir;  // the shard ("" = items/) a scratch file or pending item lives in
  std::string name;
};

// One per inode the kernel holds (or that has an open body). There is one of
// these for every item the kernel has looked up, so it is kept small: a
// committed item is known by item_ino alone (its id is the store's), with
// no name of its own; a node the kernel moved onto an item by rename stands
// for that item wherever it goes next.
struct Node {
  Kind kind = Kind::kItem;
  bool pending = false;  // an item created but never committed
  bool unlinked = false;
  // The kernel's page cache of this node is shared by every opener. It is
  // only trusted (keep_cache) when it holds one committed version: readers
  // of an older version still open could fetch old pages into it.
  bool cache_valid = false;
  int open_handles = 0;
  uint64_t lookups = 0;
  int64_t item_ino = 0;  // the store's ino of a committed item
  std::shared_ptr<const NodeName> where;  // null for a committed item
  std::shared_ptr<FileState> state;
  store::Sha256 cached_sha{};  // the version the page cache holds
  uint64_t commits = 0;     // committed versions seen through this node
  int current_readers = 0;  // cached readers opened at `commits`
  int stale_readers = 0;    // cached readers of an older version

  const std::string& name() const { return where ? where->name : no_name(); }
  const std::string& dir() const { return where ? where->dir : no_name(); }
  void name_as(std::string dir, std::string name) {
    where = std::make_shared<const NodeName>(NodeName{std::move(dir), std::move(name)});
  }
  static const std::string& no_name() {
    static const std::string empty;
    return empty;
  }
};

class InodeTable {
 public:
  using Nodes = std::unordered_map<fuse_ino_t, Node>;

  // The inode number of committed item `item_ino` / of shard dir `dir_ino`.
  static fuse_ino_t item_node(int64_t item_ino) { return kItemBase + fuse_ino_t(item_ino); }
  static fuse_ino_t shard_node(int64_t dir_ino) { return kDirBase + fuse_ino_t(dir_ino); }
  // The store's ino a canonical item node stands for (0 for any other node).
  static int64_t item_ino_of(fuse_ino_t ino) { return is_item_ino(ino) ? int64_t(ino - kItemBase) : 0; }
  static Node shard(const std::string& name);

  // Locks. One more kernel reference to `ino`, creating its node like `like`.
  void remember(fuse_ino_t ino, const Node& like);
  // Locks. A readdirplus entry: one more reference to a node that exists,
  // or a new node of a committed item or a shard; false if `ino` is none
  // of these (it is not this table's).
  bool remember_listed(fuse_ino_t ino, const std::string& name);
  // Locks. The kernel gave back `count` references to `ino`.
  void forget(fuse_ino_t ino, uint64_t count);
  // Locks. A copy of node `ino`, if there is one.
  std::optional<Node> copy(fuse_ino_t ino);
  // Locks. The directory ("" = items/) that inode `parent` is, or nullopt.
  std::optional<std::string> items_dir_of(fuse_ino_t parent);
  // Locks. The node of scratch file `name` in `dir`, or 0.
  fuse_ino_t find_scratch(const std::string& dir, const std::string& name);
  // Locks. Marks node `ino` unlinked.
  void mark_unlinked(fuse_ino_t ino);
  // Locks. How many nodes the table holds.
  size_t size();

  // Drops node `it` when nothing references it any more.
  void maybe_drop(Nodes::iterator it);
  // Makes node `nodeid` stand for committed item `ino`.
  void bind_to_item(fuse_ino_t nodeid, Node& node, int64_t ino);
  void forget_alias(int64_t item_ino, fuse_ino_t nodeid);
  // Every node the kernel may use for item `ino`.
  std::vector<fuse_ino_t> nodes_of_item(int64_t ino);
  // A number for a new pending item or scratch file.
  fuse_ino_t new_dynamic() { return kDynBase + next_dynamic_++; }
  // The node of pending item `id` leaves the pending names if it is `ino`.
  void unpend(const std::string& id, fuse_ino_t ino);
  // A pending item or scratch file that a new one replaces is unlinked.
  void replace_pending(const std::string& id);
  void replace_scratch(const std::string& dir, const std::string& name);

  std::mutex mutex;
  Nodes nodes;
  std::map<std::string, fuse_ino_t> pending;                          // item id -> node
  std::map<std::pair<std::string, std::string>, fuse_ino_t> scratch;  // (dir, name) -> node
  // Attributes of committed items removed while open (nodes without a
  // body of their own), until the kernel drops the node.
  std::unordered_map<fuse_ino_t, struct stat> unlinked_open;

 private:
  // Item nodes other than the item's own kItemBase+ino: created files and
  // scratch files the kernel keeps under their nodeid once they are items.
  std::unordered_multimap<int64_t, fuse_ino_t> aliases_;
  uint64_t next_dynamic_ = 1;
};

}  // namespace itemfs::fs
