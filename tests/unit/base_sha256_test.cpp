// base/sha256: the SHA-256 every part names content by gives the digests of
// FIPS 180-2's examples, whether the bytes come in one piece or many, a
// hasher starts afresh after finish(), and hex is written and read back
// (exactly 64 digits, either case, nothing else).
#include <gtest/gtest.h>

#include <string>

#include "base/sha256.h"

namespace itemfs::base {
namespace {

constexpr const char* kAbc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr const char* kEmpty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr const char* kTwoBlocks = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";

TEST(Sha256Test, KnownDigests) {
  EXPECT_EQ(to_hex(sha256_of("abc")), kAbc);
  EXPECT_EQ(to_hex(sha256_of("")), kEmpty);
  EXPECT_EQ(to_hex(sha256_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")), kTwoBlocks);
}

TEST(Sha256Test, PiecesGiveTheDigestOfTheWholeAndFinishStartsAfresh) {
  const std::string text = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  Sha256Hasher h;
  for (size_t at = 0; at < text.size(); at += 7) h.update(text.substr(at, 7));
  EXPECT_EQ(to_hex(h.finish()), kTwoBlocks);
  h.update("a", 1);
  h.update(std::string_view("bc"));
  EXPECT_EQ(to_hex(h.finish()), kAbc);
  EXPECT_EQ(to_hex(h.finish()), kEmpty);
}

TEST(Sha256Test, HexRoundTripsAndRefusesAnythingElse) {
  const Sha256 digest = sha256_of("abc");
  Sha256 back{};
  ASSERT_TRUE(parse_sha256_hex(kAbc, back));
  EXPECT_EQ(back, digest);
  std::string upper = kAbc;
  for (char& c : upper) c = char(toupper(c));
  ASSERT_TRUE(parse_sha256_hex(upper, back));
  EXPECT_EQ(back, digest);
  const std::string good = kAbc;
  EXPECT_FALSE(parse_sha256_hex(good.substr(0, 63), back));
  EXPECT_FALSE(parse_sha256_hex(good + "0", back));
  for (char bad : {'g', 'G', ' ', '-', 'x', '\0'}) {
    std::string s = good;
    s[17] = bad;
    EXPECT_FALSE(parse_sha256_hex(s, back)) << bad;
  }
  std::string out = "id=";
  append_hex(out, digest.data(), 2);
  EXPECT_EQ(out, "id=ba78");
  EXPECT_EQ(hex(digest.data(), 0), "");
}

}  // namespace
}  // namespace itemfs::base
