#include "fs/staging.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace itemfs::fs {

int open_staging_file(const std::filesystem::path& dir) {
  int fd = open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) return -errno;
  std::string pattern = (dir / "stage-XXXXXX").string();
  fd = mkostemp(pattern.data(), O_CLOEXEC);
  if (fd < 0) return -errno;
  unlink(pattern.c_str());
  return fd;
}

StagingPool::~StagingPool() {
  for (int fd : free_) close(fd);
}

int StagingPool::take() {
  {
    std::lock_guard lock(mutex_);
    if (!free_.empty()) {
      int fd = free_.back();
      free_.pop_back();
      return fd;
    }
  }
  return open_staging_file(dir_);
}

void StagingPool::give(int fd) {
  // Kept only if it could be emptied; a body never outlives its state.
  if (ftruncate(fd, 0) == 0) {
    std::lock_guard lock(mutex_);
    if (free_.size() < 64) {
      free_.push_back(fd);
      return;
    }
  }
  close(fd);
}

FdStreamBuf::int_type FdStreamBuf::underflow() {
  if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
  uint64_t next = buffer_start_ + uint64_t(egptr() - eback());
  if (next >= size_) return traits_type::eof();
  ssize_t n;
  do n = pread(fd_, buffer_.data(), buffer_.size(), off_t(next));
  while (n < 0 && errno == EINTR);
  if (n <= 0) return traits_type::eof();
  size_t usable = size_t(std::min<uint64_t>(uint64_t(n), size_ - next));
  buffer_start_ = next;
  setg(buffer_.data(), buffer_.data(), buffer_.data() + usable);
  return traits_type::to_int_type(*gptr());
}

std::streamsize FdStreamBuf::xsgetn(char* out, std::streamsize count) {
  std::streamsize done = 0;
  while (done < count) {
    if (gptr() == egptr() && underflow() == traits_type::eof()) break;
    std::streamsize take = std::min<std::streamsize>(count - done, egptr() - gptr());
    std::memcpy(out + done, gptr(), size_t(take));
    gbump(int(take));
    done += take;
  }
  return done;
}

FdStreamBuf::pos_type FdStreamBuf::seekoff(off_type off, std::ios_base::seekdir dir, std::ios_base::openmode mode) {
  off_type current = off_type(buffer_start_) + (gptr() - eback());
  off_type base = dir == std::ios_base::beg ? 0 : dir == std::ios_base::cur ? current : off_type(size_);
  return seekpos(pos_type(base + off), mode);
}

FdStreamBuf::pos_type FdStreamBuf::seekpos(pos_type pos, std::ios_base::openmode) {
  off_type target = off_type(pos);
  if (target < 0 || uint64_t(target) > size_) return pos_type(off_type(-1));
  buffer_start_ = uint64_t(target);
  setg(buffer_.data(), buffer_.data(), buffer_.data());
  return pos;
}

}  // namespace itemfs::fs
