// Tests of itemfs::search::Index against a real store in a temp directory.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "search/extract.h"
#include "search/search.h"
#include "store/store.h"

namespace fs = std::filesystem;
using itemfs::search::Index;
using itemfs::search::Results;
using itemfs::store::Store;
using itemfs::store::WriteBatch;

namespace {

class SearchIndex : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("itemfs-search-" + std::to_string(rd()) + std::to_string(rd()));
    open();
  }
  void TearDown() override {
    index_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }
  void open() {
    index_.reset();
    store_.reset();
    store_ = Store::open(dir_);
    index_ = std::make_unique<Index>(*store_);
  }
  void put(const std::string& id, const nlohmann::json& doc) { put_raw(id, doc.dump()); }
  void put_raw(const std::string& id, const std::string& text) {
    store_->write([&](WriteBatch& b) {
      std::istringstream in(text);
      auto st = b.put(id, in, {});
      ASSERT_TRUE(st.ok()) << st.message;
    });
    index_->catch_up();  // each write its own batch of the index, as a query after it would see it
  }
  void remove(const std::string& id) {
    store_->write([&](WriteBatch& b) { ASSERT_TRUE(b.remove(id).ok()); });
    index_->catch_up();
  }
  void rename(const std::string& from, const std::string& to) {
    store_->write([&](WriteBatch& b) { ASSERT_TRUE(b.rename(from, to).ok()); });
    index_->catch_up();
  }
  int64_t ino(const std::string& id) { return store_->item(id)->ino; }
  Results search(const std::string& q) {
    Results r;
    auto st = index_->run(q, r);
    EXPECT_TRUE(st.ok()) << q << ": " << st.message;
    return r;
  }
  // The ids found, in rank order.
  std::vector<std::string> ids(const std::string& q) {
    std::vector<std::string> out;
    for (const auto& h : search(q).hits) out.push_back(h.id);
    return out;
  }
  std::vector<std::string> sorted_ids(const std::string& q) {
    auto v = ids(q);
    std::sort(v.begin(), v.end());
    return v;
  }
  // The index's own database (search.db), once it has applied every write.
  sqlite3* index_db() {
    index_->catch_up();
    sqlite3* db = nullptr;
    sqlite3_open((dir_ / "search.db").c_str(), &db);
    sqlite3_busy_timeout(db, 60000);
    return db;
  }
  // The first column of the first row of sql, read outside any write.
  int64_t query_int(const char* sql) {
    int64_t v = -1;
    sqlite3* db = index_db();
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(db, sql, -1, &s, nullptr);
    if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
  }
  // Rows in the full-text table: each holds one length token (U+E002 + a letter).
  int64_t fts_row_count() { return query_int("SELECT count(*) FROM search_fts('\"\xEE\x80\x82\" *')"); }
  void exec(const std::string& sql) {
    sqlite3* db = index_db();
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }

  void load_corpus() {
    put("a1", {{"title", "Solar panel prices fall"},
               {"content", "Cheaper photovoltaic modules arrived this year."},
               {"url", "https://www.example.com/news/solar"},
               {"author", "Jane Smith"},
               {"tags", {"energy", "solar power"}},
               {"lang", "en"},
               {"published_at", "2024-03-05T10:00:00Z"},
               {"metadata", {{"source", "reuters"}}}});
    put("a2", {{"title", "Wind farms"},
               {"content", "A report on wind farms, with a note on solar panel output."},
               {"url", "https://news.other.org/wind"},
               {"author", "Bob Jones"},
               {"tags", {"energy"}},
               {"lang", "en-GB"},
               {"published_at", "2023-11-20"},
               {"metadata", {{"source", "ap"}}}});
    put("a3", {{"title", "Café culture in Zürich"},
               {"content", "Les cafés de la ville sont très élégants."},
               {"url", "https://blog.example.com/cafe"},
               {"author", "Élodie Durand"},
               {"tags", {"travel"}},
               {"metadata", {{"lang", "fr"}, {"source", "blog"}}},
               {"crawled_at", "2024-06-01T00:00:00+02:00"}});
    put("a4", {{"title", "東京の天気"},
               {"content", "今日は日本語の文章です。明日は晴れるでしょう。"},
               {"url", "https://tenki.example.jp/tokyo"},
               {"lang", "ja"},
               {"published_at", "2024-01-15"}});
    put("a5", {{"title", "한국어 뉴스"}, {"content", "서울에서 한국어를 배우는 학생들"}, {"lang", "ko"}});
    put("a6", {{"title", "Battery storage"},
               {"content", "Grid batteries store solar energy for the night. Photovoltaics need storage."},
               {"url", "https://www.example.com/batteries"},
               {"author", "Jane Smith"},
               {"published_at", 1717200000}});
  }

  fs::path dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Index> index_;
};

using V = std::vector<std::string>;

// prefix + k, built with += ("x" + std::to_string(k) trips GCC 12's
// -Wrestrict false positive at -O3).
std::string numbered(const char* prefix, int k) {
  std::string out(prefix);
  out += std::to_string(k);
  return out;
}

TEST_F(SearchIndex, TitleHitRanksAboveBodyOnlyHit) {
  load_corpus();
  auto r = search("solar panel");
  ASSERT_EQ(r.total, 2u);
  ASSERT_EQ(r.hits.size(), 2u);
  EXPECT_EQ(r.hits[0].id, "a1");  // in the title
  EXPECT_EQ(r.hits[1].id, "a2");  // only in the body
  EXPECT_GT(r.hits[0].score, r.hits[1].score);
}

TEST_F(SearchIndex, AllWordsMustMatch) {
  load_corpus();
  EXPECT_EQ(sorted_ids("solar"), (V{"a1", "a2", "a6"}));
  EXPECT_EQ(sorted_ids("solar wind"), (V{"a2"}));
  EXPECT_EQ(sorted_ids("solar AND wind"), (V{"a2"}));
  EXPECT_TRUE(ids("solar zebra").empty());
}

TEST_F(SearchIndex, OrExcludePhrasePrefix) {
  load_corpus();
  EXPECT_EQ(sorted_ids("wind OR batteries"), (V{"a2", "a6"}));
  EXPECT_EQ(sorted_ids("solar -wind"), (V{"a1", "a6"}));
  EXPECT_EQ(sorted_ids("solar -\"panel output\""), (V{"a1", "a6"}));
  EXPECT_EQ(sorted_ids("\"solar panel\""), (V{"a1", "a2"}));
  EXPECT_EQ(sorted_ids("\"panel solar\""), V{});
  EXPECT_EQ(sorted_ids("photovolt*"), (V{"a1", "a6"}));
  EXPECT_EQ(sorted_ids("\"solar pan\"*"), (V{"a1", "a2"}));
  EXPECT_EQ(sorted_ids("zurich OR wind solar"), (V{"a2"}));
}

