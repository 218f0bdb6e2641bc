// SharedSync (base/shared_sync.h).
#include "base/shared_sync.h"

namespace itemfs::base {

void SharedSync::run(const std::function<void()>& action) {
  std::unique_lock lock(mutex_);
  const uint64_t ticket = ++tickets_;
  while (served_ < ticket) {
    if (running_) {
      ++waiting_;
      done_.wait(lock);
      --waiting_;
      continue;
    }
    running_ = true;
    const uint64_t covered = tickets_;  // every caller here before it began
    lock.unlock();
    try {
      action();
    } catch (...) {
      lock.lock();
      running_ = false;
      done_.notify_all();
      throw;
    }
    lock.lock();
    running_ = false;
    ++runs_;
    served_ = covered;
    done_.notify_all();
  }
}

uint64_t SharedSync::runs() const {
  std::lock_guard lock(mutex_);
  return runs_;
}

uint64_t SharedSync::waiting() const {
  std::lock_guard lock(mutex_);
  return waiting_;
}

}  // namespace itemfs::base
