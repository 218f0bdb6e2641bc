// The store's change feed: every put, remove, rename and attribute change
// gets the next sequence number in its own transaction; followers' cursors
// keep the changes after them and nothing more; commit listeners hear each
// commit's last sequence number; put reports what it stored; a store of
// format 3 is brought to format 4 with its old search tables dropped.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <sstream>
#include <string>
#include <vector>

#include "store/store.h"
#include "tests/unit/temp_dir.h"

namespace itemfs::store {
namespace {

int64_t scalar(const std::filesystem::path& db_file, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open(db_file.c_str(), &db);
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr);
  int64_t value = sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : -1;
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return value;
}

void exec(const std::filesystem::path& db_file, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open(db_file.c_str(), &db);
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);
}

Status put(WriteBatch& b, const std::string& id, const std::string& bytes, ItemInfo* stored = nullptr) {
  std::istringstream in(bytes);
  return b.put(id, in, Attrs{}, stored);
}

std::vector<Change> all_changes(Store& store, uint64_t after) {
  auto snap = store.snapshot();
  ChangeList list = snap->changes_since(after, 1000);
  EXPECT_TRUE(list.complete);
  return list.changes;
}

TEST(StoreFeed, EveryChangeGetsTheNextSequenceNumber) {
  TempDir dir;
  auto store = Store::open(dir.path());
  ASSERT_EQ(store->follow("test"), 0u);
  EXPECT_EQ(store->last_seq(), 0u);
  ItemInfo a, b;
  store->write([&](WriteBatch& w) {
    ASSERT_TRUE(put(w, "a", "{\"x\": 1}", &a).ok());
    ASSERT_TRUE(put(w, "b", "[1, 2]", &b).ok());
  });
  // put() reports what it stored, as a read would.
  EXPECT_EQ(a.id, "a");
  EXPECT_EQ(store->item("a")->ino, a.ino);
  EXPECT_EQ(store->item("a")->sha256, a.sha256);
  EXPECT_EQ(b.size, 6u);
  Attrs closed;
  closed.mode = 0100600;
  store->write([&](WriteBatch& w) {
    ASSERT_TRUE(w.set_attrs("a", closed).ok());
    ASSERT_TRUE(w.rename("a", "c").ok());
    ASSERT_TRUE(w.rename("c", "b").ok());  // over b: b goes
    ASSERT_TRUE(w.remove("nothing").code == ENOENT);  // a refused change is no change
  });
  store->write([&](WriteBatch& w) { ASSERT_TRUE(w.remove("b").ok()); });
  EXPECT_EQ(store->last_seq(), 7u);
  auto changes = all_changes(*store, 0);
  ASSERT_EQ(changes.size(), 7u);
  const std::vector<std::tuple<ChangeKind, int64_t, std::string, std::string>> want{
      {ChangeKind::kPut, a.ino, "a", ""},          {ChangeKind::kPut, b.ino, "b", ""},
      {ChangeKind::kAttrs, a.ino, "a", ""},        {ChangeKind::kRename, a.ino, "c", "a"},
      {ChangeKind::kRemove, b.ino, "b", ""},       {ChangeKind::kRename, a.ino, "b", "c"},
      {ChangeKind::kRemove, a.ino, "b", ""}};
  for (size_t k = 0; k < changes.size(); ++k) {
    EXPECT_EQ(changes[k].seq, k + 1);
    EXPECT_EQ(changes[k].kind, std::get<0>(want[k])) << k;
    EXPECT_EQ(changes[k].ino, std::get<1>(want[k])) << k;
    EXPECT_EQ(changes[k].id, std::get<2>(want[k])) << k;
    EXPECT_EQ(changes[k].old_id, std::get<3>(want[k])) << k;
  }
  // A limit, and a start after some.
  auto snap = store->snapshot();
  EXPECT_EQ(snap->seq(), 7u);
  auto some = snap->changes_since(2, 3);
  ASSERT_EQ(some.changes.size(), 3u);
  EXPECT_EQ(some.changes[0].seq, 3u);
  EXPECT_EQ(some.last_seq, 7u);
}

TEST(StoreFeed, AWriteThatFailsRecordsNothing) {
  TempDir dir;
  auto store = Store::open(dir.path());
  store->follow("test");
  EXPECT_THROW(store->write([&](WriteBatch& w) {
    ASSERT_TRUE(put(w, "a", "{}").ok());
    throw std::runtime_error("abandoned");
  }),
               std::runtime_error);
  EXPECT_EQ(store->last_seq(), 0u);
  EXPECT_TRUE(all_changes(*store, 0).empty());
  store->write([&](WriteBatch& w) { ASSERT_TRUE(put(w, "a", "{}").ok()); });
  EXPECT_EQ(store->last_seq(), 1u);
}

