// Staging files: where writes land before they are committed. Unlinked at
// birth (O_TMPFILE), so a crash leaves nothing behind to clean up.
#pragma once

#include <streambuf>
#include <filesystem>
#include <string>

namespace itemfs::fs {

// Opens a new empty staging file in `dir`; returns the fd or -errno.
int open_staging_file(const std::filesystem::path& dir);

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
