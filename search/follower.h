// A follower of the store's change feed: one thread that applies the feed
// to something derived from the items (the search index) in batches,
// whenever it is woken, and lets others wait until it has applied a given
// sequence number.
//
// The contract:
//  - step() is called on the follower's thread only, never twice at once:
//    it applies one batch and returns the sequence number applied through,
//    and whether more may be waiting (then it is called again at once).
//  - The thread runs step() when woken (wake(): a commit listener), and on
//    its own every second, so that commits by other processes (an import
//    beside a mount) are followed too. A wake() gathers: the step runs
//    `gather` after the first wake, so that a stream of small commits (a
//    `cp -r`) is applied in a few large batches, not one step per commit
//    (a step is a transaction of the index; its cost is mostly fixed).
//    Someone waiting (wait_for) cuts the gathering short.
//  - wait_for(seq) wakes the thread and returns once applied() >= seq, the
//    time given has passed, or a step failed after the wait began (the
//    error is kept: last_error()). A failed step is tried again a second
//    later.
//  - The destructor stops the thread after the step under way.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace itemfs::search {

class Follower {
 public:
  struct Step {
    uint64_t applied = 0;
    bool more = false;
  };
  static constexpr std::chrono::milliseconds kDefaultGather{50};
  Follower(uint64_t applied, std::function<Step()> step, std::chrono::milliseconds gather = kDefaultGather);
  ~Follower();
  Follower(const Follower&) = delete;
  Follower& operator=(const Follower&) = delete;

  // Safe to call from anywhere, at any time, also after the follower is
  // gone (a store's commit listener outlives it): see waker().
  void wake();
  std::function<void()> waker() const;
  uint64_t applied() const { return applied_.load(); }
  // Returns applied() when it is done waiting. No timeout: until then.
  uint64_t wait_for(uint64_t seq, std::optional<std::chrono::milliseconds> timeout);
  std::string last_error() const;
  // Sets applied() (after a rebuild done by another thread while the
  // caller holds what keeps step() from running).
  void set_applied(uint64_t seq);

 private:
  struct Shared {
    std::mutex mutex;
    std::condition_variable wake;  // the thread waits here
    bool woken = false;
    bool urgent = false;  // someone waits: no gathering
    bool stopping = false;
  };
  void loop();

  std::function<Step()> step_;
  std::chrono::milliseconds gather_;
  std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
  std::atomic<uint64_t> applied_;
  mutable std::mutex done_mutex_;
  std::condition_variable done_;  // waiters wait here
  uint64_t failures_ = 0;         // under done_mutex_
  std::string last_error_;        // under done_mutex_
  std::thread thread_;            // last: started when the rest is ready
};

}  // namespace itemfs::search
