// SharedSync: callers that arrive while an invocation runs are all served by
// the next one (one run for all of them, not one each); a run serves only
// callers that arrived before it began; a failing run throws to its caller
// and the waiters try again themselves.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "base/shared_sync.h"

namespace itemfs::base {
namespace {

// A gate the first run waits at until the test opens it.
struct Gate {
  std::mutex m;
  std::condition_variable cv;
  bool open = false;
  void wait() {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return open; });
  }
  void release() {
    std::lock_guard lock(m);
    open = true;
    cv.notify_all();
  }
};

void wait_until(const std::function<bool()>& condition) {
  while (!condition()) std::this_thread::yield();
}

TEST(SharedSyncTest, CallersWaitingDuringARunShareTheNextOne) {
  SharedSync sync;
  Gate gate;
  std::atomic<int> started{0};
  auto action = [&] {
    if (started.fetch_add(1) == 0) gate.wait();
  };
  std::thread first([&] { sync.run(action); });
  wait_until([&] { return started.load() == 1; });
  std::vector<std::thread> others;
  for (int i = 0; i < 7; ++i) others.emplace_back([&] { sync.run(action); });
  wait_until([&] { return sync.waiting() == 7; });
  gate.release();
  first.join();
  for (auto& t : others) t.join();
  EXPECT_EQ(sync.runs(), 2u);  // the held one, and one for the seven
  EXPECT_EQ(started.load(), 2);
}

TEST(SharedSyncTest, ARunServesNoCallerThatCameAfterItBegan) {
  SharedSync sync;
  sync.run([] {});
  sync.run([] {});
  EXPECT_EQ(sync.runs(), 2u);  // one after another: each needs its own
}

TEST(SharedSyncTest, AFailedRunThrowsToItsCallerAndWaitersRunAgain) {
  SharedSync sync;
  Gate gate;
  std::atomic<int> calls{0};
  auto action = [&] {
    if (calls.fetch_add(1) == 0) {
      gate.wait();
      throw std::runtime_error("disk error");
    }
  };
  std::exception_ptr first_error;
  std::thread first([&] {
    try {
      sync.run(action);
    } catch (...) {
      first_error = std::current_exception();
    }
  });
  wait_until([&] { return calls.load() == 1; });
  std::thread second([&] { sync.run(action); });
  wait_until([&] { return sync.waiting() == 1; });
  gate.release();
  first.join();
  second.join();
  EXPECT_TRUE(first_error != nullptr);
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(sync.runs(), 1u);  // only the second completed
}

}  // namespace
}  // namespace itemfs::base
