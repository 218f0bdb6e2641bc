// The tokenizer's own splitting of ASCII runs must give exactly what
// unicode61 gives: the same tokens, folded the same, at the same offsets.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "search/tokenize.h"

using itemfs::search::detail::Fts5Library;
using itemfs::search::detail::Tokenizer;

namespace {

std::vector<std::tuple<std::string, size_t, size_t>> fast_tokens(Tokenizer& tok, std::string_view text) {
  std::vector<std::tuple<std::string, size_t, size_t>> out;
  tok.tokenize(text, [&](std::string_view t, size_t a, size_t b) { out.emplace_back(std::string(t), a, b); });
  return out;
}

}  // namespace

TEST(SearchTokenize, AgreesWithUnicode61) {
  Fts5Library lib;
  Tokenizer tok(lib);
  const std::vector<std::string> texts = {
      "",
      "Hello, World! 42 x",
      "  leading and trailing  ",
      "Café ZÜRICH naïve résumé CAFÉ",
      "e-mail foo_bar a.b/c:d 3.14 x²y ½ Ⅻ",
      "mixed: abcé déf ghi\u00A0jkl\u2014mno\u3000pqr",
      "日本語の文章 and 한국어를 mixed with ASCII",
      "\xEE\x80\x80title \xEE\x80\x81" "abc marks",
      "bad utf-8 \xC3 then \xFF\xFE ok",
      "ﬁnance Straße İstanbul ΣΊΣΥΦΟΣ",
      std::string(5000, 'A') + " tail",
  };
  for (const auto& t : texts) EXPECT_EQ(fast_tokens(tok, t), tok.unicode61_tokens(t)) << t;

  // Random mixtures of ASCII, punctuation and multi-byte characters.
  const std::vector<std::string> pieces = {"a", "Z", "7", " ", ".", "-", "_", "\n", "é", "É", "ß", "日", "本",
                                           "\u00A0", "\u2014", "ﬁ", "\xC3", "'", "\"", "Ω"};
  std::mt19937 rng(7);
  for (int k = 0; k < 2000; ++k) {
    std::string t;
    const int len = int(rng() % 40);
    for (int i = 0; i < len; ++i) t += pieces[rng() % pieces.size()];
    ASSERT_EQ(fast_tokens(tok, t), tok.unicode61_tokens(t)) << t;
  }
}

TEST(SearchTokenize, StopsWhenAsked) {
  Fts5Library lib;
  Tokenizer tok(lib);
  for (const std::string text : {"one two three four", "one twö three four", "oné twö thrée four"}) {
    std::vector<std::string> seen;
    tok.tokenize_until(text, [&](std::string_view t, size_t, size_t) {
      seen.emplace_back(t);
      return seen.size() < 2;
    });
    EXPECT_EQ(seen, (std::vector<std::string>{"one", "two"})) << text;
  }
}
