// The invalidation thread (fs/invalidator.h).
#include "base/thread_name.h"
#include "fs/invalidator.h"

namespace itemfs::fs {

void Invalidator::start(fuse_session* session) {
  session_ = session;
  thread_ = std::thread([this] { loop(); });
}

void Invalidator::loop() {
  base::name_this_thread("itemfs-inval");
  std::unique_lock lock(mutex_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;
    auto [ino, name] = queue_.front();
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    if (name.empty())
      fuse_lowlevel_notify_inval_inode(session_, ino, 0, 0);
    else
      fuse_lowlevel_notify_inval_entry(session_, ino, name.c_str(), name.size());
    lock.lock();
    if (name.empty())
      if (auto p = pending_.find(ino); p != pending_.end() && --p->second == 0) pending_.erase(p);
    busy_ = false;
    if (queue_.empty()) drained_.notify_all();
  }
}

void Invalidator::inode(fuse_ino_t ino) {
  std::lock_guard lock(mutex_);
  queue_.push_back({ino, ""});
  ++pending_[ino];
  cv_.notify_one();
}

void Invalidator::entry(fuse_ino_t parent, const std::string& name) {
  std::lock_guard lock(mutex_);
  queue_.push_back({parent, name});
  cv_.notify_one();
}

bool Invalidator::pending(fuse_ino_t ino) {
  std::lock_guard lock(mutex_);
  return pending_.count(ino) > 0;
}

void Invalidator::wait(std::chrono::milliseconds at_most) {
  std::unique_lock lock(mutex_);
  drained_.wait_for(lock, at_most, [&] { return stop_ || (queue_.empty() && !busy_); });
}

void Invalidator::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
    queue_.clear();
    pending_.clear();
    cv_.notify_one();
    drained_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

}  // namespace itemfs::fs
