// The journal of accepted writes (store/journal.h): records come back from
// replay() exactly as appended, from any recorded position on; positions
// keep growing across a restart; a torn or damaged tail ends the replay
// there and says so; one process at a time holds a store's journal.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "store/journal.h"
#include "tests/unit/temp_dir.h"

namespace itemfs::store {
namespace {

std::vector<JournalRecord> all_after(Journal& j, uint64_t applied, std::string* problem = nullptr) {
  std::vector<JournalRecord> out;
  std::string why = j.replay(applied, [&](JournalRecord& r) { out.push_back(r); });
  if (problem) *problem = why;
  else EXPECT_EQ(why, "");
  return out;
}

Attrs attrs(int64_t mtime) {
  Attrs a;
  a.mode = 0100640;
  a.uid = 1001;
  a.gid = 1002;
  a.mtime_ns = mtime;
  return a;
}

TEST(StoreJournal, RecordsComeBackAsAppendedFromAnyPosition) {
  TempDir dir;
  auto j = Journal::take(dir.path());
  ASSERT_TRUE(j);
  const uint64_t first = j->append("one", attrs(11), 7, R"({"a":1})");
  const uint64_t second = j->append("two \xc3\xa9", attrs(-5), 8, std::string(300000, ' ') + "[]");
  EXPECT_LT(first, second);
  EXPECT_EQ(second, j->end());
  auto got = all_after(*j, 0);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].id, "one");
  EXPECT_EQ(got[0].bytes, R"({"a":1})");
  EXPECT_EQ(got[0].ino, 7);
  EXPECT_EQ(got[0].attrs.mode, 0100640u);
  EXPECT_EQ(got[0].attrs.uid, 1001u);
  EXPECT_EQ(got[0].attrs.gid, 1002u);
  EXPECT_EQ(got[0].attrs.mtime_ns, 11);
  EXPECT_EQ(got[0].end, first);
  EXPECT_EQ(got[1].id, "two \xc3\xa9");
  EXPECT_EQ(got[1].bytes.size(), 300002u);
  EXPECT_EQ(got[1].attrs.mtime_ns, -5);
  auto rest = all_after(*j, first);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].id, "two \xc3\xa9");
  EXPECT_TRUE(all_after(*j, second).empty());
}

TEST(StoreJournal, SurvivesTheProcessAndKeepsPositionsAcrossARestart) {
  TempDir dir;
  uint64_t end;
  {
    auto j = Journal::take(dir.path());
    j->append("a", attrs(1), 1, "1");
    end = j->append("b", attrs(2), 2, "2");
  }
  auto j = Journal::take(dir.path());
  ASSERT_EQ(all_after(*j, 0).size(), 2u);
  j->restart();
  EXPECT_EQ(j->end(), end);
  EXPECT_EQ(j->file_bytes(), 0u);
  EXPECT_TRUE(all_after(*j, 0).empty());
  const uint64_t next = j->append("c", attrs(3), 3, "3");
  EXPECT_GT(next, end);
  j.reset();
  j = Journal::take(dir.path());
  auto got = all_after(*j, end);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, "c");
  EXPECT_EQ(got[0].end, next);
}

TEST(StoreJournal, ATornOrDamagedTailEndsTheReplayThere) {
  TempDir dir;
  const auto file = dir.path() / "journal";
  {
    auto j = Journal::take(dir.path());
    j->append("whole", attrs(1), 1, R"({"whole":true})");
    j->append("torn", attrs(2), 2, R"({"torn":true})");
  }
  std::filesystem::resize_file(file, std::filesystem::file_size(file) - 3);
  {
    auto j = Journal::take(dir.path());
    std::string problem;
    auto got = all_after(*j, 0, &problem);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].id, "whole");
    EXPECT_NE(problem.find("damaged record"), std::string::npos) << problem;
  }
  {
    // One byte of the first record's body flipped: nothing is applied.
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(16 + 12 + 4);
    f.put('X');
  }
  auto j = Journal::take(dir.path());
  std::string problem;
  EXPECT_TRUE(all_after(*j, 0, &problem).empty());
  EXPECT_NE(problem.find("checksum"), std::string::npos) << problem;
}

TEST(StoreJournal, OneHolderAtATime) {
  TempDir dir;
  auto j = Journal::take(dir.path());
  ASSERT_TRUE(j);
  EXPECT_FALSE(Journal::take(dir.path()));
  j.reset();
  EXPECT_TRUE(Journal::take(dir.path()));
}

}  // namespace
}  // namespace itemfs::store
