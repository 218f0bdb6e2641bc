// tar through libarchive: TarWriter and TarReader, names in UTF-8; io.h.
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

// ---------------------------------------------------------------- tar

// Item ids are UTF-8 and so are the names in our archives. libarchive
// converts names between the locale's charset and UTF-8 (pax headers), and
// in the C locale that fails for any non-ASCII name. So every libarchive call
// runs with this thread's LC_CTYPE switched to C.UTF-8 (uselocale is per
// thread; the process locale is left alone).
namespace {
class Utf8Scope {
 public:
  Utf8Scope() {
    static locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0));
    if (utf8) old_ = uselocale(utf8);
  }
  ~Utf8Scope() {
    if (old_) uselocale(old_);
  }
  Utf8Scope(const Utf8Scope&) = delete;
  Utf8Scope& operator=(const Utf8Scope&) = delete;

 private:
  locale_t old_ = static_cast<locale_t>(0);
};
}  // namespace

struct TarCallbacks {
  static la_ssize_t write(struct archive*, void* self, const void* buf, size_t n) {
    auto* w = static_cast<TarWriter*>(self);
    try {
      if (!w->discard_) w->gzip_.write(buf, n);
      return static_cast<la_ssize_t>(n);
    } catch (...) {
      w->error_ = std::current_exception();
      return -1;
    }
  }
  static la_ssize_t read(struct archive*, void* self, const void** buf) {
    auto* r = static_cast<TarReader*>(self);
    try {
      size_t n = r->source_.read(r->buf_.data(), r->buf_.size());
      *buf = r->buf_.data();
      return static_cast<la_ssize_t>(n);
    } catch (...) {
      r->error_ = std::current_exception();
      return -1;
    }
  }
};

TarWriter::TarWriter(ByteSink& sink, int gzip_level, GzipSink::Mode mode)
    : gzip_(sink, gzip_level, mode), a_(archive_write_new()), entry_(archive_entry_new()),
      segment_(mode == GzipSink::Mode::kSegment) {
  try {
    if (!a_ || !entry_) throw JobError(ENOMEM, "libarchive: out of memory");
    Utf8Scope utf8;
    check(archive_write_set_format_pax(a_), "tar format");
    // libarchive writes the tar stream; GzipSink compresses it, so that the
    // level can change between entries. No blocking: every write reaches
    // GzipSink at once, so a level change applies from the next entry on.
    check(archive_write_add_filter_none(a_), "no filter");
    check(archive_write_set_bytes_per_block(a_, 0), "block size");
    check(archive_write_set_bytes_in_last_block(a_, 1), "last block");
    check(archive_write_open(a_, this, nullptr, &TarCallbacks::write, nullptr), "open");
  } catch (...) {
    archive_entry_free(entry_);
    archive_write_free(a_);
    throw;
  }
}

TarWriter::~TarWriter() {
  Utf8Scope utf8;
  archive_entry_free(entry_);
  if (!closed_) {
    // Abandoned (a job failed): closed with whatever it would still write
    // dropped. archive_write_fail would leave the filter's state unfreed.
    discard_ = true;
    archive_write_close(a_);
  }
  archive_write_free(a_);
}

void TarWriter::set_level(int gzip_level) { gzip_.set_level(gzip_level); }

void TarWriter::check(int rc, const std::string& what) {
  if (rc == ARCHIVE_OK) return;
  if (error_) std::rethrow_exception(error_);
  const char* msg = archive_error_string(a_);
  throw JobError(EIO, "writing archive (" + what + (path_.empty() ? "" : ", " + path_) +
                          "): " + (msg ? msg : "libarchive error"));
}

void TarWriter::begin(const std::string& path, uint64_t size, uint32_t mode, uint32_t uid, uint32_t gid,
                      int64_t mtime_ns) {
  path_ = path;
  declared_ = size;
  written_ = 0;
  archive_entry_clear(entry_);
  Utf8Scope utf8;
  archive_entry_copy_pathname(entry_, path.c_str());
  archive_entry_set_filetype(entry_, AE_IFREG);
  archive_entry_set_perm(entry_, mode & 07777);
  archive_entry_set_size(entry_, static_cast<la_int64_t>(size));
  archive_entry_set_uid(entry_, uid);
  archive_entry_set_gid(entry_, gid);
  int64_t sec = mtime_ns / 1000000000, nsec = mtime_ns % 1000000000;
  if (nsec < 0) {
    nsec += 1000000000;
    --sec;
  }
  archive_entry_set_mtime(entry_, static_cast<time_t>(sec), static_cast<long>(nsec));
  check(archive_write_header(a_, entry_), "header");
}

