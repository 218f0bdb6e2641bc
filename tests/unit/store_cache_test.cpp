// The page caches of the store's connections: the writer's and a reader's
// are the sizes db.h names, and the store's writer with the search index's
// writer (search.db, SQLite's default cache) keeps no more than the 16 MB
// one writer held when it wrote both.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "store/sqlite/db.h"
#include "store/store.h"
#include "tests/unit/temp_dir.h"

namespace itemfs::store {
namespace {

int64_t cache_size(sqlite3* db) {
  Stmt s(db, "PRAGMA cache_size");
  EXPECT_TRUE(s.step());
  return s.int64(0);
}

TEST(StoreCacheTest, TheWriterAndAReaderHaveTheirCacheSizes) {
  TempDir dir;
  { auto store = Store::open(dir.path()); }
  Db writer(dir.path() / "store.db", false, false);
  EXPECT_EQ(cache_size(writer.handle()), -kWriterCacheKiB);
  Db reader(dir.path() / "store.db", true, false);
  EXPECT_EQ(cache_size(reader.handle()), -kReaderCacheKiB);
}

TEST(StoreCacheTest, TheStoresWriterAndTheIndexsWriterKeepWhatOneWriterKept) {
  sqlite3* plain = nullptr;
  ASSERT_EQ(sqlite3_open(":memory:", &plain), SQLITE_OK);
  const int64_t default_kib = -cache_size(plain);  // search.db's connections keep SQLite's default
  sqlite3_close(plain);
  EXPECT_GT(default_kib, 0);
  EXPECT_LE(kWriterCacheKiB + default_kib, 16000);
  EXPECT_LT(kReaderCacheKiB, kWriterCacheKiB);
}

}  // namespace
}  // namespace itemfs::store
