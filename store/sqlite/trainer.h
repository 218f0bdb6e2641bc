// The store's background trainer: one thread, started when first woken, on
// which the store trains its compression dictionaries and compresses its
// older blobs again with them (store/sqlite/training.cpp, recompress.cpp),
// away from the writers, as a log-structured store compacts in the
// background.
//
// The contract: wake() asks for one more run of the work; it is cheap (a
// flag and a notify), so a writer may call it under its lock. Runs never
// overlap; a wake during a run makes one more run after it. wait_idle()
// returns once no run is asked for or under way, or the trainer stops.
// stop() (also the destructor) makes stopping() true, waits for the run
// under way and joins the thread; the work checks stopping() between its
// transactions and returns early. What the work throws is logged to stderr
// and the trainer goes on: it never reaches a writer.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace itemfs::store::sqlite {

class Trainer {
 public:
  using Work = std::function<void(const Trainer&)>;
  explicit Trainer(Work work) : work_(std::move(work)) {}
  ~Trainer() { stop(); }
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  void wake();
  void wait_idle();
  void stop();
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }

 private:
  void run();

  Work work_;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool due_ = false;   // a run is asked for (under mutex_)
  bool busy_ = false;  // a run is under way (under mutex_)
  std::atomic<bool> stopping_{false};
  std::thread thread_;  // started by the first wake()
};

}  // namespace itemfs::store::sqlite
