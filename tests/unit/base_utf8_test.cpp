// base/utf8: the one UTF-8 check and decoder that ids, the search's text
// extraction and JSON writer and the backup manifest's parser share. It must
// accept exactly what nlohmann's lexer accepts in a string, or `.json` output
// and manifests would differ from what nlohmann writes and reads; decoding
// gives back every code point that was encoded, and U+FFFD, one byte at a
// time, for anything invalid.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "base/utf8.h"

namespace itemfs::base {
namespace {

bool nlohmann_accepts(const std::string& s) { return nlohmann::json::accept("\"" + s + "\""); }

TEST(Utf8Test, BoundariesOfRfc3629) {
  const std::pair<std::string, bool> cases[] = {
      {"", true},
      {"plain", true},
      {"\x7f", true},
      {"\xc2\x80", true},          // U+0080, the first two-byte form
      {"\xc1\xbf", false},         // overlong
      {"\xdf\xbf", true},          // U+07FF
      {"\xe0\xa0\x80", true},      // U+0800
      {"\xe0\x9f\xbf", false},     // overlong
      {"\xed\x9f\xbf", true},      // U+D7FF
      {"\xed\xa0\x80", false},     // a surrogate
      {"\xee\x80\x80", true},      // U+E000
      {"\xef\xbf\xbf", true},      // U+FFFF
      {"\xf0\x90\x80\x80", true},  // U+10000
      {"\xf0\x8f\xbf\xbf", false}, // overlong
      {"\xf4\x8f\xbf\xbf", true},  // U+10FFFF
      {"\xf4\x90\x80\x80", false}, // above U+10FFFF
      {"\xf5\x80\x80\x80", false},
      {"\x80", false},             // a continuation byte alone
      {"\xe6\x97\xa5", true},      // 日
      {"\xe6\x97", false},         // cut short
      {"a\xe6\x97", false},
      {"\xe6\x97x", false},
  };
  for (const auto& [s, valid] : cases) {
    EXPECT_EQ(is_valid_utf8(s), valid) << testing::PrintToString(s);
    EXPECT_EQ(nlohmann_accepts(s), valid) << testing::PrintToString(s);
    const bool one_sequence = !s.empty() && s.size() <= 4 && (s.size() == 1 || uint8_t(s[0]) >= 0x80);
    if (one_sequence) {
      EXPECT_EQ(utf8_length(s, 0) == s.size(), valid) << testing::PrintToString(s);
    }
  }
}

TEST(Utf8Test, AgreesWithNlohmannOnRandomBytes) {
  std::mt19937 rng(11);
  // Bytes a JSON string may hold unescaped, weighted towards lead and
  // continuation bytes so that most strings are near the edge.
  auto next_byte = [&]() -> char {
    switch (rng() % 4) {
      case 0: return char(0x20 + rng() % 0x5f);
      case 1: return char(0x80 + rng() % 0x40);
      case 2: return char(0xc0 + rng() % 0x40);
      default: return char(0xe0 + rng() % 0x20);
    }
  };
  int valid = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string s;
    for (size_t n = 1 + rng() % 8; n > 0; --n) {
      char c = next_byte();
      if (c == '"' || c == '\\') c = 'x';
      s += c;
    }
    const bool ours = is_valid_utf8(s);
    ASSERT_EQ(ours, nlohmann_accepts(s)) << testing::PrintToString(s);
    valid += ours;
  }
  EXPECT_GT(valid, 1000);  // both answers were met often
  EXPECT_LT(valid, 19000);
}

TEST(Utf8Test, DecodesEveryCodePointItEncodes) {
  for (uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (cp == 0xD800) cp = 0xE000;  // surrogates are no code points of UTF-8
    std::string s;
    append_utf8(s, cp);
    s += 'x';
    size_t i = 0;
    ASSERT_EQ(next_code_point(s, i), cp);
    ASSERT_EQ(i, s.size() - 1) << cp;
    ASSERT_EQ(utf8_length(s, 0), s.size() - 1) << cp;
  }
}

TEST(Utf8Test, InvalidBytesDecodeToReplacementOneByteAtATime) {
  // Each input is decoded to the end; every byte of an invalid sequence is a
  // U+FFFD of its own, and the valid text after it is found again.
  const std::pair<std::string, std::vector<uint32_t>> cases[] = {
      {"\xc1\xbf" "a", {0xFFFD, 0xFFFD, 'a'}},                 // overlong
      {"\xe0\x9f\xbf", {0xFFFD, 0xFFFD, 0xFFFD}},              // overlong
      {"\xed\xa0\x80", {0xFFFD, 0xFFFD, 0xFFFD}},              // a surrogate
      {"\xf4\x90\x80\x80", {0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD}},  // above U+10FFFF
      {"\xf8\x88\x80\x80\x80", {0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD}},
      {"\xe6\x97", {0xFFFD, 0xFFFD}},                          // cut short
      {"\xe6\x97" "\xe6\x97\xa5", {0xFFFD, 0xFFFD, 0x65E5}},   // cut short, then a whole one
      {"\x80" "b", {0xFFFD, 'b'}},                             // a continuation byte alone
      {"\xc3\xa9\xff", {0xE9, 0xFFFD}},
  };
  for (const auto& [s, want] : cases) {
    std::vector<uint32_t> got;
    for (size_t i = 0; i < s.size();) got.push_back(next_code_point(s, i));
    EXPECT_EQ(got, want) << testing::PrintToString(s);
  }
}

TEST(Utf8Test, AppendWritesReplacementForNonCodePoints) {
  for (uint32_t cp : {0xD800u, 0xDFFFu, 0x110000u, 0xFFFFFFFFu}) {
    std::string s;
    append_utf8(s, cp);
    EXPECT_EQ(s, "\xef\xbf\xbd") << cp;
  }
}

TEST(Utf8Test, PrefixNeverCutsASequence) {
  const std::string s = "a\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80";  // 1, 2, 3 and 4 bytes
  const std::vector<size_t> kept = {0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10, 10};
  for (size_t n = 0; n < kept.size(); ++n) {
    EXPECT_EQ(utf8_prefix(s, n).size(), kept[n]) << n;
    EXPECT_TRUE(is_valid_utf8(utf8_prefix(s, n))) << n;
  }
}

}  // namespace
}  // namespace itemfs::base