void TarWriter::data(const void* p, size_t n) {
  if (written_ + n > declared_) {
    throw JobError(EIO, "item " + path_ + " is longer than its recorded size " + std::to_string(declared_));
  }
  const char* c = static_cast<const char*>(p);
  Utf8Scope utf8;
  while (n > 0) {
    la_ssize_t w = archive_write_data(a_, c, n);
    if (w <= 0) check(ARCHIVE_FATAL, "data");
    c += w;
    n -= static_cast<size_t>(w);
    written_ += static_cast<uint64_t>(w);
  }
}

void TarWriter::end() {
  if (written_ != declared_) {
    throw JobError(EIO, "item " + path_ + " has " + std::to_string(written_) + " bytes, recorded size is " +
                            std::to_string(declared_));
  }
  Utf8Scope utf8;
  check(archive_write_finish_entry(a_), "finish entry");
  path_.clear();
}

void TarWriter::close() {
  Utf8Scope utf8;
  // A segment is entries only: what the close writes (the end-of-archive
  // marker) is dropped. libarchive has written every byte of the entries by
  // the time each is finished (no blocking).
  discard_ = segment_;
  check(archive_write_close(a_), "close");
  closed_ = true;
  gzip_.finish();  // and so the sink's finish()
}

void TarWriter::splice(const TarWriter& segment, SpoolSink& blocks) {
  if (!segment.segment_ || !segment.closed_ || segment_ || closed_ || !path_.empty()) {
    throw JobError(EIO, "writing archive: cannot splice here");
  }
  gzip_.splice(segment.gzip_, blocks);
}

TarReader::TarReader(ByteSource& source, Input input)
    : source_(source), a_(archive_read_new()), buf_(128 * 1024) {
  try {
    if (!a_) throw JobError(ENOMEM, "libarchive: out of memory");
    Utf8Scope utf8;
    if (input == Input::kGzip) archive_read_support_filter_gzip(a_);
    archive_read_support_format_tar(a_);
    if (archive_read_open(a_, this, nullptr, &TarCallbacks::read, nullptr) != ARCHIVE_OK) {
      fail("opening");
    }
  } catch (...) {
    archive_read_free(a_);
    throw;
  }
}

TarReader::~TarReader() {
  Utf8Scope utf8;
  archive_read_free(a_);
}

void TarReader::fail(const std::string& what) {
  if (error_) std::rethrow_exception(error_);
  const char* msg = archive_error_string(a_);
  std::string where = last_.empty() ? "at the start" : "after entry " + last_;
  throw JobError(EIO, "archive damaged " + where + " (" + what + "): " + (msg ? msg : "libarchive error"));
}

bool TarReader::next(TarEntry& out) {
  Utf8Scope utf8;
  struct archive_entry* e = nullptr;
  int rc = archive_read_next_header(a_, &e);
  if (rc == ARCHIVE_EOF) return false;
  if (rc != ARCHIVE_OK) fail("reading an entry header");
  const char* p = archive_entry_pathname(e);  // UTF-8: we are in Utf8Scope
  if (!p) p = archive_entry_pathname_utf8(e);
  out.path = p ? p : "";
  out.regular = archive_entry_filetype(e) == AE_IFREG;
  out.size = archive_entry_size_is_set(e) ? static_cast<uint64_t>(archive_entry_size(e)) : 0;
  out.mode = archive_entry_mode(e);
  out.uid = static_cast<uint32_t>(archive_entry_uid(e));
  out.gid = static_cast<uint32_t>(archive_entry_gid(e));
  last_ = out.path;
  // Any mtime an item can have fits in int64 nanoseconds; a header beyond
  // that is damage (and must not overflow).
  int64_t ns = 0;
  if (__builtin_mul_overflow(static_cast<int64_t>(archive_entry_mtime(e)), int64_t(1000000000), &ns) ||
      __builtin_add_overflow(ns, static_cast<int64_t>(archive_entry_mtime_nsec(e)), &ns)) {
    throw JobError(EIO, "archive damaged: the mtime of " + out.path + " is out of range");
  }
  out.mtime_ns = ns;
  return true;
}

size_t TarReader::read(void* buf, size_t cap) {
  Utf8Scope utf8;
  la_ssize_t n = archive_read_data(a_, buf, cap);
  if (n < 0) fail("reading the data of " + last_);
  return static_cast<size_t>(n);
}

}  // namespace itemfs::backup
