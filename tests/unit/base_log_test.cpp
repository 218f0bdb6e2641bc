// base/log: a line goes to the sink set; before a sink is set lines go to
// stderr and are kept, and the first sink receives them in order; an empty
// sink goes back to stderr.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/log.h"

namespace itemfs::base {
namespace {

// What earlier tests of this process logged is handed to a sink that drops it.
void start_empty() {
  set_log_sink([](std::string_view) {});
  set_log_sink({});
}

TEST(BaseLog, ASinkSetLaterReceivesWhatCameBeforeItInOrder) {
  start_empty();
  log_event("first");
  log_event("second");
  std::vector<std::string> got;
  set_log_sink([&](std::string_view line) { got.emplace_back(line); });
  log_event("third");
  set_log_sink({});
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], "first");
  EXPECT_EQ(got[1], "second");
  EXPECT_EQ(got[2], "third");
  // Handed over once: the next sink starts empty.
  std::vector<std::string> next;
  set_log_sink([&](std::string_view line) { next.emplace_back(line); });
  set_log_sink({});
  EXPECT_TRUE(next.empty());
}

TEST(BaseLog, OnlyTheLastLinesAreKeptForALaterSink) {
  start_empty();
  for (int k = 0; k < 100; ++k) log_event("line " + std::to_string(k));
  std::vector<std::string> got;
  set_log_sink([&](std::string_view line) { got.emplace_back(line); });
  set_log_sink({});
  ASSERT_EQ(got.size(), 64u);
  EXPECT_EQ(got.front(), "line 36");
  EXPECT_EQ(got.back(), "line 99");
}

}  // namespace
}  // namespace itemfs::base
