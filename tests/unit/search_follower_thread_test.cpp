// The feed follower's thread: wakes from commits gather into one step (a
// stream of small commits is applied in a few batches), someone waiting
// cuts the gathering short, a step that says "more" is run again at once,
// and a failed step is reported to the waiter that was waiting for it.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "search/follower.h"

namespace {

using itemfs::search::Follower;
using namespace std::chrono_literals;

TEST(FollowerThread, WakesGatherIntoOneStepThatAWaiterStartsAtOnce) {
  std::atomic<int> steps{0};
  std::atomic<uint64_t> feed{0};
  // Gathering longer than the test runs: only a waiter can start a step.
  Follower f(0, [&] { ++steps; return Follower::Step{feed.load(), false}; }, std::chrono::hours(1));
  for (int k = 1; k <= 20; ++k) {
    feed = k;
    f.wake();
  }
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(steps.load(), 0) << "a wake from a commit must gather, not step at once";
  EXPECT_EQ(f.wait_for(20, std::chrono::minutes(1)), 20u);
  EXPECT_EQ(steps.load(), 1);
}

TEST(FollowerThread, GatheredWakesStepOnceTheGatheringIsOver) {
  std::atomic<int> steps{0};
  Follower f(0, [&] { ++steps; return Follower::Step{7, false}; }, 20ms);
  for (int k = 0; k < 50; ++k) f.wake();
  for (int k = 0; k < 3000 && f.applied() < 7; ++k) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(f.applied(), 7u);
  EXPECT_EQ(steps.load(), 1);
}

TEST(FollowerThread, AStepWithMoreRunsAgainAtOnce) {
  std::atomic<uint64_t> at{0};
  Follower f(0, [&] { uint64_t now = ++at; return Follower::Step{now, now < 5}; }, std::chrono::hours(1));
  EXPECT_EQ(f.wait_for(5, std::chrono::minutes(1)), 5u);
}

TEST(FollowerThread, AFailedStepEndsTheWaitWithItsError) {
  Follower f(0, []() -> Follower::Step { throw std::runtime_error("disk full"); }, std::chrono::hours(1));
  EXPECT_EQ(f.wait_for(3, std::chrono::minutes(1)), 0u);
  EXPECT_EQ(f.last_error(), "disk full");
}

}  // namespace
