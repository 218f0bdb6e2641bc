// What a name under items/ is (fs/names.h): items by `.json` and a valid id
// in the right shard, shards directly under items/, and every other name,
// editors' and rsync's temporaries above all, a scratch file.
#include <gtest/gtest.h>

#include <cerrno>
#include <string>

#include "fs/names.h"

namespace itemfs::fs {
namespace {

TEST(FsNamesTest, ItemInItsShard) {
  Resolved r = classify("ab", "abc.json");
  EXPECT_EQ(r.what, Resolved::kItem);
  EXPECT_EQ(r.id, "abc");
}

TEST(FsNamesTest, FlatItemNameUnderItems) {
  Resolved r = classify("", "abc.json");
  EXPECT_EQ(r.what, Resolved::kItem);
  EXPECT_EQ(r.id, "abc");
}

TEST(FsNamesTest, ItemInAnotherShardIsRefused) {
  Resolved r = classify("zz", "abc.json");
  EXPECT_EQ(r.what, Resolved::kBadItemName);
  EXPECT_EQ(r.error, EINVAL);
  EXPECT_NE(r.why.find("(ab)"), std::string::npos) << r.why;
}

TEST(FsNamesTest, ShardOfCodePoints) {
  // Two code points, not two bytes: "éa" is the shard of "éabc".
  EXPECT_EQ(classify("\xc3\xa9" "a", "\xc3\xa9" "abc.json").what, Resolved::kItem);
  EXPECT_EQ(classify("", "\xc3\xa9" "a").what, Resolved::kShard);
}

TEST(FsNamesTest, EditorAndRsyncTemporariesAreScratch) {
  for (const char* name : {".abc.json.AbC123", ".abc.json.swp", "4913", "abc.json~", "abc.json.tmp", "#abc.json#",
                           ".json", "abc.JSON"}) {
    EXPECT_EQ(classify("ab", name).what, Resolved::kScratch) << name;
  }
}

TEST(FsNamesTest, ShortNamesUnderItemsAreShards) {
  EXPECT_EQ(classify("", "ab").what, Resolved::kShard);
  EXPECT_EQ(classify("", "00").what, Resolved::kShard);  // the shard of one-character ids
  EXPECT_EQ(classify("00", "a.json").what, Resolved::kItem);
  EXPECT_EQ(classify("", "a").what, Resolved::kScratch);
  // Longer than a shard: a scratch file.
  EXPECT_EQ(classify("", "abc").what, Resolved::kScratch);
  // In a shard, no name is a shard.
  EXPECT_EQ(classify("ab", "ab").what, Resolved::kScratch);
}

TEST(FsNamesTest, OddItemIdsAreRefusedWithTheStoresReason) {
  Resolved dots = classify("", "...json");
  EXPECT_EQ(dots.what, Resolved::kBadItemName);
  EXPECT_EQ(dots.error, EINVAL);
  Resolved bad_utf8 = classify("", "\xff\xfe.json");
  EXPECT_EQ(bad_utf8.what, Resolved::kBadItemName);
  EXPECT_EQ(bad_utf8.error, EINVAL);
  Resolved too_long = classify("", std::string(251, 'a') + ".json");
  EXPECT_EQ(too_long.what, Resolved::kBadItemName);
  EXPECT_EQ(too_long.error, ENAMETOOLONG);
  EXPECT_FALSE(too_long.why.empty());
  // 250 bytes is the longest id.
  EXPECT_EQ(classify("", std::string(250, 'a') + ".json").what, Resolved::kItem);
}

TEST(FsNamesTest, Paths) {
  EXPECT_EQ(items_path("", "x"), "items/x");
  EXPECT_EQ(items_path("ab", ".abc.json.swp"), "items/ab/.abc.json.swp");
  EXPECT_TRUE(ends_with_json("a.json"));
  EXPECT_FALSE(ends_with_json(".json"));
}

}  // namespace
}  // namespace itemfs::fs