TEST_F(SearchIndex, FieldFilters) {
  load_corpus();
  EXPECT_EQ(sorted_ids("title:solar"), (V{"a1"}));
  EXPECT_EQ(sorted_ids("title:\"solar panel\""), (V{"a1"}));
  EXPECT_EQ(sorted_ids("content:panel"), (V{"a2"}));  // a1 has it in the title only
  EXPECT_EQ(sorted_ids("content:solar"), (V{"a1", "a2", "a6"}));  // a1: in a tag, which is text
  EXPECT_EQ(sorted_ids("author:smith"), (V{"a1", "a6"}));
  EXPECT_EQ(sorted_ids("author:\"jane smith\" batteries"), (V{"a6"}));
  EXPECT_EQ(sorted_ids("author:elodie"), (V{"a3"}));
  EXPECT_EQ(sorted_ids("url:news"), (V{"a1", "a2"}));
  EXPECT_EQ(sorted_ids("host:example.com"), (V{"a1", "a3", "a6"}));
  EXPECT_EQ(sorted_ids("host:www.example.com"), (V{"a1", "a6"}));
  EXPECT_EQ(sorted_ids("host:blog.example.com"), (V{"a3"}));
  EXPECT_EQ(sorted_ids("host:xample.com"), V{});
  EXPECT_EQ(sorted_ids("tag:energy"), (V{"a1", "a2"}));
  EXPECT_EQ(sorted_ids("tag:power"), (V{"a1"}));
  EXPECT_EQ(sorted_ids("tags:travel"), (V{"a3"}));
  EXPECT_EQ(sorted_ids("lang:en"), (V{"a1", "a2"}));
  EXPECT_EQ(sorted_ids("lang:en-gb"), (V{"a2"}));
  EXPECT_EQ(sorted_ids("lang:fr"), (V{"a3"}));  // from metadata.lang
  EXPECT_EQ(sorted_ids("metadata.source:reuters"), (V{"a1"}));
  EXPECT_EQ(sorted_ids("metadata.source:ap OR metadata.source:blog"), (V{"a2", "a3"}));
  EXPECT_EQ(sorted_ids("energy -tag:solar*"), (V{"a2", "a6"}));
  EXPECT_EQ(sorted_ids("unknownfield:x"), V{});
}

TEST_F(SearchIndex, DatesAndSort) {
  load_corpus();
  // a3 has only crawled_at (2024-05-31T22:00Z); a5 has no date.
  EXPECT_EQ(sorted_ids("after:2024-01-01"), (V{"a1", "a3", "a4", "a6"}));
  EXPECT_EQ(sorted_ids("before:2024"), (V{"a2"}));
  EXPECT_EQ(sorted_ids("solar after:2024-03-05 before:2024-03-06"), (V{"a1"}));
  EXPECT_EQ(sorted_ids("solar after:2024-03-06"), (V{"a6"}));
  EXPECT_EQ(sorted_ids("after:2024-05-31T23:00:00+02:00 before:2024-06-01"), (V{"a3"}));
  EXPECT_EQ(ids("solar sort:date"), (V{"a6", "a1", "a2"}));
  EXPECT_EQ(ids("after:2000 sort:date"), (V{"a6", "a3", "a1", "a4", "a2"}));
  EXPECT_EQ(ids("solar sort:score limit:1"), (V{"a1"}));
  auto r = search("solar limit:2");
  EXPECT_EQ(r.total, 3u);
  EXPECT_EQ(r.hits.size(), 2u);
  EXPECT_EQ(sorted_ids("after:2024 -solar"), (V{"a3", "a4"}));
}

TEST_F(SearchIndex, UnicodeAccentsAndCjk) {
  load_corpus();
  EXPECT_EQ(sorted_ids("cafe"), (V{"a3"}));
  EXPECT_EQ(sorted_ids("café"), (V{"a3"}));
  EXPECT_EQ(sorted_ids("ZURICH"), (V{"a3"}));
  EXPECT_EQ(sorted_ids("elegants"), (V{"a3"}));
  EXPECT_EQ(sorted_ids("日本語"), (V{"a4"}));    // inside a sentence
  EXPECT_EQ(sorted_ids("日本"), (V{"a4"}));
  EXPECT_EQ(sorted_ids("文章"), (V{"a4"}));
  EXPECT_EQ(sorted_ids("晴れる"), (V{"a4"}));
  EXPECT_EQ(sorted_ids("東京"), (V{"a4"}));      // title
  EXPECT_EQ(sorted_ids("天"), (V{"a4"}));        // one character
  EXPECT_EQ(sorted_ids("気"), (V{"a4"}));        // last character of a run
  EXPECT_EQ(sorted_ids("本日"), V{});
  EXPECT_EQ(sorted_ids("\"日本語の文章\""), (V{"a4"}));
  EXPECT_EQ(sorted_ids("한국어"), (V{"a5"}));    // inside 한국어를
  EXPECT_EQ(sorted_ids("학생"), (V{"a5"}));
  auto r = search("日本語");
  ASSERT_EQ(r.hits.size(), 1u);
  EXPECT_NE(r.hits[0].snippet.find("[日本語]"), std::string::npos) << r.hits[0].snippet;
  r = search("cafe");
  ASSERT_EQ(r.hits.size(), 1u);
  EXPECT_EQ(r.hits[0].snippet, "[Café] culture in Zürich");  // "cafés" is another word
}

TEST_F(SearchIndex, Snippets) {
  load_corpus();
  auto r = search("photovoltaic");
  ASSERT_EQ(r.hits.size(), 1u);
  EXPECT_EQ(r.hits[0].snippet, "Cheaper [photovoltaic] modules arrived this year.");
  r = search("photovolt*");
  ASSERT_EQ(r.hits.size(), 2u);
  for (const auto& h : r.hits) {
    if (h.id == "a1") {
      EXPECT_EQ(h.snippet, "Cheaper [photovoltaic] modules arrived this year.");
    } else {
      EXPECT_NE(h.snippet.find("night. [Photovoltaics] need"), std::string::npos) << h.snippet;
    }
  }
  // Title-only matches fall back to the title; filters only: start of the body.
  r = search("title:zurich");
  ASSERT_EQ(r.hits.size(), 1u);
  EXPECT_EQ(r.hits[0].snippet, "Café culture in [Zürich]");
  r = search("author:jones");
  ASSERT_EQ(r.hits.size(), 1u);
  EXPECT_EQ(r.hits[0].snippet.rfind("A report on wind farms", 0), 0u) << r.hits[0].snippet;
  // A long body: the window is around the match, with ellipses.
  std::string body;
  for (int k = 0; k < 200; ++k) body += "filler" + std::to_string(k) + " ";
  body += "needle ";
  for (int k = 0; k < 200; ++k) body += "more" + std::to_string(k) + " ";
  put("long", {{"title", "x"}, {"content", body}});
  r = search("needle");
  ASSERT_EQ(r.hits.size(), 1u);
  EXPECT_EQ(r.hits[0].snippet.rfind("… ", 0), 0u) << r.hits[0].snippet;
  EXPECT_NE(r.hits[0].snippet.find("filler199 [needle] more0"), std::string::npos) << r.hits[0].snippet;
  EXPECT_LT(r.hits[0].snippet.size(), 400u);
}

