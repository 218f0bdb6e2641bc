// SharedSync: one expensive action (a disk sync) run once for every caller
// waiting at that moment, as a filesystem's journal commit serves every
// fsync that arrived while the previous one ran.
//
// The contract: run(action) returns after an invocation of `action` that
// began after run() was called has returned; one invocation at a time; a
// caller that arrives while one runs waits and is served by the next, which
// serves every caller waiting then. If `action` throws, its caller gets the
// exception and the waiters it would have served try again themselves.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>

namespace itemfs::base {

class SharedSync {
 public:
  void run(const std::function<void()>& action);
  // How many times `action` completed.
  uint64_t runs() const;
  // Callers waiting for an invocation that covers them (not the one running it).
  uint64_t waiting() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable done_;
  uint64_t tickets_ = 0;  // handed out, one per run()
  uint64_t served_ = 0;   // every ticket up to this one is served
  uint64_t runs_ = 0;
  uint64_t waiting_ = 0;
  bool running_ = false;
};

}  // namespace itemfs::base
