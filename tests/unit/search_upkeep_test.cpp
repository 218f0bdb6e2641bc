// Tests of how search::Index keeps up with the store: writes show at once,
// batches of changes, removes deleted in batches, puts written at commit,
// dead generations, reindex and check, reopening, an older index version
// rebuilt.
#include <gtest/gtest.h>

#include "search_index_fixture.h"

namespace {

// The shared fixture, as its own test suite.
class SearchUpkeep : public SearchIndex {};

TEST_F(SearchUpkeep, WritesShowUpAtOnce) {
  load_corpus();
  EXPECT_TRUE(ids("kangaroo").empty());
  put("k1", {{"title", "Kangaroo facts"}});
  EXPECT_EQ(ids("kangaroo"), V{"k1"});
  // Replace: the old words go, the new ones come.
  put("k1", {{"title", "Wombat facts"}});
  EXPECT_TRUE(ids("kangaroo").empty());
  EXPECT_EQ(ids("wombat"), V{"k1"});
  rename("k1", "k2");
  EXPECT_EQ(ids("wombat"), V{"k2"});
  auto r = search("wombat");
  EXPECT_EQ(nlohmann::json::parse(Index::to_json(r))["hits"][0]["path"], "items/k2/k2.json");
  // Rename onto an existing item replaces it in the index too.
  rename("k2", "a1");
  EXPECT_EQ(ids("wombat"), V{"a1"});
  EXPECT_EQ(sorted_ids("solar"), (V{"a2", "a6"}));
  remove("a1");
  EXPECT_TRUE(ids("wombat").empty());
  EXPECT_TRUE(index_->check().empty());
}

TEST_F(SearchUpkeep, RepeatedWordsAreIndexedAndRemovedCleanly) {
  // A row holds each distinct token once; replacing and removing items with
  // many repeats (in the title, the body, accented forms, fields) must take
  // out exactly what went in.
  std::string body;
  for (int k = 0; k < 50; ++k) body += "Echo echo ÉCHO écho 日本語 " + std::to_string(k % 7) + " ";
  put("r1", {{"title", "Echo echo"}, {"content", body}, {"tags", {"echo", "echo"}}, {"source", "echo echo"}});
  put("r2", {{"title", "other"}, {"content", "one echo"}});
  EXPECT_EQ(sorted_ids("echo"), (V{"r1", "r2"}));
  EXPECT_EQ(sorted_ids("title:echo"), (V{"r1"}));
  EXPECT_EQ(sorted_ids("tag:echo"), (V{"r1"}));
  EXPECT_EQ(sorted_ids("source:echo"), (V{"r1"}));
  EXPECT_EQ(sorted_ids("日本語"), (V{"r1"}));
  EXPECT_EQ(sorted_ids("\"echo echo\""), (V{"r1"}));
  EXPECT_EQ(ids("echo")[0], "r1");  // in the title
  put("r1", {{"title", "fresh"}, {"content", "nothing repeated"}});
  EXPECT_EQ(sorted_ids("echo"), (V{"r2"}));
  EXPECT_TRUE(ids("tag:echo").empty());
  EXPECT_TRUE(ids("日本語").empty());
  remove("r2");
  EXPECT_TRUE(ids("echo").empty());
  EXPECT_TRUE(index_->check().empty());
}

// Identifiers (long words of letters and digits: ids, hashes, etags) are
// held by their buckets (their first and last characters). Whatever is
// found through buckets is checked against the item itself, so queries
// answer exactly as if each identifier were a term of its own.

TEST_F(SearchUpkeep, SeveralChangesInOneBatch) {
  load_corpus();
  store_->write([&](WriteBatch& b) {
    for (const char* text : {R"({"title":"first version"})", R"({"title":"second version"})", R"({"title":"third"})"}) {
      std::istringstream in(text);
      ASSERT_TRUE(b.put("multi", in, {}).ok());
    }
    ASSERT_TRUE(b.rename("multi", "multi2").ok());
    std::istringstream in(R"({"title":"fourth version"})");
    ASSERT_TRUE(b.put("multi2", in, {}).ok());
    ASSERT_TRUE(b.remove("a2").ok());
  });
  EXPECT_EQ(ids("version"), V{"multi2"});
  EXPECT_TRUE(ids("first").empty());
  EXPECT_TRUE(ids("third").empty());
  EXPECT_EQ(sorted_ids("solar"), (V{"a1", "a6"}));
  EXPECT_TRUE(index_->check().empty());
  // A batch that throws leaves the index as it was.
  EXPECT_THROW(store_->write([&](WriteBatch& b) {
    std::istringstream in(R"({"title":"ghost"})");
    ASSERT_TRUE(b.put("ghost", in, {}).ok());
    throw std::runtime_error("abort");
  }), std::runtime_error);
  EXPECT_TRUE(ids("ghost").empty());
  EXPECT_TRUE(index_->check().empty());
}

TEST_F(SearchUpkeep, ReindexAndCheck) {
  load_corpus();
  EXPECT_TRUE(index_->check().empty());
  // Damage: drop an entry, add a stray one, make one look stale.
  exec("DELETE FROM search_doc WHERE ino=" + std::to_string(ino("a2")));
  exec("UPDATE search_doc SET sha = sha + 1 WHERE ino=" + std::to_string(ino("a3")));
  exec("INSERT INTO search_doc(gen, ino, sha, len) VALUES(999999, 999999, 0, 0)");
  auto problems = index_->check();
  ASSERT_GE(problems.size(), 3u);
  auto has = [&](const std::string& needle) {
    return std::any_of(problems.begin(), problems.end(), [&](const std::string& p) { return p.find(needle) != std::string::npos; });
  };
  EXPECT_TRUE(has("item a2 is not in the index"));
  EXPECT_TRUE(has("older version of item a3"));
  EXPECT_TRUE(has("inode 999999, which is not an item"));
  index_->reindex();
  EXPECT_TRUE(index_->check().empty());
  EXPECT_EQ(sorted_ids("solar"), (V{"a1", "a2", "a6"}));

  // Wiping the full-text rows is noticed as well.
  exec("INSERT INTO search_fts(search_fts) VALUES('delete-all')");
  EXPECT_FALSE(index_->check().empty());
  index_->reindex();
  EXPECT_TRUE(index_->check().empty());
  EXPECT_EQ(sorted_ids("cafe"), (V{"a3"}));
}

TEST_F(SearchUpkeep, ReopenAndIndexExistingItems) {
  load_corpus();
  open();  // tables exist: nothing rebuilt, still searchable
  EXPECT_EQ(sorted_ids("solar"), (V{"a1", "a2", "a6"}));
  // A store that had items before it had an index gets one filled at once.
  exec("DROP TABLE search_vocab; DROP TABLE search_fts; DROP TABLE search_doc; DROP TABLE search_meta;"
       "DROP TABLE search_dead");
  open();
  EXPECT_EQ(sorted_ids("solar"), (V{"a1", "a2", "a6"}));
  EXPECT_TRUE(index_->check().empty());
}

// The index keeps which columns hold a word, not where: phrases are found by
// their words and then checked against each candidate's own text.

TEST_F(SearchUpkeep, OlderIndexVersionIsRebuilt) {
  load_corpus();
  open();  // (the first open made the index: it said it rebuilt it)
  EXPECT_FALSE(index_->rebuilt_when_opened());
  exec("DROP TABLE search_vocab; DROP TABLE search_fts;"
       "CREATE VIRTUAL TABLE search_fts USING fts5(title, body, meta, content='',"
       " tokenize='unicode61 remove_diacritics 2');"
       "CREATE VIRTUAL TABLE search_vocab USING fts5vocab(search_fts, 'row');"
       "UPDATE search_meta SET value = 1 WHERE key='version'");
  open();
  EXPECT_TRUE(index_->rebuilt_when_opened());
  EXPECT_EQ(sorted_ids("\"solar panel\""), (V{"a1", "a2"}));
  EXPECT_EQ(sorted_ids("author:smith"), (V{"a1", "a6"}));
  EXPECT_TRUE(index_->check().empty());
  {
    sqlite3* db = index_db();
    sqlite3_stmt* s = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT sql FROM sqlite_master WHERE name='search_fts'", -1, &s, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
    EXPECT_NE(std::string(reinterpret_cast<const char*>(sqlite3_column_text(s, 0))).find("detail=none"),
              std::string::npos);
    sqlite3_finalize(s);
    sqlite3_close(db);
  }
}

// A remove leaves its full-text row as a dead row (listed in search_dead)
// and deletes it later with others (the next put, or at close); searches
// never see it.
TEST_F(SearchUpkeep, RemovesAreDeletedFromTheIndexInBatches) {
  load_corpus();
  auto dead = [&] { return query_int("SELECT count(*) FROM search_dead"); };
  auto fts_rows = [&] { return fts_row_count(); };
  remove("a6");
  remove("a3");
  EXPECT_EQ(sorted_ids("solar"), (V{"a1", "a2"}));
  EXPECT_TRUE(ids("cafe").empty());
  EXPECT_EQ(search("solar").total, 2u);
  EXPECT_TRUE(index_->check().empty());
  EXPECT_EQ(dead(), 2);
  EXPECT_EQ(fts_rows(), 6);

  // A remove whose transaction does not commit keeps its row: the later
  // batch delete must not take it out of the index.
  EXPECT_THROW(store_->write([&](WriteBatch& b) {
                 ASSERT_TRUE(b.remove("a1").ok());
                 throw std::runtime_error("abandon");
               }),
               std::runtime_error);
  EXPECT_EQ(sorted_ids("solar"), (V{"a1", "a2"}));

  put("a7", {{"title", "Geothermal"}, {"content", "Heat from below."}});
  EXPECT_EQ(dead(), 0);
  EXPECT_EQ(fts_rows(), 5);  // a1 a2 a4 a5 a7
  EXPECT_EQ(sorted_ids("solar"), (V{"a1", "a2"}));
  EXPECT_EQ(sorted_ids("panel"), (V{"a1", "a2"}));
  EXPECT_TRUE(index_->check().empty());

  // Deletes still waiting when the index is closed are written then.
  remove("a7");
  EXPECT_EQ(dead(), 1);
  open();
  EXPECT_EQ(dead(), 0);
  EXPECT_EQ(fts_rows(), 4);
  EXPECT_TRUE(ids("geothermal").empty());
  EXPECT_TRUE(index_->check().empty());

  // Many removes in a row are deleted in batches along the way.
  for (int k = 0; k < 600; ++k) put(numbered("m", k), {{"title", "many"}, {"content", numbered("word", k)}});
  for (int k = 0; k < 600; ++k) remove(numbered("m", k));
  EXPECT_LT(dead(), 300);
  EXPECT_TRUE(ids("many").empty());
  EXPECT_TRUE(index_->check().empty());
}

// Puts' full-text rows are written together just before the commit; a
// batch that does not commit leaves nothing behind for the next one.
TEST_F(SearchUpkeep, PutsAreWrittenAtCommit) {
  load_corpus();
  EXPECT_THROW(store_->write([&](WriteBatch& b) {
                 std::istringstream in(R"({"title": "zeppelin"})"), in2(R"({"title": "zeppelin two"})");
                 ASSERT_TRUE(b.put("z1", in, {}).ok());
                 ASSERT_TRUE(b.put("z3", in2, {}).ok());
                 throw std::runtime_error("abandon");
               }),
               std::runtime_error);
  put("z2", {{"title", "airship"}});
  EXPECT_TRUE(ids("zeppelin").empty());
  EXPECT_EQ(ids("airship"), (V{"z2"}));
  EXPECT_TRUE(index_->check().empty());
  // Put, replace and remove in one batch: only the last state is indexed.
  store_->write([&](WriteBatch& b) {
    std::istringstream one(R"({"title": "first draft"})"), two(R"({"title": "second draft"})"),
        three(R"({"title": "gone draft"})");
    ASSERT_TRUE(b.put("d1", one, {}).ok());
    ASSERT_TRUE(b.put("d1", two, {}).ok());
    ASSERT_TRUE(b.put("d2", three, {}).ok());
    ASSERT_TRUE(b.remove("d2").ok());
  });
  EXPECT_EQ(ids("draft"), (V{"d1"}));
  EXPECT_TRUE(ids("first").empty());
  EXPECT_TRUE(ids("gone").empty());
  EXPECT_TRUE(index_->check().empty());
}

TEST_F(SearchUpkeep, DeadGenerationsAreSkipped) {
  load_corpus();
  // Simulate a row whose old tokens could not be deleted: an entry left in
  // search_fts whose generation maps to no item.
  exec("INSERT INTO search_fts(rowid, text) VALUES(777777, 'solar orphan \xEE\x80\x82" "a');"
       "INSERT INTO search_dead(gen) VALUES(777777)");
  auto r = search("solar");
  EXPECT_EQ(r.total, 3u);
  EXPECT_TRUE(ids("orphan").empty());
  EXPECT_TRUE(index_->check().empty());
  exec("DELETE FROM search_dead");
  EXPECT_FALSE(index_->check().empty());  // now it is unexplained
  index_->reindex();
  EXPECT_TRUE(index_->check().empty());
}

}  // namespace
