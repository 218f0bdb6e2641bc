#include "base/log.h"

#include <cstdio>
#include <deque>
#include <mutex>
#include <string>

namespace itemfs::base {

namespace {

constexpr size_t kKeptLines = 64;

struct Log {
  std::mutex mu;
  LogSink sink;
  std::deque<std::string> early;  // while no sink is set
};

Log& the_log() {
  static Log* log = new Log;  // never destroyed: threads may log while the process exits
  return *log;
}

}  // namespace

void log_event(std::string_view line) {
  Log& log = the_log();
  std::lock_guard lock(log.mu);
  if (log.sink) {
    log.sink(line);
    return;
  }
  std::fprintf(stderr, "itemfs: %.*s\n", int(line.size()), line.data());
  log.early.emplace_back(line);
  if (log.early.size() > kKeptLines) log.early.pop_front();
}

void set_log_sink(LogSink sink) {
  Log& log = the_log();
  std::lock_guard lock(log.mu);
  log.sink = std::move(sink);
  if (!log.sink) return;
  for (const std::string& line : log.early) log.sink(line);
  log.early.clear();
}

}  // namespace itemfs::base
