// The feed follower's thread (see follower.h).

#include "base/thread_name.h"
#include "search/follower.h"

#include <exception>

namespace itemfs::search {

namespace {
constexpr auto kPoll = std::chrono::seconds(1);
}

Follower::Follower(uint64_t applied, std::function<Step()> step, std::chrono::milliseconds gather)
    : step_(std::move(step)), gather_(gather), applied_(applied), thread_([this] { loop(); }) {}

Follower::~Follower() {
  {
    std::lock_guard lock(shared_->mutex);
    shared_->stopping = true;
  }
  shared_->wake.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::function<void()> Follower::waker() const {
  std::weak_ptr<Shared> weak = shared_;
  return [weak] {
    if (auto shared = weak.lock()) {
      {
        std::lock_guard lock(shared->mutex);
        shared->woken = true;
      }
      shared->wake.notify_one();
    }
  };
}

void Follower::wake() { waker()(); }

void Follower::set_applied(uint64_t seq) {
  {
    std::lock_guard lock(done_mutex_);
    applied_ = seq;
  }
  done_.notify_all();
}

uint64_t Follower::wait_for(uint64_t seq, std::optional<std::chrono::milliseconds> timeout) {
  if (applied_.load() >= seq) return applied_.load();
  {
    std::lock_guard lock(shared_->mutex);
    shared_->woken = true;
    shared_->urgent = true;
  }
  shared_->wake.notify_one();
  std::unique_lock lock(done_mutex_);
  const uint64_t failures = failures_;
  auto ready = [&] { return applied_.load() >= seq || failures_ != failures; };
  if (timeout) done_.wait_for(lock, *timeout, ready);
  else done_.wait(lock, ready);
  return applied_.load();
}

std::string Follower::last_error() const {
  std::lock_guard lock(done_mutex_);
  return last_error_;
}

void Follower::loop() {
  base::name_this_thread("itemfs-index");
  for (;;) {
    {
      std::unique_lock lock(shared_->mutex);
      shared_->wake.wait_for(lock, kPoll, [&] { return shared_->woken || shared_->stopping; });
      if (shared_->woken && !shared_->urgent) {
        shared_->wake.wait_for(lock, gather_, [&] { return shared_->urgent || shared_->stopping; });
      }
      if (shared_->stopping) return;
      shared_->woken = false;
      shared_->urgent = false;
    }
    for (bool more = true; more;) {
      try {
        const Step done = step_();
        more = done.more;
        {
          std::lock_guard lock(done_mutex_);
          if (done.applied > applied_.load()) applied_ = done.applied;
          last_error_.clear();
        }
        done_.notify_all();
      } catch (const std::exception& e) {
        {
          std::lock_guard lock(done_mutex_);
          ++failures_;
          last_error_ = e.what();
        }
        done_.notify_all();
        more = false;
      }
      std::lock_guard lock(shared_->mutex);
      if (shared_->stopping) return;
    }
  }
}

}  // namespace itemfs::search
