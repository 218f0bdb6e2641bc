// base/json_string: the JSON string writer that search results, backup
// manifests and backup status share writes exactly what nlohmann's dump()
// (with invalid UTF-8 replaced) writes, so that any bytes at all give valid
// JSON that reads back as the string (or, for invalid UTF-8, as the string
// with U+FFFD in place of each invalid sequence).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "base/json_string.h"
#include "base/utf8.h"

namespace itemfs::base {
namespace {

using json = nlohmann::json;

std::string ours(const std::string& s) {
  std::string out = "[";  // appends: what is there already stays
  append_json_string(out, s);
  return out.substr(1);
}

std::string nlohmanns(const std::string& s) { return json(s).dump(-1, ' ', false, json::error_handler_t::replace); }

TEST(JsonStringTest, EscapesAsNlohmannDoes) {
  EXPECT_EQ(ours(""), "\"\"");
  EXPECT_EQ(ours("plain"), "\"plain\"");
  EXPECT_EQ(ours("a \"quote\" and a \\"), "\"a \\\"quote\\\" and a \\\\\"");
  EXPECT_EQ(ours("\b\f\n\r\t"), "\"\\b\\f\\n\\r\\t\"");
  EXPECT_EQ(ours(std::string("\x01\x1f\0", 3)), "\"\\u0001\\u001f\\u0000\"");
  EXPECT_EQ(ours("del \x7f and /"), "\"del \x7f and /\"");  // neither needs escaping
  EXPECT_EQ(ours("caf\xc3\xa9 \xf0\x9f\x98\x80"), "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");
  EXPECT_EQ(ours("bad \xff byte"), "\"bad \xef\xbf\xbd byte\"");
  for (const std::string s : {"", "x\"y", "\x7f", "cut \xe6\x97", "surrogate \xed\xa0\x80", "\xc0\xaf overlong",
                              "lone \x80\x80 and \xc3", "too high \xf4\x90\x80\x80", "\t\x01 \xe6\x97\xa5"}) {
    EXPECT_EQ(ours(s), nlohmanns(s)) << testing::PrintToString(s);
  }
}

TEST(JsonStringTest, AnyBytesGiveValidJsonLikeNlohmann) {
  std::mt19937 rng(5);
  const std::string alphabet = "a \"\\\n\x01\x1f\x7f\x80\xbf\xc2\xc3\xdf\xe0\xed\xef\xf0\xf4\xf5\xff\xa0\x9f\x8f\x90";
  for (int round = 0; round < 5000; ++round) {
    std::string s;
    for (size_t n = rng() % 16; n > 0; --n) s += alphabet[rng() % alphabet.size()];
    const std::string out = ours(s);
    ASSERT_EQ(out, nlohmanns(s)) << testing::PrintToString(s);
    ASSERT_TRUE(json::accept(out)) << testing::PrintToString(s);
    // Valid UTF-8 reads back as it was; only invalid UTF-8 is replaced.
    if (is_valid_utf8(s)) {
      ASSERT_EQ(json::parse(out).get<std::string>(), s);
    }
  }
}

}  // namespace
}  // namespace itemfs::base
