// Fork-join for work a store does while writers wait (dictionary training,
// compressing older blobs again): spread over a few threads, the calling
// thread one of them.
#pragma once

#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace itemfs::store {

// Runs work(t) for every t in [0, threads), each on its own thread (t = 0 on
// this one), and returns once all have finished; then rethrows the first
// exception any of them threw.
inline void run_on_threads(size_t threads, const std::function<void(size_t)>& work) {
  std::mutex failed_mutex;
  std::exception_ptr failed;
  auto guarded = [&](size_t t) {
    try {
      work(t);
    } catch (...) {
      std::lock_guard lock(failed_mutex);
      if (!failed) failed = std::current_exception();
    }
  };
  std::vector<std::thread> helpers;
  helpers.reserve(threads > 0 ? threads - 1 : 0);
  try {
    for (size_t t = 1; t < threads; ++t) helpers.emplace_back(guarded, t);
  } catch (...) {
    for (auto& h : helpers) h.join();
    throw;
  }
  guarded(0);
  for (auto& h : helpers) h.join();
  if (failed) std::rethrow_exception(failed);
}

}  // namespace itemfs::store
