#include "backup/util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

namespace itemfs::backup {

static std::tm utc(int64_t ns) {
  time_t secs = static_cast<time_t>(ns / 1000000000);
  if (ns < 0 && ns % 1000000000) --secs;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return tm;
}

std::string iso_time(int64_t ns) {
  std::tm tm = utc(ns);
  long frac = static_cast<long>(((ns % 1000000000) + 1000000000) % 1000000000);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  return buf;
}

std::string compact_time(int64_t ns) {
  std::tm tm = utc(ns);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d%02d%02dT%02d%02d%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

void throw_errno(const std::string& what, const std::filesystem::path& path, int err) {
  throw JobError(err == ENOSPC ? ENOSPC : EIO, what + ": " + path.string() + ": " + std::strerror(err));
}

void fsync_path(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_errno("cannot open for fsync", path, errno);
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    throw_errno("fsync failed", path, err);
  }
  ::close(fd);
}

int write_all(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return 0;
}

void write_file_atomic(const std::filesystem::path& path, std::string_view content) {
  std::string tmp_name = ".";  // built in steps: GCC 12 -O3 misreports "." + string as -Wrestrict
  tmp_name += path.filename().string();
  tmp_name += ".tmp";
  std::filesystem::path tmp = path.parent_path() / tmp_name;
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, kPrivateFileMode);
  if (fd < 0) throw_errno("cannot create", tmp, errno);
  ::fchmod(fd, kPrivateFileMode);  // a leftover of an earlier attempt keeps its mode otherwise
  if (int err = write_all(fd, content.data(), content.size())) {
    ::close(fd);
    throw_errno("cannot write", tmp, err);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) throw_errno("cannot write", tmp, errno);
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw_errno("cannot rename", tmp, ec.value());
  fsync_path(path.parent_path());
}

int open_regular(const std::filesystem::path& path, uint64_t* size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    if (errno == ELOOP) throw JobError(EIO, "refusing to read " + path.string() + ": it is a symbolic link, not a regular file");
    throw_errno("cannot open", path, errno);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw_errno("cannot stat", path, err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw JobError(EIO, "refusing to read " + path.string() + ": not a regular file");
  }
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    int err = errno;
    ::close(fd);
    throw_errno("cannot open", path, err);
  }
  if (size) *size = static_cast<uint64_t>(st.st_size);
  return fd;
}

std::string read_small_file(const std::filesystem::path& path, size_t limit) {
  int fd = open_regular(path);
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      throw_errno("cannot read", path, err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > limit) {
      ::close(fd);
      throw JobError(EIO, path.string() + " is larger than expected");
    }
  }
  ::close(fd);
  return out;
}

}  // namespace itemfs::backup
