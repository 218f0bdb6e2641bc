// base/clock: now_ns() is the system clock (the time of day that file mtimes
// and time(2) use) in nanoseconds since the epoch, not a clock of its own.
#include <gtest/gtest.h>

#include <chrono>
#include <ctime>

#include "base/clock.h"

namespace itemfs::base {
namespace {

int64_t system_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST(ClockTest, NowIsTheSystemClockInNanoseconds) {
  const int64_t before = system_ns();
  const int64_t now = now_ns();
  const int64_t after = system_ns();
  EXPECT_LE(before, now);
  EXPECT_LE(now, after);
  // The same second as time(2) says (or the next, if one began meanwhile).
  const time_t secs = time(nullptr);
  const int64_t again = now_ns() / 1000000000;
  EXPECT_TRUE(again == secs || again == secs + 1) << again << " " << secs;
}

}  // namespace
}  // namespace itemfs::base