// The passage is the densest run of matches among the 96 tokens after the
// first one: a denser run further on is not looked for (each token looked at
// costs inflating and tokenizing it), and one near the end is shown whole.
TEST_F(SearchIndex, SnippetsLookForTheDensestRunNearTheFirstMatch) {
  auto words = [](const std::string& stem, int from, int to) {
    std::string s;
    for (int k = from; k < to; ++k) s += stem + std::to_string(k) + " ";
    return s;
  };
  const std::string dense = "needle a needle b needle ";
  put("near", {{"title", "x"}, {"content", "needle " + words("w", 0, 60) + dense + words("m", 0, 300)}});
  put("far", {{"title", "x"}, {"content", "needle " + words("w", 0, 120) + dense + words("m", 0, 300)}});
  // A run at the end of the 96: its window is shown whole all the same.
  put("edge", {{"title", "x"}, {"content", "needle " + words("w", 0, 90) + "needle needle " + words("m", 0, 300)}});
  std::map<std::string, std::string> snippets;
  for (const auto& h : search("needle").hits) snippets[h.id] = h.snippet;
  ASSERT_EQ(snippets.size(), 3u);
  EXPECT_EQ(snippets["edge"],
            "… w72 w73 w74 w75 w76 w77 w78 w79 w80 w81 w82 w83 w84 w85 w86 w87 w88 w89 [needle] [needle] m0 m1 m2 "
            "m3 …");
  EXPECT_EQ(snippets["near"],
            "… w56 w57 w58 w59 [needle] a [needle] b [needle] m0 m1 m2 m3 m4 m5 m6 m7 m8 m9 m10 m11 m12 m13 m14 …");
  EXPECT_EQ(snippets["far"], "[needle] w0 w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 w18 w19 w20 w21 "
                             "w22 …");
}

// A listing (search/<q>/) needs the hits, not their snippets.
TEST_F(SearchIndex, RunWithoutSnippetsFindsTheSameHits) {
  load_corpus();
  for (const char* q : {"photovolt*", "solar OR wind", "title:zurich", "solar sort:date"}) {
    const Results with = search(q);
    Results without;
    ASSERT_TRUE(index_->run_without_snippets(q, without).ok()) << q;
    EXPECT_EQ(without.total, with.total) << q;
    ASSERT_EQ(without.hits.size(), with.hits.size()) << q;
    ASSERT_FALSE(with.hits.empty()) << q;
    for (size_t k = 0; k < with.hits.size(); ++k) {
      EXPECT_EQ(without.hits[k].id, with.hits[k].id) << q;
      EXPECT_EQ(without.hits[k].score, with.hits[k].score) << q;
      EXPECT_TRUE(without.hits[k].snippet.empty()) << q;
      EXPECT_FALSE(with.hits[k].snippet.empty()) << q;
    }
  }
  Results bad;
  EXPECT_EQ(index_->run_without_snippets("\"unbalanced", bad).code, EINVAL);
}

TEST_F(SearchIndex, SnippetsWhenTheMainTextHasNoMatch) {
  // The word only in another field: the main text (all ASCII, no match) is
  // passed over for the text that has it.
  std::string body;
  for (int k = 0; k < 3000; ++k) body += "filler" + std::to_string(k) + " ";
  put("o1", {{"title", "x"}, {"content", body}, {"note", "an ensured outcome"}});
  auto r = search("ensured");
  ASSERT_EQ(r.hits.size(), 1u);
  EXPECT_NE(r.hits[0].snippet.find("[ensured] outcome"), std::string::npos) << r.hits[0].snippet;
  // The word only with an accent in a long ASCII-and-accents text: found by folding.
  put("o2", {{"title", "x"}, {"content", body + "the ensuréd one " + body}});
  r = search("ensured");
  ASSERT_EQ(r.hits.size(), 2u);
  for (const auto& h : r.hits) {
    if (h.id == "o2") {
      EXPECT_NE(h.snippet.find("[ensuréd] one"), std::string::npos) << h.snippet;
    }
  }
  // Filters only: the start of the text, cut after 24 words.
  put("o3", {{"title", "x"}, {"content", body}, {"source", "zeta"}});
  r = search("source:zeta");
  ASSERT_EQ(r.hits.size(), 1u);
  EXPECT_EQ(r.hits[0].snippet,
            "filler0 filler1 filler2 filler3 filler4 filler5 filler6 filler7 filler8 filler9 filler10 filler11 "
            "filler12 filler13 filler14 filler15 filler16 filler17 filler18 filler19 filler20 filler21 filler22 "
            "filler23 …");
  put("o4", {{"title", "x"}, {"content", "short text"}, {"source", "zeta2"}});
  r = search("source:zeta2");
  ASSERT_EQ(r.hits.size(), 1u);
  EXPECT_EQ(r.hits[0].snippet, "short text");
}

// A long item's snippet is made from the start of it when that is enough;
// it must be the one its whole text gives.
TEST_F(SearchIndex, SnippetsOfLongItemsAreTheSameAsFromTheirWholeText) {
  auto words = [](const std::string& stem, int from, int to) {
    std::string s;
    for (int k = from; k < to; ++k) s += stem + std::to_string(k) + " ";
    return s;
  };
  // Early in a long text: the window around it.
  put("early", {{"title", "x"}, {"content", words("w", 0, 300) + "needle " + words("m", 0, 5000)}});
  // A longer word holds it early (not a match), the word itself comes late.
  put("late", {{"title", "x"}, {"content", "needles " + words("w", 0, 5000) + "needle " + words("m", 0, 400)}});
  // Two words: the second only far into the text.
  put("two", {{"title", "x"}, {"content", words("w", 0, 100) + "alpha " + words("v", 0, 5000) + "beta " +
                                              words("m", 0, 400)}});
  // A main text string that turns out to be data, then the words in another main field.
  put("data", {{"title", "x"},
               {"content", std::string(20000, 'Q')},
               {"summary", words("s", 0, 2000) + "needle alpha beta " + words("m", 0, 400)}});
  // Text with non-ASCII letters around the word, read in pieces.
  std::string accents;
  for (int k = 0; k < 3000; ++k) accents += "é" + std::to_string(k) + " ";
  put("accents", {{"title", "x"}, {"content", accents + "Needle " + accents}});
  std::map<std::string, std::string> snippets;
  for (const auto& h : search("needle").hits) snippets[h.id] = h.snippet;
  ASSERT_EQ(snippets.size(), 4u);
  EXPECT_EQ(snippets["early"],
            "… w296 w297 w298 w299 [needle] m0 m1 m2 m3 m4 m5 m6 m7 m8 m9 m10 m11 m12 m13 m14 m15 m16 m17 m18 …");
  EXPECT_EQ(snippets["late"],
            "… w4996 w4997 w4998 w4999 [needle] m0 m1 m2 m3 m4 m5 m6 m7 m8 m9 m10 m11 m12 m13 m14 m15 m16 m17 m18 …");
  EXPECT_EQ(snippets["data"],
            "… s1996 s1997 s1998 s1999 [needle] alpha beta m0 m1 m2 m3 m4 m5 m6 m7 m8 m9 m10 m11 m12 m13 m14 m15 m16 …");
  EXPECT_EQ(snippets["accents"],
            "… é2996 é2997 é2998 é2999 [Needle] é0 é1 é2 é3 é4 é5 é6 é7 é8 é9 é10 é11 é12 é13 é14 é15 é16 é17 é18 …");
  auto r = search("alpha beta");
  ASSERT_EQ(r.hits.size(), 2u);
  for (const auto& h : r.hits) {
    if (h.id == "two") {
      EXPECT_EQ(h.snippet, "… w96 w97 w98 w99 [alpha] v0 v1 v2 v3 v4 v5 v6 v7 v8 v9 v10 v11 v12 v13 v14 v15 v16 v17 v18 …");
    } else {
      EXPECT_EQ(h.snippet, "… s1997 s1998 s1999 needle [alpha] [beta] m0 m1 m2 m3 m4 m5 m6 m7 m8 m9 m10 m11 m12 m13 m14 "
                           "m15 m16 m17 …");
    }
  }
}

