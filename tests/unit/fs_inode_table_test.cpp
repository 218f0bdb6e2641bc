// The inode table of items/ (fs/inode_table.h): lookup and forget counts,
// when a node goes (never while open, never a linked scratch file), stable
// numbers for committed items and shards, aliases of an item, and the
// names of pending items and scratch files.
#include <gtest/gtest.h>

#include <algorithm>

#include "fs/inode_table.h"

namespace itemfs::fs {
namespace {

Node item(int64_t ino) { return Node{.kind = Kind::kItem, .item_ino = ino}; }

TEST(FsInodeTableTest, StableNumbersByKind) {
  EXPECT_EQ(InodeTable::item_node(42), kItemBase + 42);
  EXPECT_EQ(InodeTable::item_ino_of(InodeTable::item_node(42)), 42);
  EXPECT_EQ(InodeTable::item_ino_of(InodeTable::shard_node(42)), 0);
  EXPECT_TRUE(is_item_ino(InodeTable::item_node(1)));
  EXPECT_TRUE(is_shard_ino(InodeTable::shard_node(1)));
  InodeTable table;
  fuse_ino_t a = table.new_dynamic(), b = table.new_dynamic();
  EXPECT_TRUE(is_dynamic_ino(a));
  EXPECT_NE(a, b);
  EXPECT_FALSE(is_uncached_ino(a));
  EXPECT_TRUE(is_uncached_ino(kSearchBase + 1));
  EXPECT_TRUE(is_uncached_ino(kBackupBase + 1));
}

TEST(FsInodeTableTest, LookupsAndForgetsCount) {
  InodeTable table;
  fuse_ino_t ino = InodeTable::item_node(7);
  table.remember(ino, item(7));
  table.remember(ino, item(7));
  table.forget(ino, 1);
  ASSERT_TRUE(table.copy(ino));
  EXPECT_EQ(table.copy(ino)->lookups, 1u);
  table.forget(ino, 1);
  EXPECT_FALSE(table.copy(ino));
  // Forgetting more than was counted, or a node that is gone, is harmless.
  table.remember(ino, item(7));
  table.forget(ino, 5);
  table.forget(ino, 1);
  EXPECT_EQ(table.size(), 0u);
}

TEST(FsInodeTableTest, OpenNodeOutlivesItsLookups) {
  InodeTable table;
  fuse_ino_t ino = InodeTable::item_node(7);
  table.remember(ino, item(7));
  {
    std::lock_guard lock(table.mutex);
    ++table.nodes.at(ino).open_handles;
  }
  table.forget(ino, 1);
  ASSERT_TRUE(table.copy(ino));
  std::lock_guard lock(table.mutex);
  --table.nodes.at(ino).open_handles;
  table.maybe_drop(table.nodes.find(ino));
  EXPECT_EQ(table.nodes.count(ino), 0u);
}

TEST(FsInodeTableTest, LinkedScratchFileStaysUntilUnlinked) {
  InodeTable table;
  fuse_ino_t ino = table.new_dynamic();
  Node scratch{.kind = Kind::kScratch};
  scratch.name_as("ab", ".abc.json.swp");
  table.remember(ino, scratch);
  {
    std::lock_guard lock(table.mutex);
    table.scratch[{"ab", ".abc.json.swp"}] = ino;
  }
  table.forget(ino, 1);
  EXPECT_TRUE(table.copy(ino)) << "its body lives only here";
  EXPECT_EQ(table.find_scratch("ab", ".abc.json.swp"), ino);
  table.mark_unlinked(ino);
  table.forget(ino, 0);
  EXPECT_FALSE(table.copy(ino));
}

TEST(FsInodeTableTest, DroppedPendingItemLeavesThePendingNames) {
  InodeTable table;
  fuse_ino_t ino = table.new_dynamic();
  Node pending{.kind = Kind::kItem, .pending = true};
  pending.name_as("ab", "abc");
  table.remember(ino, pending);
  {
    std::lock_guard lock(table.mutex);
    table.pending["abc"] = ino;
  }
  table.forget(ino, 1);
  std::lock_guard lock(table.mutex);
  EXPECT_EQ(table.pending.count("abc"), 0u);
  EXPECT_EQ(table.nodes.count(ino), 0u);
}

TEST(FsInodeTableTest, CommittedNodeBecomesAnAliasOfItsItem) {
  InodeTable table;
  fuse_ino_t created = table.new_dynamic();
  Node pending{.kind = Kind::kItem, .pending = true};
  pending.name_as("ab", "abc");
  table.remember(created, pending);
  table.remember(InodeTable::item_node(9), item(9));
  std::lock_guard lock(table.mutex);
  table.bind_to_item(created, table.nodes.at(created), 9);
  const Node& node = table.nodes.at(created);
  EXPECT_FALSE(node.pending);
  EXPECT_EQ(node.item_ino, 9);
  EXPECT_EQ(node.where, nullptr) << "a committed item's name is the store's";
  auto nodes = table.nodes_of_item(9);
  std::sort(nodes.begin(), nodes.end());
  EXPECT_EQ(nodes, (std::vector<fuse_ino_t>{InodeTable::item_node(9), created}));
  // When the alias goes, the item has one node again.
  table.nodes.at(created).lookups = 0;
  table.maybe_drop(table.nodes.find(created));
  EXPECT_EQ(table.nodes_of_item(9), std::vector<fuse_ino_t>{InodeTable::item_node(9)});
}

TEST(FsInodeTableTest, ReaddirplusEntriesAreCounted) {
  InodeTable table;
  EXPECT_TRUE(table.remember_listed(InodeTable::item_node(3), "abc.json"));
  EXPECT_TRUE(table.remember_listed(InodeTable::item_node(3), "abc.json"));
  EXPECT_EQ(table.copy(InodeTable::item_node(3))->lookups, 2u);
  EXPECT_TRUE(table.remember_listed(InodeTable::shard_node(4), "ab"));
  EXPECT_EQ(table.items_dir_of(InodeTable::shard_node(4)), "ab");
  EXPECT_EQ(table.items_dir_of(kItemsIno), "");
  EXPECT_FALSE(table.items_dir_of(InodeTable::item_node(3)));
  // A scratch or pending node the table no longer has is not made up.
  EXPECT_FALSE(table.remember_listed(kDynBase + 99, "x"));
}

TEST(FsInodeTableTest, ReplacedNamesAreUnlinked) {
  InodeTable table;
  fuse_ino_t old_scratch = table.new_dynamic(), old_pending = table.new_dynamic();
  std::lock_guard lock(table.mutex);
  table.nodes[old_scratch] = Node{.kind = Kind::kScratch};
  table.scratch[{"", "x"}] = old_scratch;
  table.nodes[old_pending] = Node{.kind = Kind::kItem, .pending = true};
  table.pending["abc"] = old_pending;
  table.replace_scratch("", "x");
  table.replace_pending("abc");
  EXPECT_TRUE(table.nodes.at(old_scratch).unlinked);
  EXPECT_TRUE(table.nodes.at(old_pending).unlinked);
  EXPECT_TRUE(table.scratch.empty());
  EXPECT_TRUE(table.pending.empty());
}

}  // namespace
}  // namespace itemfs::fs
