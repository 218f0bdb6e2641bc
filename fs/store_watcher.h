// The store watcher: notices, once a period, that another process (an
// `itemfs import`, a second mount) committed to the store, and calls
// `changed`; then calls `tick` (the memory trim runs there). Which items
// changed is not known here. Errors of the store go to `error`.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "store/store.h"

namespace itemfs::fs {

class StoreWatcher {
 public:
  static constexpr auto kPeriod = std::chrono::seconds(1);

  StoreWatcher() = default;
  StoreWatcher(const StoreWatcher&) = delete;
  StoreWatcher& operator=(const StoreWatcher&) = delete;
  ~StoreWatcher() { stop(); }

  void start(store::Store& store, std::function<void()> changed, std::function<void()> tick,
             std::function<void(const std::string&)> error);
  void stop();

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace itemfs::fs
