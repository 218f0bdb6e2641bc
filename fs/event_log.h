// Events of a mount for MNT/log: commits refused and why, damaged reads,
// backups, restores. Each line also goes to stderr (foreground) or syslog
// (daemon).
//
// With a file (use_file(), the mount's STORE/log by default), every event
// is appended to it and MNT/log reads that file: what a mount logged
// outlives it, its size is the file's, and `tail -f MNT/log` follows it.
// The file is moved to FILE.1 before a line that would take it past its
// size limit (as logrotate would; `tail -f` reports the truncation and goes
// on), so the newest event is always in it. Without one (a store
// that cannot be written), MNT/log holds the last `keep` events in memory.
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <mutex>
#include <string>

namespace itemfs::fs {

class EventLog {
 public:
  explicit EventLog(size_t keep = 1000) : keep_(keep) {}
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Appends every event from now on to `path` (created 0600), moved to
  // `path`.1 past `max_bytes`. False, with *error set, if it cannot be opened.
  bool use_file(const std::filesystem::path& path, uint64_t max_bytes, std::string* error);
  void use_syslog(bool on) { syslog_ = on; }
  void add(const std::string& line);

  // What MNT/log reads: the file's bytes, or the kept events one a line.
  uint64_t size() const;
  std::string read(uint64_t offset, size_t size) const;
  std::string text() const { return read(0, SIZE_MAX); }

  static constexpr uint64_t kDefaultMaxBytes = 4u << 20;

 private:
  // Moves the file to .1 if `adding` more bytes would pass the limit
  // (mutex_ held).
  void rotate_if_full(uint64_t adding);

  size_t keep_;
  bool syslog_ = false;
  mutable std::mutex mutex_;
  std::deque<std::string> lines_;
  std::filesystem::path path_;
  uint64_t max_bytes_ = kDefaultMaxBytes;
  int fd_ = -1;
};

}  // namespace itemfs::fs
