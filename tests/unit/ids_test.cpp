// Item ids found awkward by the fault tests: odd Unicode, lengths, dots;
// and the one path of an item, items/<shard>/<id>.json, for short, multibyte
// and dotted ids.
#include <gtest/gtest.h>

#include <cerrno>

#include "store/store.h"

namespace itemfs::store {
namespace {

// The shard of "..x" would be "..": unreachable in the mount, and a parent
// directory in `itemfs export` and in backup archives.
TEST(IdsTest, IdsStartingWithTwoDotsAreRefused) {
  EXPECT_EQ(check_id("..x").code, EINVAL);
  EXPECT_EQ(check_id("...").code, EINVAL);
  EXPECT_EQ(check_id("..").code, EINVAL);
  EXPECT_TRUE(check_id(".x").ok());
  EXPECT_TRUE(check_id("x..").ok());
  EXPECT_TRUE(check_id("-rf").ok());
}

TEST(IdsTest, ShardsOfMultibyteIds) {
  EXPECT_EQ(shard_of("\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD thumbs"), "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD");
  EXPECT_EQ(shard_of("e\xCC\x81te"), "e\xCC\x81");  // NFD: e + COMBINING ACUTE
  EXPECT_EQ(shard_of("\xC3\xA9te"), "\xC3\xA9t");   // NFC
  EXPECT_EQ(check_id(std::string(125, 'x') + std::string(63, 'y') + std::string(63, 'z')).code, ENAMETOOLONG);
}

TEST(IdsTest, ItemPathsAreUnderTheirShard) {
  EXPECT_EQ(item_path("abc"), "items/ab/abc.json");
  EXPECT_EQ(item_path("a"), "items/00/a.json");
  EXPECT_EQ(item_path("\xC3\xA9te"), "items/\xC3\xA9t/\xC3\xA9te.json");
  EXPECT_EQ(item_path(".x.json"), "items/.x/.x.json.json");
}

}  // namespace
}  // namespace itemfs::store