TEST(StoreFeed, TheFeedKeepsOnlyWhatAFollowerHasNotApplied) {
  TempDir dir;
  auto db = dir.path() / "store.db";
  auto store = Store::open(dir.path());
  // No follower: nothing is kept, and the numbers still go on.
  store->write([&](WriteBatch& w) { ASSERT_TRUE(put(w, "a", "{}").ok()); });
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM changes"), 0);
  EXPECT_FALSE(store->snapshot()->changes_since(0, 10).complete);
  EXPECT_EQ(store->follow("slow"), 1u);
  EXPECT_EQ(store->follow("fast"), 1u);
  for (int k = 0; k < 4; ++k) store->write([&](WriteBatch& w) { ASSERT_TRUE(put(w, "i" + std::to_string(k), "{}").ok()); });
  EXPECT_EQ(store->last_seq(), 5u);
  store->advance("fast", 5);
  store->advance("slow", 3);
  store->advance("slow", 2);  // never back
  EXPECT_EQ(store->cursor("slow"), 3u);
  EXPECT_EQ(store->cursor("fast"), 5u);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM changes"), 2);  // 4 and 5
  EXPECT_TRUE(store->snapshot()->changes_since(3, 10).complete);
  EXPECT_FALSE(store->snapshot()->changes_since(2, 10).complete);  // 3 is gone: start again
  store->unfollow("slow");
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM changes"), 0);
  EXPECT_FALSE(store->cursor("slow").has_value());
  // Registered again, a follower starts at the newest change.
  EXPECT_EQ(store->follow("slow"), 5u);
  // The cursors live in the store: a reopened store keeps them.
  store.reset();
  store = Store::open(dir.path());
  EXPECT_EQ(store->cursor("fast"), 5u);
  EXPECT_EQ(store->last_seq(), 5u);
}

TEST(StoreFeed, CommitListenersHearTheLastSequenceNumberAfterTheCommit) {
  TempDir dir;
  auto store = Store::open(dir.path());
  std::vector<uint64_t> heard;
  std::vector<uint64_t> seen_committed;
  Store* s = store.get();
  store->add_commit_listener([&](uint64_t seq) {
    heard.push_back(seq);
    seen_committed.push_back(s->last_seq());  // outside the transaction: already visible
  });
  store->write([&](WriteBatch& w) {
    ASSERT_TRUE(put(w, "a", "{}").ok());
    ASSERT_TRUE(put(w, "b", "{}").ok());
  });
  store->write([&](WriteBatch& w) { ASSERT_TRUE(w.make_dir("zz", Attrs{040755}).ok()); });  // no item changed
  store->write([&](WriteBatch& w) { ASSERT_TRUE(w.remove("a").ok()); });
  EXPECT_EQ(heard, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(seen_committed, (std::vector<uint64_t>{2, 3}));
}

TEST(StoreFeed, AFormat3StoreLosesItsOldSearchTables) {
  TempDir dir;
  auto db = dir.path() / "store.db";
  {
    auto store = Store::open(dir.path());
    store->write([&](WriteBatch& w) { ASSERT_TRUE(put(w, "a", "{\"t\": \"x\"}").ok()); });
  }
  // As a format 3 store with its index inside was.
  exec(db,
       "DROP TABLE changes; DROP TABLE followers; DELETE FROM meta WHERE key IN ('last_seq', 'feed_trimmed');"
       "UPDATE meta SET value=3 WHERE key='format_version';"
       "CREATE TABLE search_meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
       "CREATE TABLE search_doc(gen INTEGER PRIMARY KEY, ino INTEGER NOT NULL UNIQUE);"
       "CREATE VIRTUAL TABLE search_fts USING fts5(text, content='');"
       "CREATE VIRTUAL TABLE search_vocab USING fts5vocab(search_fts, 'row');"
       "CREATE INDEX search_items_closed ON items(ino, mode, uid, gid) WHERE (mode & 292) != 292;");
  {
    Options ro;
    ro.read_only = true;
    auto store = Store::open(dir.path(), ro);  // read as it is
    EXPECT_TRUE(store->item("a").has_value());
    EXPECT_FALSE(store->snapshot()->changes_since(0, 10).complete);
  }
  auto store = Store::open(dir.path());
  EXPECT_EQ(scalar(db, "SELECT value FROM meta WHERE key='format_version'"), 4);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM sqlite_master WHERE name LIKE 'search%'"), 0);
  EXPECT_TRUE(store->item("a").has_value());
  EXPECT_TRUE(store->fsck(false).clean());
  store->follow("f");
  store->write([&](WriteBatch& w) { ASSERT_TRUE(w.remove("a").ok()); });
  EXPECT_EQ(all_changes(*store, 0).size(), 1u);
}

}  // namespace
}  // namespace itemfs::store