// From 16 hits on, snippets are made on two threads (with two CPUs): the
// same snippets as the one thread makes for a query of fewer hits.
TEST_F(SearchIndex, SnippetsOfManyHitsAreTheSameOnTwoThreads) {
  auto words = [](const std::string& stem, int from, int to) {
    std::string s;
    for (int k = from; k < to; ++k) s += stem + std::to_string(k) + " ";
    return s;
  };
  // Title hits rank first: long items, read in several pieces, one of them
  // in several chunks, and short ones.
  for (int k = 0; k < 10; ++k) {
    const int after = k == 9 ? 150000 : 2000;
    put(numbered("long", k),
        {{"title", "needle report"}, {"content", words("w", 0, 400 * k) + "needle " + words("m", 0, after)}});
  }
  for (int k = 0; k < 30; ++k) {
    put(numbered("short", k), {{"title", "x"}, {"content", "some text " + std::to_string(k) + " with the needle in it"}});
  }
  auto all = search("needle");
  auto top = search("needle limit:15");
  ASSERT_EQ(all.hits.size(), 40u);
  ASSERT_EQ(top.hits.size(), 15u);
  for (size_t k = 0; k < top.hits.size(); ++k) {
    EXPECT_EQ(all.hits[k].id, top.hits[k].id) << k;
    EXPECT_EQ(all.hits[k].snippet, top.hits[k].snippet) << all.hits[k].id;
    EXPECT_NE(all.hits[k].snippet.find("[needle]"), std::string::npos) << all.hits[k].id;
  }
  for (const auto& h : all.hits) EXPECT_NE(h.snippet.find("[needle]"), std::string::npos) << h.id;
}

