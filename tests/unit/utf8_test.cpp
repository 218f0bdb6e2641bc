// store/utf8: the one UTF-8 check that ids, the search's JSON writer and the
// backup manifest's parser share. It must accept exactly what nlohmann's
// lexer accepts in a string, or `.json` output and manifests would differ
// from what nlohmann writes and reads.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <cstdint>
#include <random>
#include <string>

#include "store/utf8.h"

namespace itemfs::store {
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

}  // namespace
}  // namespace itemfs::store
