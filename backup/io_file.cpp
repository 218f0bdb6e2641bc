// Files for backups: FileSink (write, hash, fsync) and FileSource (read
// a regular file, bounded by its size at open, cancellable); io.h.
#include "backup/io.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <locale.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>


namespace itemfs::backup {

// ---------------------------------------------------------------- files

FileSink::FileSink(const std::filesystem::path& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, kPrivateFileMode);
  if (fd_ < 0) throw_errno("cannot create", path, errno);
  buf_.reserve(256 * 1024);
}

FileSink::~FileSink() {
  if (fd_ >= 0) ::close(fd_);
}

void FileSink::flush_buffer() {
  if (int err = write_all(fd_, buf_.data(), buf_.size())) throw_errno("cannot write", path_, err);
  buf_.clear();
}

void FileSink::write(const void* data, size_t size) {
  if (fd_ < 0) throw JobError(EIO, "write after finish: " + path_.string());
  hasher_.update(data, size);
  bytes_ += size;
  const char* p = static_cast<const char*>(data);
  if (buf_.size() + size > buf_.capacity()) flush_buffer();
  if (size >= buf_.capacity()) {  // as it is, not copied into the buffer first
    if (int err = write_all(fd_, p, size)) throw_errno("cannot write", path_, err);
    return;
  }
  buf_.insert(buf_.end(), p, p + size);
}

void FileSink::finish() {
  if (fd_ < 0) return;
  flush_buffer();
  if (::fsync(fd_) != 0) throw_errno("fsync failed", path_, errno);
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) throw_errno("close failed", path_, errno);
  digest_ = hasher_.finish();
}

FileSource::FileSource(const std::filesystem::path& path, bool hash, const std::atomic<bool>* cancel)
    : path_(path), hash_(hash), cancel_(cancel) {
  fd_ = open_regular(path, &size_);
  ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
}

FileSource::~FileSource() {
  if (fd_ >= 0) ::close(fd_);
}

size_t FileSource::read(void* buf, size_t cap) {
  if (cancel_ && cancel_->load(std::memory_order_relaxed)) {
    throw JobError(ECANCELED, "cancelled: itemfs is shutting down");
  }
  cap = static_cast<size_t>(std::min<uint64_t>(cap, size_ - std::min(size_, bytes_)));
  if (cap == 0) return 0;
  for (;;) {
    ssize_t n = ::read(fd_, buf, cap);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("cannot read", path_, errno);
    if (hash_) hasher_.update(buf, static_cast<size_t>(n));
    bytes_ += static_cast<uint64_t>(n);
    return static_cast<size_t>(n);
  }
}

void FileSource::drain() {
  std::vector<char> buf(256 * 1024);
  while (read(buf.data(), buf.size()) > 0) {
  }
}

base::Sha256 FileSource::sha256() { return hasher_.finish(); }

}  // namespace itemfs::backup