TEST_F(SearchIndex, WritesShowUpAtOnce) {
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

TEST_F(SearchIndex, RepeatedWordsAreIndexedAndRemovedCleanly) {
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
TEST_F(SearchIndex, IdentifiersAreFoundThroughTheirBuckets) {
  // All in bucket "b15" except i3's etag.
  put("i1", {{"title", "First"},
             {"content", "ref B15EC588CE9B49E9 here"},
             {"etag", "b15ec588ce9b49e9"},
             {"code", "b15aaaaaaaa1"}});
  put("i2", {{"title", "b15ec588ce9b49ff"}, {"content", "other b15ec588ce9b49ff"}, {"etag", "b15ec588ce9b49ff"}});
  put("i3", {{"title", "Third"}, {"content", "mentions b15ec588 only"}, {"etag", "0123456789abcdef"}});
  // Folds to b15ec588ce9b49e9 (its run of letters is not ASCII).
  put("i4", {{"title", "Fourth"}, {"content", "B15ÉC588CE9B49E9 folded"}});
  put("i5", {{"title", "b15ec588ce9b49aa"}, {"content", "only in the title"}});
  // In the buckets of b15ec588ce9b49e9 (first and last characters), but not it.
  put("i6", {{"title", "Sixth"}, {"content", "B15BBBBBBBBBB9E9"}, {"etag", "b15aaaaaaaaaa9e9"}});
  EXPECT_EQ(sorted_ids("b15ec588ce9b49e9"), (V{"i1", "i4"}));
  EXPECT_EQ(search("b15ec588ce9b49e9").total, 2u);
  EXPECT_EQ(sorted_ids("etag:b15ec588ce9b49e9"), (V{"i1"}));
  EXPECT_EQ(sorted_ids("etag:B15EC588CE9B49FF"), (V{"i2"}));
  EXPECT_EQ(sorted_ids("etag:0123456789abcdef"), (V{"i3"}));
  EXPECT_EQ(sorted_ids("code:b15aaaaaaaa1"), (V{"i1"}));
  EXPECT_EQ(sorted_ids("b15aaaaaaaa1"), (V{"i1"}));
  EXPECT_EQ(sorted_ids("title:b15ec588ce9b49ff"), (V{"i2"}));
  EXPECT_EQ(sorted_ids("title:b15ec588ce9b49aa"), (V{"i5"}));
  EXPECT_EQ(sorted_ids("content:b15ec588ce9b49aa"), V{});
  EXPECT_EQ(sorted_ids("content:b15ec588ce9b49ff"), (V{"i2"}));
  EXPECT_EQ(ids("b15ec588ce9b49ff")[0], "i2");
  // Prefixes: the words they start and the buckets they may start.
  EXPECT_EQ(sorted_ids("b15ec588*"), (V{"i1", "i2", "i3", "i4", "i5"}));
  EXPECT_EQ(sorted_ids("b15ec588ce*"), (V{"i1", "i2", "i4", "i5"}));
  EXPECT_EQ(sorted_ids("b1*"), (V{"i1", "i2", "i3", "i4", "i5", "i6"}));
  EXPECT_EQ(sorted_ids("etag:b1*"), (V{"i1", "i2", "i6"}));
  EXPECT_EQ(sorted_ids("b15b*"), (V{"i6"}));
  EXPECT_EQ(sorted_ids("etag:01234*"), (V{"i3"}));
  EXPECT_EQ(sorted_ids("title:b15*"), (V{"i2", "i5"}));
  // Excluding one identifier leaves the rest of its bucket.
  EXPECT_EQ(sorted_ids("b15ec588* -b15ec588ce9b49e9"), (V{"i2", "i3", "i5"}));
  EXPECT_EQ(sorted_ids("sixth -b15ec588ce9b49e9"), (V{"i6"}));
  EXPECT_EQ(sorted_ids("b1* -b15ec588ce*"), (V{"i3", "i6"}));
  EXPECT_EQ(sorted_ids("b1* -title:b15*"), (V{"i1", "i3", "i4", "i6"}));
  EXPECT_EQ(sorted_ids("b1* -content:b15ec588ce9b49f*"), (V{"i1", "i3", "i4", "i5", "i6"}));
  EXPECT_EQ(sorted_ids("sixth -b15bbbbbbbbbb9e9"), V{});
  EXPECT_EQ(sorted_ids("first -etag:b15ec588ce9b49e9"), V{});
  EXPECT_EQ(sorted_ids("etag:b1* -etag:b15ec588ce9b49ff"), (V{"i1", "i6"}));
  EXPECT_EQ(sorted_ids("b15ec588ce9b49e9 OR third"), (V{"i1", "i3", "i4"}));
  // In a phrase.
  EXPECT_EQ(sorted_ids("\"ref b15ec588ce9b49e9 here\""), (V{"i1"}));
  EXPECT_EQ(sorted_ids("\"other b15ec588ce9b49e9\""), V{});
  auto r = search("etag:b15ec588ce9b49e9 ref");
  ASSERT_EQ(r.hits.size(), 1u);
  EXPECT_NE(r.hits[0].snippet.find("[ref]"), std::string::npos) << r.hits[0].snippet;
  r = search("b15ec588ce9b49ff");
  ASSERT_EQ(r.hits.size(), 1u);
  EXPECT_NE(r.hits[0].snippet.find("[b15ec588ce9b49ff]"), std::string::npos) << r.hits[0].snippet;
  std::string facets;
  ASSERT_TRUE(index_->facets_json("b15ec588ce9b49e9", facets).ok());
  EXPECT_EQ(nlohmann::json::parse(facets)["total"], 2);
  // Suggestions list words, not buckets.
  ASSERT_TRUE(index_->suggest_json("b15", facets).ok());
  EXPECT_EQ(facets.find("\xEE\x80\x83"), std::string::npos) << facets;
  // Changes and removals take out exactly the buckets that went in.
  put("i1", {{"title", "First"}, {"content", "now without it"}});
  EXPECT_EQ(sorted_ids("b15ec588ce9b49e9"), (V{"i4"}));
  EXPECT_TRUE(index_->check().empty());
  for (const char* id : {"i1", "i2", "i3", "i4", "i5", "i6"}) remove(id);
  put("z", {{"title", "zz"}, {"content", "zz"}});  // writes the deferred deletes
  EXPECT_EQ(query_int("SELECT count(*) FROM search_vocab WHERE doc > 0 AND (instr(term, char(57347)) > 0 OR "
                      "instr(term, char(57348)) > 0 OR "
                      "term LIKE '%b15%' OR term LIKE '%0123%' OR term LIKE '%first%')"),
            0);
  EXPECT_EQ(query_int("SELECT count(*) FROM search_vocab WHERE doc > 0"), 3);  // zz, title zz, length
}

TEST_F(SearchIndex, SeveralChangesInOneBatch) {
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

TEST_F(SearchIndex, ToJsonParses) {
  load_corpus();
  auto r = search("solar \"panel <b>&amp;\" OR energy");
  auto j = nlohmann::json::parse(Index::to_json(r));
  EXPECT_EQ(j["query"], r.query);
  EXPECT_EQ(j["total"], r.total);
  ASSERT_EQ(j["hits"].size(), r.hits.size());
  ASSERT_FALSE(r.hits.empty());
  for (size_t k = 0; k < r.hits.size(); ++k) {
    const auto& h = j["hits"][k];
    EXPECT_EQ(h["rank"], k + 1);
    EXPECT_EQ(h["id"], r.hits[k].id);
    EXPECT_EQ(h["path"], "items/" + itemfs::store::shard_of(r.hits[k].id) + "/" + r.hits[k].id + ".json");
    EXPECT_TRUE(h["score"].is_number());
    EXPECT_TRUE(h["snippet"].is_string());
  }
  // Empty results are a valid document too.
  j = nlohmann::json::parse(Index::to_json(search("nothingmatchesthis")));
  EXPECT_EQ(j["total"], 0);
  EXPECT_TRUE(j["hits"].is_array());
}

// to_json writes the document itself; it must be byte for byte what
// nlohmann's dump of the same tree gives (indent 2, sorted keys, bad UTF-8
// replaced), as it was made before.
std::string dumped_by_nlohmann(const Results& r) {
  nlohmann::json hits = nlohmann::json::array();
  uint64_t rank = 0;
  for (const auto& h : r.hits) {
    hits.push_back(nlohmann::json{{"rank", ++rank},
                                  {"id", h.id},
                                  {"path", "items/" + itemfs::store::shard_of(h.id) + "/" + h.id + ".json"},
                                  {"score", std::round(h.score * 1e6) / 1e6},
                                  {"snippet", h.snippet}});
  }
  return nlohmann::json{{"query", r.query}, {"total", r.total}, {"hits", std::move(hits)}}.dump(
             2, ' ', false, nlohmann::json::error_handler_t::replace) +
         "\n";
}

TEST(SearchJson, ToJsonIsWhatNlohmannDumps) {
  Results r;
  r.query = "solar \"panel\" \\ tab\there";
  EXPECT_EQ(Index::to_json(r), dumped_by_nlohmann(r));  // no hits
  r.total = 123456789012ull;
  const std::vector<std::string> texts = {
      "", "plain", "quote \" and backslash \\ and slash /", "controls \x01\x1f\x7f \b\f\n\r\t end",
      "caf\xc3\xa9 \xe6\x95\xb0\xe6\x8d\xae \xf0\x9f\x98\x80 \xe2\x80\xa6 [word]",
      "bad \xff byte", "cut \xe6\x95", "overlong \xc0\xaf", "surrogate \xed\xa0\x80", "too high \xf4\x90\x80\x80",
      "lone continuation \x80\x80 and \xc3", std::string("nul \0 inside", 12)};
  double score = 0;
  for (const auto& text : texts) {
    r.hits.push_back({"0123456789abcdef", score, text});
    score = score * 3.7 + 0.1234567891;
  }
  r.hits.push_back({"z", 1e300, "big"});
  r.hits.push_back({"y", -0.0000004, "tiny"});
  r.hits.push_back({"x", 2.0, "whole"});
  r.query = texts[4] + texts[5];
  EXPECT_EQ(Index::to_json(r), dumped_by_nlohmann(r));
  // Random bytes, mostly from the ranges UTF-8 cares about.
  std::mt19937 rng(7);
  const std::string alphabet = "a\"\\\n\x01\x7f\x80\xbf\xc2\xc3\xdf\xe0\xed\xef\xf0\xf4\xf5\xff\xa0\x9f\x8f\x90";
  for (int round = 0; round < 2000; ++round) {
    Results one;
    one.total = uint64_t(round);
    for (int k = 0; k < 3; ++k) {
      std::string text;
      for (size_t n = rng() % 12; n > 0; --n) text += alphabet[rng() % alphabet.size()];
      one.hits.push_back({"id" + std::to_string(k), double(rng() % 100000) / 7.0, text});
      if (k == 0) one.query = text;
    }
    ASSERT_EQ(Index::to_json(one), dumped_by_nlohmann(one)) << "round " << round;
  }
}

TEST_F(SearchIndex, BadQueriesAreEinval) {
  load_corpus();
  for (const char* q : {"", "   ", "\"unbalanced", "solar \"panel", "NOT solar", "solar NEAR panel", "OR solar",
                        "solar OR", "solar OR OR wind", "-solar", "- solar", "limit:0", "limit:x", "limit:100000",
                        "sort:banana", "after:yesterday", "before:2024-13-01", "title:", "so*lar", "*", "(solar)",
                        "solar -after:2024", "limit:5 limit:6", "solar OR -wind", "!!!", "limit:10"}) {
    Results r;
    auto st = index_->run(q, r);
    EXPECT_EQ(st.code, EINVAL) << "query: " << q;
    EXPECT_FALSE(st.message.empty()) << "query: " << q;
  }
  std::string out;
  EXPECT_EQ(index_->facets_json("\"open", out).code, EINVAL);
  EXPECT_EQ(index_->suggest_json("--", out).code, EINVAL);
}

TEST_F(SearchIndex, HostileQueriesDoNotReachFts5Syntax) {
  load_corpus();
  // FTS5 operators and punctuation typed by a user are only words.
  for (const char* q : {"solar^", "solar:", "NEAR(solar panel)x", "{title}: solar", "solar + panel", "a:b:c",
                        "title:\"\"\"", "\"\"", "col:(x)", "solar*x*", "'", "\\", "solar;DROP TABLE items"}) {
    Results r;
    auto st = index_->run(q, r);
    EXPECT_TRUE(st.ok() || st.code == EINVAL) << q << ": " << st.message;
  }
  EXPECT_EQ(sorted_ids("solar^"), (V{"a1", "a2", "a6"}));
}

TEST_F(SearchIndex, SuggestAndFacets) {
  load_corpus();
  std::string out;
  ASSERT_TRUE(index_->suggest_json("sol", out).ok());
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["prefix"], "sol");
  ASSERT_FALSE(j["terms"].empty());
  EXPECT_EQ(j["terms"][0]["term"], "solar");
  EXPECT_EQ(j["terms"][0]["docs"], 3);
  for (const auto& t : j["terms"]) EXPECT_EQ(t["term"].get<std::string>().rfind("sol", 0), 0u);
  ASSERT_TRUE(index_->suggest_json("CAF", out).ok());
  j = nlohmann::json::parse(out);
  ASSERT_FALSE(j["terms"].empty());
  EXPECT_EQ(j["terms"][0]["term"], "cafe");  // folded: café and cafés are one word... "cafe"/"cafes"

  ASSERT_TRUE(index_->facets_json("energy OR solar", out).ok());
  j = nlohmann::json::parse(out);
  EXPECT_EQ(j["total"], 3);
  auto count = [&](const char* facet, const std::string& value) -> int {
    for (const auto& e : j["facets"][facet]) {
      if (e["value"] == value) return e["count"];
    }
    return 0;
  };
  EXPECT_EQ(count("host", "www.example.com"), 2);
  EXPECT_EQ(count("host", "news.other.org"), 1);
  EXPECT_EQ(count("author", "Jane Smith"), 2);
  EXPECT_EQ(count("tag", "energy"), 2);
  EXPECT_EQ(count("tag", "solar power"), 1);
  EXPECT_EQ(count("lang", "en"), 1);
  EXPECT_EQ(count("lang", "en-gb"), 1);
  EXPECT_EQ(count("year", "2024"), 2);
  EXPECT_EQ(count("year", "2023"), 1);
  EXPECT_EQ(j["facets"]["host"][0]["value"], "www.example.com");
}

// Hosts, authors, languages and whole tag lists are kept once each in
// search_value; those no item uses any more are swept when the index closes
// (or once a quarter of the entries have been dropped).
TEST_F(SearchIndex, FacetValuesAreSharedAndSwept) {
  auto values = [&] { return query_int("SELECT count(*) FROM search_value"); };
  const nlohmann::json tags = {"solar", "energy", "solar"};
  put("v1", {{"title", "one"}, {"url", "https://a.example/x"}, {"author", "Ann"}, {"lang", "en"}, {"tags", tags}});
  put("v2", {{"title", "two"}, {"url", "https://a.example/y"}, {"author", "Ann"}, {"lang", "en"}, {"tags", tags}});
  EXPECT_EQ(values(), 4);  // host, author, lang, one tag list
  std::string out;
  ASSERT_TRUE(index_->facets_json("one OR two", out).ok());
  auto j = nlohmann::json::parse(out);
  // An item counts once for a tag it has twice.
  EXPECT_EQ(j["facets"]["tag"], nlohmann::json::parse(R"([{"value": "energy", "count": 2}, {"value": "solar", "count": 2}])"));
  EXPECT_EQ(j["facets"]["author"], nlohmann::json::parse(R"([{"value": "Ann", "count": 2}])"));
  put("v2", {{"title", "two"}, {"author", "Bob"}, {"tags", {"wind"}}});
  EXPECT_EQ(values(), 6);  // + Bob, + [wind]
  ASSERT_TRUE(index_->facets_json("one OR two", out).ok());
  j = nlohmann::json::parse(out);
  EXPECT_EQ(j["facets"]["tag"][0], nlohmann::json::parse(R"({"value": "energy", "count": 1})"));
  EXPECT_EQ(j["facets"]["tag"].size(), 3u);
  EXPECT_EQ(j["facets"]["host"].size(), 1u);
  EXPECT_TRUE(index_->check().empty());
  remove("v1");
  open();  // closing sweeps
  EXPECT_EQ(values(), 2);  // Bob and [wind]
  EXPECT_EQ(sorted_ids("author:bob tag:wind"), (V{"v2"}));
  remove("v2");
  open();
  EXPECT_EQ(values(), 0);
  EXPECT_TRUE(index_->check().empty());
  // A value an entry needs is missed, and a reindex mends it.
  put("v3", {{"title", "three"}, {"author", "Cy"}});
  exec("DELETE FROM search_value");
  auto problems = index_->check();
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("facet values of items are missing"), std::string::npos) << problems[0];
  index_->reindex();
  EXPECT_TRUE(index_->check().empty());
  exec("UPDATE search_value SET hash = hash + 1");
  exec("INSERT INTO search_value(hash, value) SELECT hash, value FROM search_value");
  problems = index_->check();
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_NE(problems[0].find("under a wrong hash"), std::string::npos) << problems[0];
  EXPECT_NE(problems[1].find("kept twice"), std::string::npos) << problems[1];
  index_->reindex();
  EXPECT_TRUE(index_->check().empty());
  ASSERT_TRUE(index_->facets_json("three", out).ok());
  EXPECT_EQ(nlohmann::json::parse(out)["facets"]["author"][0]["value"], "Cy");
}

// Sweeps also run while the index is open, once enough entries went.
TEST_F(SearchIndex, FacetValuesAreSweptAsItemsChange) {
  auto values = [&] { return query_int("SELECT count(*) FROM search_value"); };
  for (int round = 0; round < 3; ++round) {
    store_->write([&](WriteBatch& b) {
      for (int k = 0; k < 1000; ++k) {
        std::istringstream in(nlohmann::json{{"title", "t"}, {"author", numbered("a", round * 1000 + k)}}.dump());
        ASSERT_TRUE(b.put(numbered("w", k), in, {}).ok());
      }
    });
  }
  // 3000 authors were written, 2000 replaced: a sweep at 1000 and 2000 drops.
  EXPECT_EQ(values(), 1000);
  EXPECT_TRUE(index_->check().empty());
}

TEST_F(SearchIndex, ReindexAndCheck) {
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

TEST_F(SearchIndex, ReopenAndIndexExistingItems) {
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
TEST_F(SearchIndex, PhrasesAreCheckedWordForWord) {
  load_corpus();
  put("p1", {{"title", "Panel"}, {"content", "The output of the panel, solar in the evening."}});
  put("p2", {{"title", "x"}, {"content", "y"}, {"tags", {"solar", "power grid"}}});
  // p1 has both words but never "solar panel" or "panel output".
  auto r = search("\"solar panel\"");
  EXPECT_EQ(r.total, 2u);  // total counts checked items only
  EXPECT_EQ(sorted_ids("\"solar panel\""), (V{"a1", "a2"}));
  EXPECT_EQ(sorted_ids("\"panel output\""), (V{"a2"}));
  EXPECT_EQ(sorted_ids("\"the output\" -\"panel output\""), (V{"p1"}));
  EXPECT_EQ(sorted_ids("solar -\"solar panel\""), (V{"a6", "p1", "p2"}));
  EXPECT_EQ(sorted_ids("\"solar pan\"*"), (V{"a1", "a2"}));
  EXPECT_EQ(sorted_ids("\"evening zebra\" OR \"photovoltaic modules\""), (V{"a1"}));
  EXPECT_EQ(sorted_ids("title:\"panel prices\""), (V{"a1"}));
  EXPECT_EQ(sorted_ids("content:\"solar panel\""), (V{"a2"}));  // a1 has it in the title
  EXPECT_EQ(sorted_ids("tag:\"power grid\""), (V{"p2"}));
  // Consecutive values of one field read as consecutive words, as in the text.
  EXPECT_EQ(sorted_ids("tag:\"solar power\""), (V{"a1", "p2"}));
  EXPECT_EQ(sorted_ids("author:\"smith jane\""), V{});
  std::string out;
  ASSERT_TRUE(index_->facets_json("\"solar panel\"", out).ok());
  EXPECT_EQ(nlohmann::json::parse(out)["total"], 2);
  // sort:date and date filters go through the same check.
  EXPECT_EQ(ids("\"solar panel\" sort:date"), (V{"a1", "a2"}));
  EXPECT_EQ(sorted_ids("\"solar panel\" after:2024"), (V{"a1"}));
  EXPECT_EQ(sorted_ids("after:2020 -\"panel output\""), (V{"a1", "a3", "a4", "a6"}));
}

// Ranking uses which columns hold a word: the title counts 10, the body 1,
// and a shorter item ranks above a longer one with the same columns.
TEST_F(SearchIndex, RankingFromColumnsAndLength) {
  put("r1", {{"title", "other"}, {"content", "kiwi"}});
  put("r2", {{"title", "kiwi"}, {"content", "kiwi"}});
  put("r3", {{"title", "other"}, {"content", "kiwi and many more words to make this text longer than the others"}});
  for (int k = 0; k < 5; ++k) put(numbered("f", k), {{"title", "filler"}, {"content", "nothing"}});
  auto r = search("kiwi");
  ASSERT_EQ(r.hits.size(), 3u);
  EXPECT_EQ(r.hits[0].id, "r2");
  EXPECT_EQ(r.hits[1].id, "r1");
  EXPECT_EQ(r.hits[2].id, "r3");
  EXPECT_GT(r.hits[0].score, r.hits[1].score);
  EXPECT_GT(r.hits[1].score, r.hits[2].score);
  EXPECT_GT(r.hits[2].score, 0.0);
}

// The index is one column without positions: the title's words are there as
// themselves and as title tokens, so title: and content: still tell them
// apart, and no text can pose as a title or field token.
TEST_F(SearchIndex, TitleAndBodyInOneColumn) {
  put("t1", {{"title", "Mango season"}, {"content", "Nothing here."}});
  put("t2", {{"title", "Fruit"}, {"content", "A mango a day."}});
  put("t3", {{"title", "Mango"}, {"content", "mango again"}});
  EXPECT_EQ(sorted_ids("mango"), (V{"t1", "t2", "t3"}));
  EXPECT_EQ(sorted_ids("title:mango"), (V{"t1", "t3"}));
  EXPECT_EQ(sorted_ids("content:mango"), (V{"t2", "t3"}));
  EXPECT_EQ(sorted_ids("mango -title:mango"), (V{"t2"}));
  EXPECT_EQ(sorted_ids("mango -content:mango"), (V{"t1"}));
  EXPECT_EQ(sorted_ids("title:mang*"), (V{"t1", "t3"}));
  EXPECT_EQ(sorted_ids("title:mango OR content:day"), (V{"t1", "t2", "t3"}));
  EXPECT_EQ(search("content:mango").total, 2u);
  std::string facets;
  ASSERT_TRUE(index_->facets_json("content:mango", facets).ok());
  EXPECT_EQ(nlohmann::json::parse(facets)["total"], 2);
  ASSERT_TRUE(index_->facets_json("mango -content:mango", facets).ok());
  EXPECT_EQ(nlohmann::json::parse(facets)["total"], 1);
  using itemfs::search::detail::kLengthMark;
  using itemfs::search::detail::kTitleMark;
  using itemfs::search::detail::marker;
  put("t4", {{"title", "x"},
             {"content", std::string(kTitleMark) + "secret " + marker("@author") + "smith " + std::string(kLengthMark) + "p"}});
  EXPECT_EQ(ids("secret"), V{"t4"});  // the marks are spaces: "secret" is a word of the text
  EXPECT_TRUE(ids("title:secret").empty());
  EXPECT_TRUE(ids("author:smith").empty());
  EXPECT_EQ(ids(std::string(kTitleMark) + "secret"), V{"t4"});
  std::string out;
  ASSERT_TRUE(index_->suggest_json("s", out).ok());
  const auto suggested = nlohmann::json::parse(out);
  for (const auto& t : suggested["terms"]) {
    EXPECT_EQ(t["term"].get<std::string>().rfind("s", 0), 0u) << t["term"];
  }
  EXPECT_TRUE(index_->check().empty());
}

// Ranking: a word in the title counts 10 times a word in the body, a rarer
// word more than a common one, an item with more of the words of an OR more
// than one with fewer, and among equals a shorter text ranks first.
TEST_F(SearchIndex, RankingByTitleRarityAndLength) {
  put("b1", {{"title", "common"}, {"content", "rare"}});
  put("b2", {{"title", "rare"}, {"content", "common"}});
  for (int k = 0; k < 8; ++k) put(numbered("f", k), {{"title", "x"}, {"content", "common filler"}});
  auto r = search("rare common");
  ASSERT_EQ(r.hits.size(), 2u);
  EXPECT_EQ(r.hits[0].id, "b2");  // the rarer word in the title
  EXPECT_EQ(r.hits[1].id, "b1");
  EXPECT_GT(r.hits[0].score, r.hits[1].score);
  // A word in every item still counts (idf stays above 0), the title first.
  r = search("common");
  ASSERT_EQ(r.hits.size(), 10u);
  EXPECT_EQ(r.hits[0].id, "b1");
  EXPECT_GT(r.hits.back().score, 0.0);

  put("o1", {{"title", "y"}, {"content", "kiwi mango"}});
  put("o2", {{"title", "y"}, {"content", "kiwi"}});
  put("o3", {{"title", "y"}, {"content", "mango"}});
  r = search("kiwi OR mango");
  ASSERT_EQ(r.hits.size(), 3u);
  EXPECT_EQ(r.hits[0].id, "o1");
  EXPECT_GT(r.hits[0].score, r.hits[1].score);

  std::string longer = "pear";
  for (int k = 0; k < 300; ++k) longer += " lorem";
  put("l1", {{"title", "z"}, {"content", longer}});
  put("l2", {{"title", "z"}, {"content", "pear ipsum"}});
  put("l3", {{"title", "pear"}, {"content", longer}});
  EXPECT_EQ(ids("pear"), (V{"l3", "l2", "l1"}));  // a long text with the word in its title first
  EXPECT_EQ(ids("pear sort:score"), (V{"l3", "l2", "l1"}));
  EXPECT_EQ(ids("pea*"), (V{"l3", "l2", "l1"}));
  EXPECT_EQ(ids("pea* -lorem"), (V{"l2"}));
}

// A row's length class is read from a table the index keeps between
// queries: a rewrite, a remove and a new item all show in the next ranking.
TEST_F(SearchIndex, LengthClassesFollowWrites) {
  std::string longer = "plum";
  for (int k = 0; k < 300; ++k) longer += " lorem";
  put("a1", {{"title", "t"}, {"content", "plum"}});
  put("a2", {{"title", "t"}, {"content", longer}});
  EXPECT_EQ(ids("plum"), (V{"a1", "a2"}));
  put("a1", {{"title", "t"}, {"content", longer}});
  put("a2", {{"title", "t"}, {"content", "plum"}});
  EXPECT_EQ(ids("plum"), (V{"a2", "a1"}));
  remove("a2");
  put("a3", {{"title", "t"}, {"content", "plum pie"}});
  put("a4", {{"title", "t"}, {"content", longer + " pie"}});
  EXPECT_EQ(ids("plum"), (V{"a3", "a1", "a4"}));
  EXPECT_EQ(search("plum").total, 3u);
  store_->write([&](WriteBatch& b) {
    std::istringstream in(nlohmann::json{{"title", "t"}, {"content", "plum"}}.dump());
    ASSERT_TRUE(b.put("a5", in, {}).ok());
    ASSERT_TRUE(b.remove("a3").ok());
  });
  EXPECT_EQ(ids("plum"), (V{"a5", "a1", "a4"}));
  const auto before = search("plum");
  open();  // a new Index reads the table afresh: the same results
  const auto after = search("plum");
  ASSERT_EQ(after.hits.size(), before.hits.size());
  for (size_t k = 0; k < after.hits.size(); ++k) {
    EXPECT_EQ(after.hits[k].id, before.hits[k].id);
    EXPECT_EQ(after.hits[k].score, before.hits[k].score);
  }
  index_->reindex();  // new generations for every item
  EXPECT_EQ(ids("plum"), (V{"a5", "a1", "a4"}));
}

// The number of items that idf uses is FTS5's count of its rows less the
// dead ones, and a one-word query counts the word's rows as it reads them:
// both as count(*) and the word's row count (dead rows too) would give.
TEST_F(SearchIndex, IdfCountsWithDeadRows) {
  for (int k = 0; k < 10; ++k) put(numbered("k", k), {{"title", "t"}, {"content", "kiwi pear"}});
  for (int k = 0; k < 10; ++k) put(numbered("f", k), {{"title", "t"}, {"content", "fig pear"}});
  for (int k = 0; k < 3; ++k) remove(numbered("k", k));  // deferred: 3 dead rows that have kiwi
  ASSERT_EQ(query_int("SELECT count(*) FROM search_dead"), 3);
  EXPECT_TRUE(index_->check().empty());
  // Every text is in one length class, so a body hit scores idf itself.
  const double n = 17, docs = 10;
  const double idf = std::log(1 + (n - docs + 0.5) / (docs + 0.5));
  for (const char* q : {"kiwi", "kiwi -zzz", "kiwi pear", "kiwi sort:score"}) {
    auto r = search(q);
    ASSERT_EQ(r.total, 7u) << q;
    const double pear = std::string(q) == "kiwi pear" ? std::log(1 + (n - 20 + 0.5) / (20 + 0.5)) : 0;
    EXPECT_NEAR(r.hits[0].score, idf + std::max(pear, 1e-6 * (pear != 0)), 1e-9) << q;
  }
}

// Many rows of a query, with and without a prefix: the shorter texts first.
TEST_F(SearchIndex, ManyPrefixRowsRankByLength) {
  store_->write([&](WriteBatch& b) {
    for (int k = 0; k < 4200; ++k) {
      std::string body = "zeta";
      for (int w = 0; w < k % 7; ++w) body += " words words words words words words words words";
      std::istringstream in(nlohmann::json{{"title", "t"}, {"content", body}}.dump());
      ASSERT_TRUE(b.put(numbered("z", k), in, {}).ok());
    }
  });
  for (const char* q : {"zeta", "zet*"}) {
    auto r = search(std::string(q) + " limit:700");
    EXPECT_EQ(r.total, 4200u) << q;
    ASSERT_EQ(r.hits.size(), 700u) << q;
    // The 600 shortest texts (k % 7 == 0) come first, then the next class.
    for (size_t k = 0; k < 600; ++k) EXPECT_EQ(std::stoi(r.hits[k].id.substr(1)) % 7, 0) << q << " " << k;
    EXPECT_NE(std::stoi(r.hits[600].id.substr(1)) % 7, 0) << q;
    EXPECT_GT(r.hits[599].score, r.hits[600].score) << q;
  }
}

// An index written by an earlier itemfs (version 1: word positions, field
// words as marker-word pairs) is rebuilt when the store is opened.
TEST_F(SearchIndex, OlderIndexVersionIsRebuilt) {
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
TEST_F(SearchIndex, RemovesAreDeletedFromTheIndexInBatches) {
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
TEST_F(SearchIndex, PutsAreWrittenAtCommit) {
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

TEST_F(SearchIndex, DeadGenerationsAreSkipped) {
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

TEST_F(SearchIndex, ReadmeIsEmbedded) {
  auto text = Index::readme();
  EXPECT_NE(text.find("limit:"), std::string_view::npos);
  EXPECT_NE(text.find("sort:date"), std::string_view::npos);
  EXPECT_NE(text.find(".suggest.json"), std::string_view::npos);
  EXPECT_NE(text.find(".facets.json"), std::string_view::npos);
}

TEST_F(SearchIndex, LargeAndOddItems) {
  // A big item: text past the cap is not indexed, nothing blows up.
  std::string big = R"({"title":"big one","content":")";
  for (int k = 0; k < 800000; ++k) big += "lorem ";
  big += R"(tailword"})";
  put_raw("big", big);
  EXPECT_EQ(ids("lorem"), V{"big"});
  EXPECT_TRUE(ids("tailword").empty());  // beyond the 4 MiB of text indexed
  // Deep nesting, escapes, numbers, top-level arrays and scalars.
  std::string deep;
  for (int k = 0; k < 200; ++k) deep += "[";
  deep += "\"deepword\"";
  for (int k = 0; k < 200; ++k) deep += "]";
  put_raw("deep", deep);
  put_raw("esc", R"({"title":"caf\u00e9 \ud83d\ude00 line\nbreak","n":42,"ok":true,"x":null})");
  put_raw("arr", R"(["arrayword", 1, {"k": "nestedword"}])");
  put_raw("num", "12345");
  EXPECT_EQ(ids("cafe"), V{"esc"});
  EXPECT_EQ(ids("n:42"), V{"esc"});
  EXPECT_EQ(ids("ok:true"), V{"esc"});
  EXPECT_EQ(ids("arrayword"), V{"arr"});
  EXPECT_EQ(ids("k:nestedword"), V{"arr"});
  EXPECT_TRUE(ids("deepword").empty());  // deeper than 64 levels: not indexed
  remove("big");
  remove("deep");
  EXPECT_TRUE(ids("lorem").empty());
  EXPECT_TRUE(index_->check().empty());
}

}  // namespace
