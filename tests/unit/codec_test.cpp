// store/codec: zlib streams with and without a preset dictionary, read back
// by decompress(), which parses the zlib framing itself.
#include "store/codec.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <string>
#include <vector>

namespace itemfs::store {
namespace {

std::string text(size_t n, unsigned seed) {
  std::string s;
  const char* words[] = {"{\"title\": ", "\"solar panel\", ", "\"body\": ", "lorem ", "ipsum ", "dolor ", "42, ", "}\n"};
  while (s.size() < n) {
    seed = seed * 1103515245 + 12345;
    s += words[(seed >> 16) % 8];
  }
  s.resize(n);
  return s;
}

std::string dict(unsigned seed) { return text(32 * 1024, seed); }

TEST(Codec, RoundTripsWithAndWithoutDictionaries) {
  Compressor c(6);
  std::vector<std::string> dicts = {dict(1), dict(2), dict(3)};
  dicts.push_back(dicts[0]);
  dicts[3][100] ^= 1;  // the same size, other bytes: another dictionary
  for (int round = 0; round < 3; ++round) {
    for (size_t d = 0; d <= dicts.size(); ++d) {
      std::string_view dv = d < dicts.size() ? std::string_view(dicts[d]) : std::string_view();
      std::string raw = text(500 + 1000 * d + round, unsigned(d * 7 + round)), stored, back;
      ASSERT_EQ(c.compress(raw, dv, stored), Codec::kZlib);
      ASSERT_TRUE(decompress(stored, dv, raw.size(), back)) << d;
      EXPECT_EQ(back, raw);
    }
  }
}

TEST(Codec, RefusesTheWrongDictionaryAndDamage) {
  Compressor c(6);
  std::string d1 = dict(1), d2 = d1, raw = text(4000, 9), stored, back;
  d2[d2.size() - 1] ^= 1;
  ASSERT_EQ(c.compress(raw, d1, stored), Codec::kZlib);
  EXPECT_FALSE(decompress(stored, d2, raw.size(), back));
  EXPECT_FALSE(decompress(stored, "", raw.size(), back));
  EXPECT_TRUE(decompress(stored, d1, raw.size(), back));
  EXPECT_FALSE(decompress(stored, d1, raw.size() + 1, back));
  EXPECT_FALSE(decompress(stored, d1, raw.size() - 1, back));
  for (size_t at : {size_t(0), size_t(1), size_t(3), stored.size() / 2, stored.size() - 1}) {
    std::string bad = stored;
    bad[at] ^= 0x10;
    EXPECT_FALSE(decompress(bad, d1, raw.size(), back)) << at;
  }
  EXPECT_FALSE(decompress(std::string_view(stored).substr(0, stored.size() - 1), d1, raw.size(), back));
  EXPECT_FALSE(decompress(stored + "x", d1, raw.size(), back));
  EXPECT_FALSE(decompress("", d1, 0, back));
  EXPECT_TRUE(decompress(stored, d1, raw.size(), back));
  EXPECT_EQ(back, raw);
}

TEST(Codec, ADictionaryChangedAtTheSameAddressIsReadAnew) {
  // Dictionary ids are remembered by address: another dictionary in the
  // same buffer must neither be refused nor stand in for the old one.
  Compressor c(6);
  std::string d = dict(4), raw = text(3000, 11), first, second, back;
  ASSERT_EQ(c.compress(raw, d, first), Codec::kZlib);
  ASSERT_TRUE(decompress(first, d, raw.size(), back));
  const char* at = d.data();
  for (size_t i = 0; i < d.size(); i += 7) d[i] = d[i] == 'x' ? 'y' : 'x';
  ASSERT_EQ(d.data(), at);
  ASSERT_EQ(c.compress(raw, d, second), Codec::kZlib);
  ASSERT_TRUE(decompress(second, d, raw.size(), back));
  EXPECT_EQ(back, raw);
  EXPECT_FALSE(decompress(first, d, raw.size(), back));
}

TEST(Codec, InflatesAPieceAtATimeAndStopsWhenTold) {
  Compressor c(6);
  const std::string d = dict(5);
  const std::string raw = text(100000, 9);
  std::string stored, out;
  ASSERT_EQ(c.compress(raw, d, stored), Codec::kZlib);
  std::vector<std::string> pieces;
  auto keep = [&](std::string_view p) {
    pieces.emplace_back(p);
    return true;
  };
  ASSERT_TRUE(decompress_pieces(stored, d, raw.size(), out, 4096, true, keep));
  ASSERT_EQ(pieces.size(), 5u);  // 4, 8, 16, 32 KiB and the rest
  for (size_t k = 0; k + 1 < pieces.size(); ++k) EXPECT_EQ(pieces[k].size(), size_t(4096) << k);
  std::string joined;
  for (const auto& p : pieces) joined += p;
  EXPECT_EQ(joined, raw);
  // Stopped after two pieces: nothing more is given.
  pieces.clear();
  ASSERT_TRUE(decompress_pieces(stored, d, raw.size(), out, 4096, true, [&](std::string_view p) {
    pieces.emplace_back(p);
    return pieces.size() < 2;
  }));
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[0] + pieces[1], raw.substr(0, 3 * 4096));
  // A wrong checksum: found when verifying a whole read, not otherwise.
  std::string bad = stored;
  bad.back() ^= 1;
  EXPECT_FALSE(decompress_pieces(bad, d, raw.size(), out, 4096, true, keep));
  EXPECT_TRUE(decompress_pieces(bad, d, raw.size(), out, 4096, false, keep));
  EXPECT_FALSE(decompress(bad, d, raw.size(), out));
  // The wrong size or a cut stream: damage, with or without verifying.
  for (bool verify : {true, false}) {
    EXPECT_FALSE(decompress_pieces(stored, d, raw.size() + 1, out, 4096, verify, keep));
    EXPECT_FALSE(decompress_pieces(stored, d, raw.size() - 1, out, 4096, verify, keep));
    EXPECT_FALSE(decompress_pieces(stored.substr(0, stored.size() / 2) + stored.substr(stored.size() - 4), d, raw.size(),
                                   out, 4096, verify, keep));
  }
}

TEST(Codec, ReadsStreamsOfPlainZlib) {
  // As zlib's compress() makes them: no dictionary, any window size.
  std::string raw = text(70000, 5);
  for (int bits : {9, 12, 15}) {
    z_stream z{};
    ASSERT_EQ(deflateInit2(&z, 9, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
    std::string stored(deflateBound(&z, raw.size()), '\0');
    z.next_in = reinterpret_cast<Bytef*>(raw.data());
    z.avail_in = uInt(raw.size());
    z.next_out = reinterpret_cast<Bytef*>(stored.data());
    z.avail_out = uInt(stored.size());
    ASSERT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
    stored.resize(stored.size() - z.avail_out);
    deflateEnd(&z);
    std::string back;
    ASSERT_TRUE(decompress(stored, "", raw.size(), back)) << bits;
    EXPECT_EQ(back, raw);
    ASSERT_TRUE(decompress(stored, dict(1), raw.size(), back)) << "a dictionary the stream does not ask for is unused";
    EXPECT_EQ(back, raw);
  }
  std::string empty, stored, back = "x";
  uLongf len = compressBound(0);
  stored.resize(len);
  ASSERT_EQ(compress(reinterpret_cast<Bytef*>(stored.data()), &len, reinterpret_cast<const Bytef*>(""), 0), Z_OK);
  stored.resize(len);
  ASSERT_TRUE(decompress(stored, "", 0, back));
  EXPECT_TRUE(back.empty());
}

}  // namespace
}  // namespace itemfs::store
