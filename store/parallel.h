// Fork-join for work a store does while writers wait (dictionary training,
// compressing older blobs again): spread over a few threads, the calling
// thread one of them. And a kept helper thread for short jobs (previews).
#pragma once

#include <pthread.h>
#include <sched.h>

#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <system_error>
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

namespace itemfs::store {

// The CPUs this process may run on (its affinity mask, which taskset and
// cpusets set; hardware_concurrency() counts the machine's).
inline size_t usable_cpus() {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return 1;
  return size_t(CPU_COUNT(&allowed));
}

// One thread kept to help a caller with work the caller shares out itself
// (items taken from an atomic counter, say), so a short job does not pay
// for a new thread and its cold caches: a thread made for each search was
// as slow per item as the caller was for all of them. It helps one caller
// at a time; another finds it busy and does its work alone.
class HelperThread {
 public:
  HelperThread() = default;
  ~HelperThread() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  HelperThread(const HelperThread&) = delete;
  HelperThread& operator=(const HelperThread&) = delete;

  // Runs work(0) here and, if the helper is free, work(1) on it at the same
  // time; returns when both have finished, then rethrows the exception this
  // thread's part threw, else the helper's. The helper's part may not run at
  // all (it is busy, or had not started when work(0) returned, which then
  // must have done all the work).
  void share(const std::function<void(size_t)>& work) {
    bool helped = false;
    {
      std::unique_lock lock(mutex_);
      if (!job_ && !stopping_ && !thread_.joinable()) {
        try {
          thread_ = std::thread([this] { serve(); });
        } catch (const std::system_error&) {  // no thread to be had: work alone
        }
      }
      helped = !job_ && !stopping_ && thread_.joinable();
      if (helped) {
        job_ = &work;
        failed_ = nullptr;
        finished_ = false;
      }
    }
    if (helped) {
      keep_off_this_cpu();
      wake_.notify_all();
    }
    std::exception_ptr mine;
    try {
      work(0);
    } catch (...) {
      mine = std::current_exception();
    }
    if (!helped) {
      if (mine) std::rethrow_exception(mine);
      return;
    }
    std::exception_ptr theirs;
    {
      std::unique_lock lock(mutex_);
      // Not started yet: nothing is left for it, so it is not waited for.
      if (running_ || finished_) done_.wait(lock, [&] { return finished_; });
      theirs = failed_;
      job_ = nullptr;
    }
    if (mine) std::rethrow_exception(mine);
    if (theirs) std::rethrow_exception(theirs);
  }

 private:
  // A thread woken by another is put on the waker's CPU, where the two then
  // take turns until the scheduler moves one (milliseconds later: longer
  // than a whole job). So the helper is kept off the caller's CPU; on a
  // machine with one CPU (of those this process may use) it is left alone.
  void keep_off_this_cpu() {
    const int cpu = sched_getcpu();
    if (cpu < 0 || cpu == avoided_cpu_) return;
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0 || cpu >= CPU_SETSIZE) return;
    CPU_CLR(cpu, &allowed);
    if (CPU_COUNT(&allowed) == 0) return;
    if (pthread_setaffinity_np(thread_.native_handle(), sizeof allowed, &allowed) == 0) avoided_cpu_ = cpu;
  }

  void serve() {
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return stopping_ || (job_ && !finished_ && !running_); });
      if (stopping_) return;
      running_ = true;
      const std::function<void(size_t)>* job = job_;
      lock.unlock();
      std::exception_ptr failed;
      try {
        (*job)(1);
      } catch (...) {
        failed = std::current_exception();
      }
      lock.lock();
      running_ = false;
      failed_ = failed;
      finished_ = true;
      done_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(size_t)>* job_ = nullptr;  // the caller's, while it waits in share()
  bool running_ = false;
  bool finished_ = false;
  bool stopping_ = false;
  std::exception_ptr failed_;
  std::thread thread_;  // made at the first share()
  int avoided_cpu_ = -1;  // the CPU the helper is kept off
};

}  // namespace itemfs::store
