// The search index as a follower of the store's change feed, in its own
// database (search.db): it catches up with items written while no index
// ran, with a cursor set back, and after its database is lost; chmod and
// rename count at once; a replaced item's old row is deleted exactly, also
// across a reopen; a read-only store's index answers from what it has and
// says how many changes are pending; a built index reports its progress.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "search/search.h"
#include "store/store.h"
#include "tests/unit/temp_dir.h"

namespace {

using itemfs::search::Index;
using itemfs::search::IndexOptions;
using itemfs::search::Reader;
using itemfs::search::Results;
using itemfs::store::Attrs;
using itemfs::store::Store;
using itemfs::store::WriteBatch;
using V = std::vector<std::string>;

void put(Store& store, const std::string& id, const std::string& title, uint32_t mode = 0100644) {
  store.write([&](WriteBatch& b) {
    std::istringstream in(nlohmann::json{{"title", title}}.dump());
    ASSERT_TRUE(b.put(id, in, Attrs{mode, 1000, 1000}).ok());
  });
}

V ids(Index& index, const std::string& q, const Reader& who = {}, uint64_t* pending = nullptr) {
  Results r;
  auto st = index.run(q, r, who);
  EXPECT_TRUE(st.ok()) << st.message;
  if (pending) *pending = r.pending;
  V out;
  for (const auto& h : r.hits) out.push_back(h.id);
  std::sort(out.begin(), out.end());
  return out;
}

int64_t index_int(const std::filesystem::path& dir, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open((dir / "search.db").c_str(), &db);
  sqlite3_busy_timeout(db, 60000);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr);
  int64_t v = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
  sqlite3_finalize(s);
  sqlite3_close(db);
  return v;
}

void index_exec(const std::filesystem::path& dir, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open((dir / "search.db").c_str(), &db);
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);
}

TEST(SearchFollower, ItemsWrittenWithNoIndexRunningAreFoundWhenItOpens) {
  TempDir dir;
  auto store = Store::open(dir.path());
  { Index index(*store); }  // made, then gone: the store keeps its changes
  for (int k = 0; k < 50; ++k) put(*store, "w" + std::to_string(k), "wombat " + std::to_string(k));
  store->write([&](WriteBatch& b) {
    ASSERT_TRUE(b.remove("w0").ok());
    ASSERT_TRUE(b.rename("w1", "moved").ok());
  });
  Index index(*store);
  EXPECT_FALSE(index.rebuilt_when_opened());  // caught up from the feed, not rebuilt
  EXPECT_EQ(ids(index, "wombat 1"), (V{"moved"}));
  EXPECT_EQ(ids(index, "wombat").size(), 49u);
  EXPECT_EQ(index.check(), V{});
  EXPECT_EQ(index.lag(), 0u);
  // What the index has applied, the store's feed no longer keeps.
  EXPECT_EQ(store->cursor("search"), store->last_seq());
}

TEST(SearchFollower, ACursorSetBackIsCaughtUpAgain) {
  TempDir dir;
  auto store = Store::open(dir.path());
  {
    Index index(*store);
    put(*store, "a", "kiwi");
    put(*store, "b", "kiwi fig");
    index.catch_up();
  }
  // As if the index had crashed before recording its last batches: the
  // feed no longer keeps them, so it builds itself anew from the items.
  index_exec(dir.path(), "UPDATE search_meta SET value=0 WHERE key='applied'");
  Index index(*store);
  EXPECT_TRUE(index.rebuilt_when_opened() == false);
  EXPECT_EQ(ids(index, "kiwi"), (V{"a", "b"}));
  EXPECT_EQ(index.check(), V{});
}

