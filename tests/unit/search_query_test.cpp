// Tests of the search internals: JSON text extraction, CJK splitting, dates,
// and the query compiler's output.
#include <gtest/gtest.h>

#include "search/extract.h"
#include "search/query.h"
#include "search/tokenize.h"

using namespace itemfs::search::detail;

TEST(SearchExtract, FieldsAndText) {
  auto x = extract(R"({"title":"Hello \"W\u00f6rld\"","content":"Body text.","url":"https://User@WWW.Example.COM:8080/a?b",
    "author":{"name":"Ann"},"tags":["t1","t2"],"metadata":{"lang":"pt_BR","n":3,"flag":false,"nil":null},
    "published_at":"2024-03-01T01:00:00+01:00","crawled_at":1700000000123,"other":"misc"})");
  EXPECT_EQ(x.title, "Hello \"Wörld\"");
  EXPECT_EQ(x.body.substr(0, x.main_size), "Body text.");
  EXPECT_NE(x.body.find("misc"), std::string::npos);
  EXPECT_NE(x.body.find("Ann"), std::string::npos);
  EXPECT_EQ(x.body.find("https"), std::string::npos);  // url is not text
  EXPECT_EQ(x.host, "www.example.com");
  EXPECT_EQ(x.author, "Ann");
  EXPECT_EQ(x.tags, (std::vector<std::string>{"t1", "t2"}));
  EXPECT_EQ(x.lang, "pt_br");
  EXPECT_EQ(x.published, days_from_civil(2024, 3, 1) * 86400);
  EXPECT_EQ(x.crawled, 1700000000);
  auto has = [&](const std::string& path, const std::string& value) {
    for (const auto& [p, v] : x.fields) {
      if (p == path && v == value) return true;
    }
    return false;
  };
  EXPECT_TRUE(has("metadata.n", "3"));
  EXPECT_TRUE(has("metadata.flag", "false"));
  EXPECT_FALSE(has("metadata.nil", "null"));
  EXPECT_TRUE(has("author.name", "Ann"));
  EXPECT_TRUE(has("tags", "t2"));
}

TEST(SearchExtract, ChunkBoundariesDoNotMatter) {
  const std::string doc =
      R"({"title":"caf\u00e9 \ud83d\ude00 x","content":"line\nbreak \\ \"q\"","a":[1,{"b":"deep"}],"n":-1.5e3})";
  auto whole = extract(doc);
  for (size_t step : {1, 2, 3, 7}) {
    Extractor x;
    for (size_t i = 0; i < doc.size(); i += step) x.feed(std::string_view(doc).substr(i, step));
    auto& part = x.result();
    EXPECT_EQ(part.title, whole.title) << step;
    EXPECT_EQ(part.body, whole.body) << step;
    EXPECT_EQ(part.fields, whole.fields) << step;
  }
  EXPECT_EQ(whole.title, "café \xF0\x9F\x98\x80 x");
  EXPECT_EQ(whole.body.substr(0, whole.main_size), "line\nbreak \\ \"q\"");
}

TEST(SearchExtract, CapsHold) {
  std::string words;
  for (int k = 0; k < 1250; ++k) words += "abc ";
  std::string doc = R"({"content":")" + words + R"(","x":"after"})";
  auto x = extract(doc, 1000);
  EXPECT_EQ(x.body.size(), 1000u);
  EXPECT_EQ(x.body.find("after"), std::string::npos);
  // A cut never splits a UTF-8 sequence.
  std::string utf = R"({"content":")";
  for (int k = 0; k < 600; ++k) utf += "é";
  utf += R"("})";
  auto y = extract(utf, 1001);
  EXPECT_EQ(y.body.size(), 1000u);
}

