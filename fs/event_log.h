// Recent events for MNT/log: commits refused and why, backups, restores.
// Each line also goes to stderr (foreground) or syslog (daemon).
#pragma once

#include <deque>
#include <mutex>
#include <string>

namespace itemfs::fs {

class EventLog {
 public:
  explicit EventLog(size_t keep = 1000) : keep_(keep) {}
  void use_syslog(bool on) { syslog_ = on; }
  void add(const std::string& line);
  std::string text() const;  // oldest first, one event a line

 private:
  size_t keep_;
  bool syslog_ = false;
  mutable std::mutex mutex_;
  std::deque<std::string> lines_;
};

}  // namespace itemfs::fs
