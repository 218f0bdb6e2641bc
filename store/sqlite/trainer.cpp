// The store's background trainer: the thread, its wake-ups, waiting for it
// to be idle, and stopping it (see trainer.h).

#include "base/log.h"
#include "base/thread_name.h"
#include "store/sqlite/trainer.h"

#include <exception>

namespace itemfs::store::sqlite {

void Trainer::wake() {
  std::lock_guard lock(mutex_);
  if (stopping()) return;
  due_ = true;
  if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  changed_.notify_all();
}

void Trainer::wait_idle() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return stopping() || (!due_ && !busy_); });
}

void Trainer::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_.store(true, std::memory_order_release);
    changed_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void Trainer::run() {
  base::name_this_thread("itemfs-train");
  std::unique_lock lock(mutex_);
  for (;;) {
    changed_.wait(lock, [this] { return stopping() || due_; });
    if (stopping()) break;
    due_ = false;
    busy_ = true;
    lock.unlock();
    // The writes that made the run due are committed: whatever happens to
    // the training, no writer hears of it.
    try {
      work_(*this);
    } catch (const std::exception& e) {
      base::log_event(std::string("training a compression dictionary failed: ") + e.what());
    } catch (...) {
      base::log_event("training a compression dictionary failed");
    }
    lock.lock();
    busy_ = false;
    changed_.notify_all();
  }
  busy_ = false;
  changed_.notify_all();
}

}  // namespace itemfs::store::sqlite