TEST(SearchExtract, DataStringsAreNotText) {
  const std::string blob(kMinDataRun + 1, 'Q');
  const std::string hex(kMinDataRun, 'f');  // not longer than the limit: text
  std::string cjk;
  while (cjk.size() <= kMinDataRun) cjk += "日本語";
  auto x = extract(R"({"content":"real words here","blob":")" + blob + R"(","hex":")" + hex +
                   R"(","ja":")" + cjk + R"(","b64":"QUJD+/=)" + blob + R"(","tail":"more words"})");
  EXPECT_EQ(x.body.find("QQQ"), std::string::npos) << x.body;
  EXPECT_NE(x.body.find(hex), std::string::npos);
  EXPECT_NE(x.body.find(cjk), std::string::npos);  // no spaces, but not ASCII
  EXPECT_NE(x.body.find("real words here"), std::string::npos);
  EXPECT_NE(x.body.find("more words"), std::string::npos);
  // Split anywhere, the decision is the same.
  const std::string doc = R"({"content":")" + blob + R"( x","d":")" + blob + R"("})";
  auto whole = extract(doc);
  EXPECT_NE(whole.body.find(blob + " x"), std::string::npos);  // has a space: text
  EXPECT_EQ(whole.body.find(blob, whole.body.find(blob) + 1), std::string::npos);  // "d" is data
  for (size_t step : {1, 5, 64}) {
    Extractor part;
    for (size_t i = 0; i < doc.size(); i += step) part.feed(std::string_view(doc).substr(i, step));
    EXPECT_EQ(part.result().body, whole.body) << step;
  }
  // A data string still fills a short field for field: filters.
  auto y = extract(R"({"sha":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"})");
  EXPECT_EQ(y.fields.size(), 1u);
}

// What a snippet reads early: at every byte, the main text so far is the
// start of the final one (a string that may still turn out to be data is
// left out until it is known), and collecting text only gives the same
// title and text.
TEST(SearchExtract, MainTextSoFarIsAlwaysItsStart) {
  const std::string blob(kMinDataRun + 1, 'Q');
  const std::string doc = R"({"title":"T é","content":"first words","other":"o","summary":")" + blob +
                          R"(","abstract":"late é text","description":")" + blob + R"( then text","x":1})";
  auto whole = extract(doc);
  const std::string final_main = whole.body.substr(0, whole.main_size);
  EXPECT_EQ(final_main, "first words\nlate é text\n" + blob + " then text");
  for (size_t step : {1, 3, 64}) {
    Extractor x;
    Extractor text(kMaxBodyText, Extractor::Collect::kText);
    for (size_t i = 0; i < doc.size(); i += step) {
      x.feed(std::string_view(doc).substr(i, step));
      text.feed(std::string_view(doc).substr(i, step));
      const std::string_view so_far = x.main_text_so_far();
      ASSERT_EQ(final_main.compare(0, so_far.size(), so_far), 0) << step << " at " << i << ": " << so_far;
      ASSERT_EQ(text.main_text_so_far(), so_far);
    }
    auto& all = x.result();
    auto& only_text = text.result();
    EXPECT_EQ(only_text.title, all.title);
    EXPECT_EQ(only_text.body, all.body);
    EXPECT_EQ(only_text.main_size, all.main_size);
    EXPECT_TRUE(only_text.fields.empty());
    EXPECT_FALSE(all.fields.empty());
  }
}

TEST(SearchMarkers, TextCannotHoldThem) {
  // U+E000..U+E00F start the index's own tokens: in text they are spaces.
  EXPECT_EQ(cjk_index_text("a" + std::string(kTitleMark) + "b"), "a b");
  EXPECT_EQ(cjk_index_text(std::string(kLengthMark) + "日本"), "  日本  本 ");
  EXPECT_EQ(cjk_index_text("\xEE\x80\x90x"), "\xEE\x80\x90x");  // U+E010 is not reserved
  bool single = false;
  EXPECT_EQ(cjk_query_text(std::string(kFieldMark) + "abc", &single), " abc");
  EXPECT_TRUE(is_marker(std::string(kTitleMark) + "word"));
  EXPECT_TRUE(is_marker(marker("@tag") + "x"));
  EXPECT_TRUE(is_marker(std::string(kLengthMark) + "a"));
  EXPECT_FALSE(is_marker("zz0123456789word"));
  EXPECT_FALSE(is_marker("word"));
  EXPECT_NE(marker("@tag"), marker("@author"));
  EXPECT_EQ(marker("@tag").size(), kFieldMark.size() + 10);
}

