// The invalidation thread. The kernel caches entries, attributes and pages;
// when what it holds is no longer true (a commit, a refused write, a
// restore, another process's write) it is told so from this thread, never
// from inside a request for the same inode, where libfuse warns of deadlock.
// Any thread may queue; one thread sends, in order.
#pragma once

#include <fuse_lowlevel.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>

namespace itemfs::fs {

class Invalidator {
 public:
  Invalidator() = default;
  Invalidator(const Invalidator&) = delete;
  Invalidator& operator=(const Invalidator&) = delete;
  ~Invalidator() { stop(); }

  void start(fuse_session* session);
  // Drops what is queued and joins the thread.
  void stop();

  // The kernel is to drop the attributes and pages of `ino`.
  void inode(fuse_ino_t ino);
  // The kernel is to drop entry `name` of directory `parent`.
  void entry(fuse_ino_t parent, const std::string& name);
  // Whether the kernel has yet to hear that what it caches of `ino` (its
  // size above all) is stale. A reader opened meanwhile must not trust it.
  bool pending(fuse_ino_t ino);
  // Waits (a bounded time) until the kernel has heard every invalidation
  // queued so far, so that a command such as a restore returns only once
  // what the kernel caches is true again. Never called from the thread that
  // sends them, nor while handling a request on an invalidated inode.
  void wait(std::chrono::milliseconds at_most = std::chrono::seconds(10));

 private:
  void loop();

  fuse_session* session_ = nullptr;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::condition_variable drained_;
  bool busy_ = false;  // a notification is being sent
  std::unordered_map<fuse_ino_t, int> pending_;  // inode -> queued notifications
  std::deque<std::pair<fuse_ino_t, std::string>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace itemfs::fs
