// Tests of what search::Index answers besides hits: snippets (densest
// passage, main text first, long items, two threads), the results as JSON,
// suggestions and facets (shared and swept facet values).
#include <gtest/gtest.h>

#include "search_index_fixture.h"

namespace {

// The shared fixture, as its own test suite.
class SearchResults : public SearchIndex {};

TEST_F(SearchResults, Snippets) {
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
TEST_F(SearchResults, SnippetsLookForTheDensestRunNearTheFirstMatch) {
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
TEST_F(SearchResults, RunWithoutSnippetsFindsTheSameHits) {
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

TEST_F(SearchResults, SnippetsWhenTheMainTextHasNoMatch) {
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
TEST_F(SearchResults, SnippetsOfLongItemsAreTheSameAsFromTheirWholeText) {
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
TEST_F(SearchResults, SnippetsOfManyHitsAreTheSameOnTwoThreads) {
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

TEST_F(SearchResults, ToJsonParses) {
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

TEST_F(SearchResults, SuggestAndFacets) {
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
TEST_F(SearchResults, FacetValuesAreSharedAndSwept) {
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
TEST_F(SearchResults, FacetValuesAreSweptAsItemsChange) {
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

}  // namespace