TEST(SearchCjk, Bigrams) {
  EXPECT_EQ(cjk_index_text("abc"), "abc");
  EXPECT_EQ(cjk_index_text("日本語"), " 日本  本語  語 ");
  EXPECT_EQ(cjk_index_text("東京iphone"), " 東京  京 iphone");
  bool single = false;
  EXPECT_EQ(cjk_query_text("日本語", &single), " 日本  本語 ");
  EXPECT_FALSE(single);
  EXPECT_EQ(cjk_query_text("本", &single), " 本 ");
  EXPECT_TRUE(single);
  EXPECT_EQ(cjk_query_text("東京iphone", &single), " 東京  京 iphone");
  EXPECT_FALSE(single);
  EXPECT_TRUE(is_cjk(0x4E2D));   // 中
  EXPECT_TRUE(is_cjk(0xD55C));   // 한
  EXPECT_TRUE(is_cjk(0x30AB));   // カ
  EXPECT_FALSE(is_cjk(0x30FB));  // ・ is punctuation
  EXPECT_FALSE(is_cjk('a'));
}

TEST(SearchDates, Parse) {
  const int64_t day = days_from_civil(2024, 3, 1) * 86400;
  EXPECT_EQ(parse_date("2024-03-01"), day);
  EXPECT_EQ(parse_date("2024-03-01T00:00:00Z"), day);
  EXPECT_EQ(parse_date("2024-03-01T02:00:00+02:00"), day);
  EXPECT_EQ(parse_date("2024-03-01 01:00:00.123-01:00"), day + 7200);
  EXPECT_EQ(parse_date("2024-03"), day);
  EXPECT_EQ(parse_date("2024"), days_from_civil(2024, 1, 1) * 86400);
  EXPECT_EQ(parse_date("1709251200"), 1709251200);
  EXPECT_EQ(parse_date("1709251200000"), 1709251200);
  EXPECT_EQ(year_of(day), 2024);
  EXPECT_EQ(year_of(-1), 1969);
  for (const char* bad : {"", "yesterday", "2024-13-01", "2024-02-32", "24", "2024-03-01T25:00", "2024-03-01Tx"}) {
    EXPECT_FALSE(parse_date(bad).has_value()) << bad;
  }
}

TEST(SearchHost, FromUrl) {
  EXPECT_EQ(host_of_url("https://www.Example.com/x"), "www.example.com");
  EXPECT_EQ(host_of_url("http://u:p@h.org:80"), "h.org");
  EXPECT_EQ(host_of_url("//cdn.net/a"), "cdn.net");
  EXPECT_EQ(host_of_url("example.com/x"), "");
  EXPECT_EQ(host_of_url("https://example.com./"), "example.com");
}

TEST(SearchQuery, IdentifiersReachTheIndexAsTheirBuckets) {
  EXPECT_TRUE(is_identifier("b15ec588ce9b49e9"));
  EXPECT_TRUE(is_identifier("0123456789ab"));
  for (const char* word : {"internationalization", "123456789012", "b15ec588ce9", "b15ec588ce9b49e\xC3\xA9"}) {
    EXPECT_FALSE(is_identifier(word)) << word;
  }
  EXPECT_EQ(bucket_of("b15ec588ce9b49e9"), std::string(kBucketMark) + "b15");
  EXPECT_EQ(bucket_end_of("b15ec588ce9b49e9"), std::string(kBucketEndMark) + "9e9");
  Fts5Library lib;
  Tokenizer tok(lib);
  const std::string b(kBucketMark), e(kBucketEndMark);
  Query q;
  ASSERT_TRUE(parse_query("B15EC588CE9B49E9", tok, q).ok());
  EXPECT_EQ(q.positive, "((\"" + b + "b15\" AND \"" + e + "9e9\"))");
  EXPECT_TRUE(q.exact);  // the buckets' items are checked
  ASSERT_TRUE(parse_query("id:b15ec588ce9b49e9", tok, q).ok());
  const std::string id = marker("p:id");
  EXPECT_EQ(q.positive, "((\"" + id + b + "b15\" AND \"" + id + e + "9e9\"))");
  ASSERT_TRUE(parse_query("title:b15ec588ce9b49e9", tok, q).ok());
  const std::string t(kTitleMark);
  EXPECT_EQ(q.positive, "((\"" + t + b + "b15\" AND \"" + t + e + "9e9\"))");
  ASSERT_TRUE(parse_query("id:b15ec5*", tok, q).ok());
  EXPECT_EQ(q.positive, "((\"" + id + "b15ec5\" * OR \"" + id + b + "b15\"))");
  ASSERT_TRUE(parse_query("id:b1*", tok, q).ok());
  EXPECT_EQ(q.positive, "((\"" + marker("p:id") + "b1\" * OR \"" + marker("p:id") + b + "b1\" *))");
  // The index cannot exclude a bucket: the check does. A prefix's words it
  // can.
  ASSERT_TRUE(parse_query("solar -b15ec588ce9b49e9", tok, q).ok());
  EXPECT_EQ(q.negative, "");
  EXPECT_TRUE(q.exact);
  ASSERT_TRUE(parse_query("solar -pane*", tok, q).ok());
  EXPECT_EQ(q.negative, "\"pane\" *");
  ASSERT_TRUE(parse_query("solar -content:pane*", tok, q).ok());
  EXPECT_EQ(q.negative, "(\"pane\" * NOT \"" + t + "pane\" *)");
  // A prefix no longer than a bucket is certain in the rows with a bucket
  // it starts: nothing to check.
  ASSERT_TRUE(parse_query("solar -pan*", tok, q).ok());
  EXPECT_EQ(q.negative, "(\"pan\" * OR \"" + b + "pan\")");
  EXPECT_FALSE(q.exact);
  ASSERT_TRUE(parse_query("b1*", tok, q).ok());
  EXPECT_FALSE(q.exact);
  for (const char* word : {"internationalization", "123456789012", "b15ec588ce9", "host:b15ec588ce9b49e9.com"}) {
    ASSERT_TRUE(parse_query(word, tok, q).ok()) << word;
    EXPECT_FALSE(q.exact) << word;
  }
}

