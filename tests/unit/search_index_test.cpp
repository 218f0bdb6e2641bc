// Tests of search::Index queries against a real store: matching (all words,
// OR, exclusions, phrases, prefixes, fields, dates, identifiers, Unicode),
// ranking by title, rarity and length, bad and hostile queries.
#include <gtest/gtest.h>

#include "search_index_fixture.h"

namespace {

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
