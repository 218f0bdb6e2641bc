// gzip: GzipSink (levels, segments spliced in), SpoolSink, and
// GunzipSource (inflating on its own thread); io.h.
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

// ---------------------------------------------------------------- gzip

SpoolSink::SpoolSink(const std::filesystem::path& dir, size_t memory_max) : dir_(dir), memory_max_(memory_max) {}

SpoolSink::~SpoolSink() {
  if (fd_ >= 0) ::close(fd_);
}

void SpoolSink::write(const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  if (fd_ < 0) {
    size_t take = std::min(size, memory_max_ - std::min(memory_max_, memory_.size()));
    memory_.append(p, take);
    p += take;
    size -= take;
    if (size == 0) return;
    fd_ = ::open(dir_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd_ < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
      // A file system without O_TMPFILE: a named file, unlinked at once.
      std::string name = (dir_ / ".spool-XXXXXX").string();
      fd_ = ::mkostemp(name.data(), O_CLOEXEC);
      if (fd_ >= 0) ::unlink(name.c_str());
    }
    if (fd_ < 0) throw_errno("cannot create a spool file in", dir_, errno);
  }
  if (int err = write_all(fd_, p, size)) throw_errno("cannot write a spool file in", dir_, err);
  file_bytes_ += size;
}

void SpoolSink::copy_to(ByteSink& out) {
  if (!memory_.empty()) out.write(memory_.data(), memory_.size());
  if (fd_ < 0) return;
  std::vector<char> buf(1 << 20);
  for (uint64_t at = 0; at < file_bytes_;) {
    ssize_t n = ::pread(fd_, buf.data(), std::min<uint64_t>(buf.size(), file_bytes_ - at), static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw_errno("cannot read a spool file in", dir_, n < 0 ? errno : EIO);
    out.write(buf.data(), static_cast<size_t>(n));
    at += static_cast<uint64_t>(n);
  }
}

GzipSink::GzipSink(ByteSink& next, int level, Mode mode)
    : next_(next), z_(std::make_unique<z_stream_s>()), out_(256 * 1024), level_(std::clamp(level, 0, 9)), mode_(mode) {
  // Raw deflate: the gzip header and trailer are written here, so that a
  // segment made by another stream can be spliced in (its crc32 combined).
  if (deflateInit2(z_.get(), level_, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    z_.reset();
    throw JobError(ENOMEM, "gzip: cannot initialise zlib");
  }
  crc_ = crc32(0, nullptr, 0);
  if (mode_ == Mode::kGzip) {
    // RFC 1952: magic, deflate, no flags, no mtime, no extra flags, Unix.
    static const unsigned char header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    next_.write(header, sizeof header);
  }
}

GzipSink::~GzipSink() {
  if (z_) deflateEnd(z_.get());
}

void GzipSink::deflate_all(int flush) {
  for (;;) {
    z_->next_out = out_.data();
    z_->avail_out = static_cast<uInt>(out_.size());
    int rc = deflate(z_.get(), flush);
    if (rc == Z_STREAM_ERROR) throw JobError(EIO, "gzip: deflate failed");
    size_t have = out_.size() - z_->avail_out;
    if (have) next_.write(out_.data(), have);
    if (flush == Z_FINISH ? rc == Z_STREAM_END : (z_->avail_in == 0 && z_->avail_out != 0)) return;
  }
}

void GzipSink::set_level(int level) {
  level = std::clamp(level, 0, 9);
  if (level == level_) return;
  if (finished_) throw JobError(EIO, "gzip: level change after finish");
  // deflateParams compresses what it holds at the old level first; it asks
  // for more room (Z_BUF_ERROR) until that fits.
  for (int tries = 0;; ++tries) {
    z_->next_in = nullptr;
    z_->avail_in = 0;
    z_->next_out = out_.data();
    z_->avail_out = static_cast<uInt>(out_.size());
    int rc = deflateParams(z_.get(), level, Z_DEFAULT_STRATEGY);
    size_t have = out_.size() - z_->avail_out;
    if (have) next_.write(out_.data(), have);
    if (rc == Z_OK) break;
    if (rc != Z_BUF_ERROR || tries > 1000) throw JobError(EIO, "gzip: cannot change the compression level");
  }
  level_ = level;
}

void GzipSink::write(const void* data, size_t size) {
  if (finished_) throw JobError(EIO, "gzip: write after finish");
  const auto* p = static_cast<const unsigned char*>(data);
  size_ += size;
  while (size > 0) {
    size_t n = std::min<size_t>(size, 1u << 30);
    crc_ = crc32(crc_, p, static_cast<uInt>(n));
    z_->next_in = const_cast<unsigned char*>(p);  // zlib's API is not const; it does not write
    z_->avail_in = static_cast<uInt>(n);
    deflate_all(Z_NO_FLUSH);
    p += n;
    size -= n;
  }
}

void GzipSink::finish() {
  if (finished_) return;
  z_->next_in = nullptr;
  z_->avail_in = 0;
  if (mode_ == Mode::kSegment) {
    deflate_all(Z_SYNC_FLUSH);  // byte-aligned, and no final block
  } else {
    deflate_all(Z_FINISH);
    unsigned char trailer[8];  // crc32 and the length mod 2^32, little-endian
    for (int i = 0; i < 4; ++i) {
      trailer[i] = static_cast<unsigned char>(crc_ >> (8 * i));
      trailer[4 + i] = static_cast<unsigned char>(size_ >> (8 * i));
    }
    next_.write(trailer, sizeof trailer);
  }
  finished_ = true;
  next_.finish();
}

void GzipSink::splice(const GzipSink& segment, SpoolSink& blocks) {
  if (finished_ || mode_ != Mode::kGzip || segment.mode_ != Mode::kSegment || !segment.finished_) {
    throw JobError(EIO, "gzip: cannot splice here");
  }
  // A full flush: byte-aligned, and nothing after it refers to what came
  // before (the segment's bytes now sit in between).
  z_->next_in = nullptr;
  z_->avail_in = 0;
  deflate_all(Z_FULL_FLUSH);
  blocks.copy_to(next_);
  crc_ = crc32_combine(crc_, segment.crc_, static_cast<z_off_t>(segment.size_));
  size_ += segment.size_;
}

// ---------------------------------------------------------------- gunzip

namespace {
constexpr size_t kInflatedChunk = 1 << 20;
constexpr size_t kInflatedChunks = 4;  // at most this many inflated ahead of the reader
}  // namespace

struct GunzipSource::Shared {
  std::mutex mu;
  std::condition_variable changed;
  std::deque<std::vector<char>> full;  // inflated, in stream order
  std::vector<std::vector<char>> spare;
  bool done = false;  // the thread has ended: after `full`, the end or `error`
  bool stop = false;  // the reader is going away
  std::exception_ptr error;
  std::thread thread;
};

GunzipSource::GunzipSource(ByteSource& raw) : raw_(raw), shared_(std::make_unique<Shared>()) {
  shared_->spare.resize(kInflatedChunks);
  shared_->thread = std::thread([this] {
    std::exception_ptr error;
    try {
      inflate_all();
    } catch (...) {
      error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->error = error;
    shared_->done = true;
    shared_->changed.notify_all();
  });
}

GunzipSource::~GunzipSource() {
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->stop = true;
    shared_->changed.notify_all();
  }
  shared_->thread.join();
}

void GunzipSource::inflate_all() {
  Shared& s = *shared_;
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) throw JobError(ENOMEM, "gzip: cannot initialise zlib");
  struct End {
    z_stream& z;
    ~End() { inflateEnd(&z); }
  } end{z};
  std::vector<unsigned char> in(256 * 1024);
  uint64_t read_bytes = 0;
  bool raw_end = false;
  bool in_member = false;  // the input ending here would cut a member short
  for (;;) {
    std::vector<char> out;
    {
      std::unique_lock<std::mutex> lock(s.mu);
      s.changed.wait(lock, [&] { return s.stop || !s.spare.empty(); });
      if (s.stop) return;
      out = std::move(s.spare.back());
      s.spare.pop_back();
    }
    out.resize(kInflatedChunk);
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    // What was inflated before damage is handed over before the error.
    auto hand_over = [&] {
      out.resize(out.size() - z.avail_out);
      std::lock_guard<std::mutex> lock(s.mu);
      if (!out.empty()) s.full.push_back(std::move(out));
      else s.spare.push_back(std::move(out));
      s.changed.notify_all();
    };
    try {
      while (z.avail_out > 0) {
        if (z.avail_in == 0 && !raw_end) {
          size_t n = raw_.read(in.data(), in.size());
          read_bytes += n;
          raw_end = n == 0;
          z.next_in = in.data();
          z.avail_in = static_cast<uInt>(n);
        }
        if (z.avail_in == 0) {
          if (in_member) throw JobError(EIO, "archive damaged: the gzip stream is cut short");
          break;
        }
        in_member = true;
        int rc = inflate(&z, Z_NO_FLUSH);
        if (rc == Z_STREAM_END) {
          in_member = false;
          inflateReset(&z);  // another member may follow
        } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
          throw JobError(EIO, "archive damaged at byte " + std::to_string(read_bytes - z.avail_in) +
                                  " of the gzip stream: " + (z.msg ? z.msg : "inflate failed"));
        }
      }
    } catch (...) {
      hand_over();
      throw;
    }
    bool at_end = z.avail_out > 0;  // the loop above stops early only at the end
    hand_over();
    if (at_end) return;
  }
}

size_t GunzipSource::read(void* buf, size_t cap) {
  while (pos_ == current_.size()) {
    Shared& s = *shared_;
    std::unique_lock<std::mutex> lock(s.mu);
    if (current_.capacity() > 0) {
      s.spare.push_back(std::move(current_));
      s.changed.notify_all();
    }
    current_.clear();
    pos_ = 0;
    s.changed.wait(lock, [&] { return s.done || !s.full.empty(); });
    if (s.full.empty()) {
      if (s.error) std::rethrow_exception(s.error);
      return 0;
    }
    current_ = std::move(s.full.front());
    s.full.pop_front();
  }
  size_t n = std::min(cap, current_.size() - pos_);
  std::memcpy(buf, current_.data() + pos_, n);
  pos_ += n;
  return n;
}

void GunzipSource::finish() {
  char c;
  while (read(&c, 1) > 0) pos_ = current_.size();
}

}  // namespace itemfs::backup