TEST(SearchQuery, CompilesToQuotedTokens) {
  Fts5Library lib;
  Tokenizer tok(lib);
  Query q;
  ASSERT_TRUE(parse_query("Solar -Wind \"a b\"* title:Café limit:5 sort:date", tok, q).ok());
  // A phrase reaches the index as its words (no positions are kept) and
  // each candidate is checked word for word; title: looks for the title's
  // own tokens (kTitleMark + word).
  // A prefix may also start an identifier, which the index holds as its
  // bucket (kBucketMark + its first characters).
  EXPECT_EQ(q.positive, std::string(R"(("solar") AND (("a" AND ("b" * OR ")") + std::string(kBucketMark) +
                            R"(b" *))) AND (")" + std::string(kTitleMark) + R"(cafe"))");
  EXPECT_EQ(q.negative, R"("wind")");
  EXPECT_TRUE(q.exact);
  EXPECT_EQ(q.limit, 5u);
  EXPECT_TRUE(q.sort_date);
  ASSERT_TRUE(parse_query("x OR y z", tok, q).ok());
  EXPECT_EQ(q.positive, R"(("x" OR "y") AND ("z"))");
  EXPECT_FALSE(q.exact);  // single words: the index answers alone
  ASSERT_TRUE(parse_query("title:x -title:y", tok, q).ok());
  EXPECT_FALSE(q.exact);
  EXPECT_EQ(q.negative, std::string("\"") + std::string(kTitleMark) + "y\"");
  // The index cannot tell the body from the title: content: is checked.
  ASSERT_TRUE(parse_query("content:x", tok, q).ok());
  EXPECT_EQ(q.positive, R"(("x"))");
  EXPECT_TRUE(q.exact);
  ASSERT_TRUE(parse_query("x -content:y", tok, q).ok());
  EXPECT_EQ(q.negative, "(\"y\" NOT \"" + std::string(kTitleMark) + "y\")");  // the rest is checked
  EXPECT_EQ(q.none.size(), 1u);
  EXPECT_TRUE(q.exact);
  // Field words carry the field's marker.
  ASSERT_TRUE(parse_query("author:Smith", tok, q).ok());
  EXPECT_EQ(q.positive, "(\"" + marker("@author") + "smith\")");
  EXPECT_FALSE(q.exact);
  // FTS5 syntax typed by a user stays inside quotes as plain tokens.
  ASSERT_TRUE(parse_query("NEAR(a) {b}:c d^ e+f", tok, q).code == EINVAL);  // NEAR(a) ends with ')'
  ASSERT_TRUE(parse_query("{b}:c d^ e+f", tok, q).ok());
  EXPECT_EQ(q.positive, R"((("b" AND "c")) AND ("d") AND (("e" AND "f")))");
  // The index's marker characters typed in a query are not words.
  ASSERT_TRUE(parse_query(std::string(kTitleMark) + "x " + std::string(kFieldMark) + "y", tok, q).ok());
  EXPECT_EQ(q.positive, R"(("x") AND ("y"))");
  ASSERT_TRUE(parse_query("after:2024", tok, q).ok());
  EXPECT_TRUE(q.positive.empty());
  EXPECT_EQ(q.after, days_from_civil(2024, 1, 1) * 86400);
}

