// The store watcher (fs/store_watcher.h).
#include "base/thread_name.h"
#include "fs/store_watcher.h"

namespace itemfs::fs {

void StoreWatcher::start(store::Store& store, std::function<void()> changed, std::function<void()> tick,
                         std::function<void(const std::string&)> error) {
  store.changed_by_others();  // the baseline
  thread_ = std::thread([this, &store, changed = std::move(changed), tick = std::move(tick),
                         error = std::move(error)] {
    base::name_this_thread("itemfs-watch");
    std::unique_lock lock(mutex_);
    while (!cv_.wait_for(lock, kPeriod, [&] { return stop_; })) {
      lock.unlock();
      try {
        if (store.changed_by_others()) changed();
      } catch (const std::exception& e) {
        error("store watcher: " + std::string(e.what()));
      }
      tick();
      lock.lock();
    }
  });
}

void StoreWatcher::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
    cv_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

}  // namespace itemfs::fs
