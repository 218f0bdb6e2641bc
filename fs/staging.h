// Staging files: where writes land before they are committed. Unlinked at
// birth (O_TMPFILE), so a crash leaves nothing behind to clean up.
#pragma once

#include <streambuf>
#include <filesystem>
#include <mutex>
#include <vector>
#include <string>

namespace itemfs::fs {

// Opens a new empty staging file in `dir`; returns the fd or -errno.
int open_staging_file(const std::filesystem::path& dir);

// Emptied staging files kept for reuse: making an O_TMPFILE inode (and
// freeing it) was 40% of the daemon's CPU in a `cp -r` of small items.
class StagingPool {
 public:
  explicit StagingPool(std::filesystem::path dir) : dir_(std::move(dir)) {}
  ~StagingPool();
  StagingPool(const StagingPool&) = delete;
  StagingPool& operator=(const StagingPool&) = delete;
  int take();           // an empty staging file, or -errno
  void give(int fd);    // empties it for the next taker, or closes it

 private:
  std::filesystem::path dir_;
  std::mutex mutex_;
  std::vector<int> free_;
};

// A seekable read-only stream over an fd, read with pread so the fd's own
// offset is left alone.
class FdStreamBuf : public std::streambuf {
 public:
  FdStreamBuf(int fd, uint64_t size) : fd_(fd), size_(size), buffer_(64 * 1024, '\0') {}

 protected:
  int_type underflow() override;
  std::streamsize xsgetn(char* out, std::streamsize count) override;
  pos_type seekoff(off_type off, std::ios_base::seekdir dir, std::ios_base::openmode mode) override;
  pos_type seekpos(pos_type pos, std::ios_base::openmode mode) override;

 private:
  int fd_;
  uint64_t size_;
  uint64_t buffer_start_ = 0;  // file offset of eback()
  std::string buffer_;
};

}  // namespace itemfs::fs