TEST(SearchFollower, ALostIndexIsBuiltFromTheItemsWithProgress) {
  TempDir dir;
  auto store = Store::open(dir.path());
  for (int k = 0; k < 20; ++k) put(*store, "p" + std::to_string(k), "plum");
  { Index index(*store); }
  std::filesystem::remove(dir.path() / "search.db");
  std::filesystem::remove(dir.path() / "search.db-wal");
  std::filesystem::remove(dir.path() / "search.db-shm");
  std::vector<std::pair<uint64_t, uint64_t>> seen;
  IndexOptions options;
  options.progress = [&](uint64_t done, uint64_t total) { seen.emplace_back(done, total); };
  Index index(*store, options);
  EXPECT_TRUE(index.rebuilt_when_opened());
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back(), (std::pair<uint64_t, uint64_t>{20, 20}));
  EXPECT_EQ(ids(index, "plum").size(), 20u);
  EXPECT_EQ(index.check(), V{});
  // Created for its owner alone, as store.db is.
  struct stat st {};
  ASSERT_EQ(::stat((dir.path() / "search.db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(SearchFollower, AReplacedItemsOldRowIsDeletedAlsoAfterAReopen) {
  TempDir dir;
  auto store = Store::open(dir.path());
  { Index index(*store); put(*store, "x", "apricot"); index.catch_up(); }
  Index index(*store);
  put(*store, "x", "banana");  // the row of "apricot" was made by another Index
  store->write([&](WriteBatch& b) { ASSERT_TRUE(b.remove("x").ok()); });
  EXPECT_EQ(ids(index, "apricot"), V{});
  EXPECT_EQ(ids(index, "banana"), V{});
  EXPECT_EQ(index.check(), V{});
  index.catch_up();
  // Deleted, not left behind as dead rows (the removes' deletes may wait
  // for the next batch with a put).
  put(*store, "y", "cherry");
  EXPECT_EQ(ids(index, "cherry"), V{"y"});
  EXPECT_EQ(index_int(dir.path(), "SELECT count(*) FROM search_dead"), 0);
  EXPECT_EQ(index_int(dir.path(), "SELECT count(*) FROM search_fts('apricot')"), 0);
}

TEST(SearchFollower, ChmodCountsAtOnce) {
  TempDir dir;
  auto store = Store::open(dir.path());
  Index index(*store);
  put(*store, "p", "quince");
  const Reader user{2000, 2000, {}};
  EXPECT_EQ(ids(index, "quince", user), V{"p"});
  store->write([&](WriteBatch& b) { ASSERT_TRUE(b.set_attrs("p", Attrs{0100600, 1000, 1000}).ok()); });
  EXPECT_EQ(ids(index, "quince", user), V{});
  EXPECT_EQ(ids(index, "quince"), V{"p"});  // root
  store->write([&](WriteBatch& b) { ASSERT_TRUE(b.set_attrs("p", Attrs{0100600, 2000, 1000}).ok()); });
  EXPECT_EQ(ids(index, "quince", user), V{"p"});
  EXPECT_EQ(index.check(), V{});
}

TEST(SearchFollower, AReadOnlyStoreAnswersFromWhatIsIndexedAndSaysWhatIsPending) {
  TempDir dir;
  {
    auto store = Store::open(dir.path());
    {
      Index index(*store);
      put(*store, "old", "grape");
      index.catch_up();
    }
    put(*store, "new1", "grape");  // no index running
    put(*store, "new2", "grape");
  }
  itemfs::store::Options ro;
  ro.read_only = true;
  auto store = Store::open(dir.path(), ro);
  Index index(*store);
  uint64_t pending = 0;
  EXPECT_EQ(ids(index, "grape", {}, &pending), V{"old"});
  EXPECT_EQ(pending, 2u);
  EXPECT_EQ(index.lag(), 2u);
  Results r;
  ASSERT_TRUE(index.run("grape", r).ok());
  EXPECT_EQ(nlohmann::json::parse(Index::to_json(r))["pending"], 2);
  // Opened to write again, the index catches up.
  store.reset();
  auto rw = Store::open(dir.path());
  Index caught(*rw);
  EXPECT_EQ(ids(caught, "grape", {}, &pending), (V{"new1", "new2", "old"}));
  EXPECT_EQ(pending, 0u);
}

TEST(SearchFollower, AReadOnlyStoreWithoutAnIndexSaysItIsMissing) {
  TempDir dir;
  {
    auto store = Store::open(dir.path());
    put(*store, "a", "melon");
  }
  itemfs::store::Options ro;
  ro.read_only = true;
  auto store = Store::open(dir.path(), ro);
  Index index(*store);
  Results r;
  auto st = index.run("melon", r);
  EXPECT_EQ(st.code, EIO);
  EXPECT_NE(st.message.find("reindex"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "search.db"));
}

}  // namespace
