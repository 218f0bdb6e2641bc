#include "fs/event_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <iostream>

namespace itemfs::fs {

EventLog::~EventLog() {
  if (fd_ >= 0) ::close(fd_);
}

bool EventLog::use_file(const std::filesystem::path& path, uint64_t max_bytes, std::string* error) {
  int fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  struct stat st {};
  if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
    ::close(fd);
    fd = -1;
    errno = EINVAL;
  }
  if (fd < 0) {
    if (error) *error = "cannot open the log file " + path.string() + ": " + std::strerror(errno);
    return false;
  }
  std::lock_guard lock(mutex_);
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  path_ = path;
  max_bytes_ = max_bytes;
  rotate_if_full(0);
  return true;
}

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
  if (fd_ >= 0) {
    std::string with_newline = entry + "\n";
    // Moved before the line that would pass the limit, not after it: the
    // newest event is always in the file MNT/log reads.
    rotate_if_full(with_newline.size());
    // One write() of an O_APPEND file: a line is never split by another's.
    (void)!::write(fd_, with_newline.data(), with_newline.size());
  }
  lines_.push_back(std::move(entry));
  while (lines_.size() > keep_) lines_.pop_front();
}

void EventLog::rotate_if_full(uint64_t adding) {
  struct stat st {};
  if (fd_ < 0 || fstat(fd_, &st) != 0 || st.st_size == 0 || uint64_t(st.st_size) + adding <= max_bytes_) return;
  std::filesystem::path old = path_;
  old += ".1";
  int fd = -1;
  if (::rename(path_.c_str(), old.c_str()) == 0)
    fd = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return;  // keep appending to the file there is
  ::close(fd_);
  fd_ = fd;
}

uint64_t EventLog::size() const {
  std::lock_guard lock(mutex_);
  if (fd_ >= 0) {
    struct stat st {};
    return fstat(fd_, &st) == 0 ? uint64_t(st.st_size) : 0;
  }
  uint64_t total = 0;
  for (const auto& line : lines_) total += line.size() + 1;
  return total;
}

std::string EventLog::read(uint64_t offset, size_t size) const {
  std::lock_guard lock(mutex_);
  std::string out;
  if (fd_ >= 0) {
    struct stat st {};
    if (fstat(fd_, &st) != 0 || offset >= uint64_t(st.st_size)) return out;
    out.resize(size_t(std::min<uint64_t>(size, uint64_t(st.st_size) - offset)));
    ssize_t n = ::pread(fd_, out.data(), out.size(), off_t(offset));
    out.resize(n > 0 ? size_t(n) : 0);
    return out;
  }
  for (const auto& line : lines_) out += line + "\n";
  if (offset >= out.size()) return std::string();
  return out.substr(size_t(offset), size);
}

}  // namespace itemfs::fs
