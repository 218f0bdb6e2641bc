#include "fs/event_log.h"

#include <syslog.h>

#include <ctime>
#include <iostream>

namespace itemfs::fs {

void EventLog::add(const std::string& line) {
  // One event must stay one line whatever a file name holds.
  std::string clean;
  for (char c : line) clean += (c == '\n' || c == '\r') ? ' ' : c;
  char stamp[32];
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
  std::string entry = std::string(stamp) + " " + clean;
  if (syslog_)
    syslog(LOG_NOTICE, "%s", clean.c_str());
  else
    std::cerr << "itemfs: " << entry << std::endl;
  std::lock_guard lock(mutex_);
  lines_.push_back(std::move(entry));
  while (lines_.size() > keep_) lines_.pop_front();
}

std::string EventLog::text() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& line : lines_) out += line + "\n";
  return out;
}

}  // namespace itemfs::fs