// The message of a query parse_query() must refuse with EINVAL.
std::string refusal(const std::string& text) {
  static const Fts5Library lib;
  Tokenizer tok(lib);
  Query q;
  auto st = parse_query(text, tok, q);
  EXPECT_EQ(st.code, EINVAL) << text;
  return st.message;
}

TEST(SearchQuery, ErrorsNameTheProblem) {
  const auto msg = refusal;
  EXPECT_NE(msg("a \"b").find("unbalanced quote"), std::string::npos);
  EXPECT_NE(msg("").find("empty"), std::string::npos);
  EXPECT_NE(msg("a NEAR b").find("unknown operator NEAR"), std::string::npos);
  EXPECT_NE(msg("sort:x").find("sort:"), std::string::npos);
  EXPECT_NE(msg("-a").find("only excludes"), std::string::npos);
  EXPECT_NE(msg("a OR").find("OR needs"), std::string::npos);
  EXPECT_NE(msg("limit:0").find("limit:"), std::string::npos);
  EXPECT_NE(msg(std::string(5000, 'a')).find("4096"), std::string::npos);
}

// A misplaced '*' is named where it stands, in characters (code points) a
// person counts, not at the start of its word nor in bytes.
TEST(SearchQuery, ErrorPositionsPointAtTheCharacter) {
  const auto msg = refusal;
  EXPECT_EQ(msg("solar pa*nel"), "'*' at character 9 is only allowed at the end of a word (prefix*)");
  EXPECT_EQ(msg("solar *"), "'*' at character 7 is only allowed at the end of a word (prefix*)");
  EXPECT_EQ(msg("a -b*c"), "'*' at character 5 is only allowed at the end of a word (prefix*)");
  EXPECT_EQ(msg("title:ab*cd"), "'*' at character 9 is only allowed at the end of a word (prefix*)");
  EXPECT_EQ(msg("title:*"), "'*' at character 7 is only allowed at the end of a word (prefix*)");
  // "größe " is 6 characters and 8 bytes.
  EXPECT_EQ(msg("größe a*b"), "'*' at character 8 is only allowed at the end of a word (prefix*)");
  EXPECT_NE(msg("größe \"open").find("opened at character 7"), std::string::npos);
}

// A query is a directory name, which cannot hold '/': %2F (or %2f) stands
// for it and %25 for '%'; nothing else is decoded.
TEST(SearchQuery, PercentTwoFIsASlash) {
  Fts5Library lib;
  Tokenizer tok(lib);
  Query slash, encoded, lower;
  ASSERT_TRUE(parse_query("url:example.com/docs/intro solar", tok, slash).ok());
  ASSERT_TRUE(parse_query("url:example.com%2Fdocs%2Fintro solar", tok, encoded).ok());
  ASSERT_TRUE(parse_query("url:example.com%2fdocs%2fintro solar", tok, lower).ok());
  EXPECT_EQ(slash.match(), encoded.match());
  EXPECT_EQ(slash.match(), lower.match());
  Query percent, plain;
  ASSERT_TRUE(parse_query("title:100%25", tok, percent).ok());
  ASSERT_TRUE(parse_query("title:100%", tok, plain).ok());
  EXPECT_EQ(percent.match(), plain.match());
  Query other, other_plain;
  ASSERT_TRUE(parse_query("a%41b", tok, other).ok());  // %41 is not decoded: "a", "41b"
  ASSERT_TRUE(parse_query("a%41b", tok, other_plain).ok());
  EXPECT_EQ(other.match(), other_plain.match());
  EXPECT_NE(other.match().find("41b"), std::string::npos) << other.match();
}

// Positions count the characters as typed, %2F as three.
TEST(SearchQuery, ErrorPositionsCountTheTypedText) {
  Fts5Library lib;
  Tokenizer tok(lib);
  Query q;
  auto st = parse_query("url:a%2Fb pa*nel", tok, q);
  EXPECT_EQ(st.message, "'*' at character 13 is only allowed at the end of a word (prefix*)");
}
