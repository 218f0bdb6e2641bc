// Full case folding in search: ß and ẞ match ss (Straße finds STRASSE and
// the reverse), the Latin ligatures ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ match their letters, in
// the index, in queries (words, phrases, prefixes, fields) and in snippets;
// nothing else changes.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>

#include "search/extract.h"
#include "search/fold.h"
#include "search/search.h"
#include "search/tokenize.h"
#include "store/store.h"
#include "tests/unit/temp_dir.h"

using namespace itemfs::search::detail;

TEST(SearchFold, FoldsOnlyTheLettersUnicode61Keeps) {
  EXPECT_EQ(fold_full_case("Straße GROẞE"), "Strasse GROssE");
  EXPECT_EQ(fold_full_case("\xEF\xAC\x81nd \xEF\xAC\x82ow o\xEF\xAC\x80" "er \xEF\xAC\x83x \xEF\xAC\x84y \xEF\xAC\x85 \xEF\xAC\x86"),
            "find flow offer ffix ffly st st");
  EXPECT_EQ(fold_full_case("\xC5\x89"), "\xCA\xBCn");
  for (const char* same : {"", "plain ascii", "café Zürich", "日本語", "ΣΊΣΥΦΟΣ", "\xC3", "\xEF\xAC", "\xE1\xBA"}) {
    EXPECT_FALSE(needs_full_fold(same)) << same;
    EXPECT_EQ(fold_full_case(same), same);
  }
  EXPECT_TRUE(needs_full_fold("x ß"));
}

TEST(SearchFold, TokensAreFoldedAtTheirOwnOffsets) {
  Fts5Library lib;
  Tokenizer tok(lib);
  std::vector<std::tuple<std::string, size_t, size_t>> got;
  const std::string text = "Die Straße, GROẞE \xEF\xAC\x81nd!";
  tok.tokenize(text, [&](std::string_view t, size_t a, size_t b) { got.emplace_back(std::string(t), a, b); });
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(std::get<0>(got[1]), "strasse");
  EXPECT_EQ(text.substr(std::get<1>(got[1]), std::get<2>(got[1]) - std::get<1>(got[1])), "Straße");
  EXPECT_EQ(std::get<0>(got[2]), "grosse");
  EXPECT_EQ(std::get<0>(got[3]), "find");
}

namespace {

class SearchFoldIndex : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = itemfs::store::Store::open(dir_.path());
    index_ = std::make_unique<itemfs::search::Index>(*store_);
  }
  void put(const std::string& id, const nlohmann::json& doc) {
    store_->write([&](itemfs::store::WriteBatch& b) {
      std::istringstream in(doc.dump());
      ASSERT_TRUE(b.put(id, in, {}).ok());
    });
  }
  itemfs::search::Results search(const std::string& q) {
    itemfs::search::Results r;
    auto st = index_->run(q, r);
    EXPECT_TRUE(st.ok()) << q << ": " << st.message;
    return r;
  }
  std::vector<std::string> ids(const std::string& q) {
    std::vector<std::string> out;
    for (const auto& h : search(q).hits) out.push_back(h.id);
    std::sort(out.begin(), out.end());
    return out;
  }
  TempDir dir_;
  std::unique_ptr<itemfs::store::Store> store_;
  std::unique_ptr<itemfs::search::Index> index_;
};

}  // namespace

TEST_F(SearchFoldIndex, SharpSAndLigaturesMatchTheirFolding) {
  using V = std::vector<std::string>;
  put("de", {{"title", "Die Straße"}, {"content", "eine große Stadt"}, {"author", "Weiß"}});
  put("en", {{"title", "STRASSE is a word"}, {"content", "the GROSSE one"}});
  put("lig", {{"title", "How to \xEF\xAC\x81nd things"}, {"content", "an o\xEF\xAC\x80" "er"}});
  put("plain", {{"title", "find the offer"}, {"content", "nothing else"}});
  EXPECT_EQ(ids("straße"), (V{"de", "en"}));
  EXPECT_EQ(ids("STRASSE"), (V{"de", "en"}));
  EXPECT_EQ(ids("strasse"), (V{"de", "en"}));
  EXPECT_EQ(ids("GROẞE"), (V{"de", "en"}));
  EXPECT_EQ(ids("title:strasse"), (V{"de", "en"}));
  EXPECT_EQ(ids("\"die strasse\""), (V{"de"}));
  EXPECT_EQ(ids("stra*"), (V{"de", "en"}));
  EXPECT_EQ(ids("author:weiss"), (V{"de"}));
  EXPECT_EQ(ids("find"), (V{"lig", "plain"}));
  EXPECT_EQ(ids("\xEF\xAC\x81nd"), (V{"lig", "plain"}));
  EXPECT_EQ(ids("offer"), (V{"lig", "plain"}));
  // The snippet marks the word as the item wrote it.
  auto r = search("grosse");
  bool marked = false;
  for (const auto& h : r.hits)
    if (h.id == "de") marked = h.snippet.find("[große]") != std::string::npos;
  EXPECT_TRUE(marked);
}
