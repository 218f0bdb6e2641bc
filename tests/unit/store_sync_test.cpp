// Store::sync(): it syncs the store's files (counted in Stats::syncs), for
// a store whose commits are not synced each (the default); a store opened
// with sync_full (every commit synced) or read-only has nothing to sync;
// what was committed before a sync is still there when the store is opened
// again.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "store/store.h"
#include "tests/unit/temp_dir.h"

namespace itemfs::store {
namespace {

void put(Store& store, const std::string& id, const std::string& bytes) {
  store.write([&](WriteBatch& batch) {
    std::istringstream in(bytes);
    ASSERT_TRUE(batch.put(id, in, {}).ok());
  });
}

TEST(StoreSyncTest, SyncsTheStoreAndCountsIt) {
  TempDir dir;
  {
    auto store = Store::open(dir.path());
    EXPECT_EQ(store->stats().syncs, 0u);
    put(*store, "one", R"({"a":1})");
    store->sync();
    EXPECT_EQ(store->stats().syncs, 1u);
    store->sync();
    EXPECT_EQ(store->stats().syncs, 2u);
  }
  auto again = Store::open(dir.path());
  ASSERT_TRUE(again->item("one").has_value());
}

TEST(StoreSyncTest, NothingToSyncWhenEveryCommitIsSyncedOrTheStoreIsReadOnly) {
  TempDir dir;
  {
    Options options;
    options.sync_full = true;
    auto store = Store::open(dir.path(), options);
    put(*store, "one", R"({"a":1})");
    store->sync();
    EXPECT_EQ(store->stats().syncs, 0u);
  }
  Options options;
  options.read_only = true;
  auto store = Store::open(dir.path(), options);
  store->sync();
  EXPECT_EQ(store->stats().syncs, 0u);
}

}  // namespace
}  // namespace itemfs::store
