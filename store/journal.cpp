// The journal of accepted writes (see journal.h).

#include "store/journal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace itemfs::store {

namespace {

constexpr char kFileMagic[8] = {'i', 't', 'e', 'm', 'f', 's', 'J', '1'};
constexpr size_t kHeader = Journal::kHeaderBytes;
constexpr uint32_t kRecordMagic = 0x4a524543;  // "CERJ" little-endian
constexpr size_t kRecordHead = 12;
constexpr uint8_t kPut = 1;
constexpr size_t kFixedBody = 1 + 2 + 4 * 3 + 8 * 2;

StoreError io_error(const std::string& what, const std::filesystem::path& file) {
  const int err = errno ? errno : EIO;
  return StoreError(err, what + " " + file.string() + ": " + std::strerror(err));
}

template <typename T>
void put_le(std::string& out, T v) {
  for (size_t k = 0; k < sizeof(T); ++k) out.push_back(char(uint64_t(v) >> (8 * k) & 0xff));
}

template <typename T>
T get_le(const char* p) {
  uint64_t v = 0;
  for (size_t k = 0; k < sizeof(T); ++k) v |= uint64_t(uint8_t(p[k])) << (8 * k);
  return T(v);
}

bool write_all(int fd, const char* p, size_t n) {
  while (n) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= size_t(w);
  }
  return true;
}

bool read_all(int fd, uint64_t at, char* p, size_t n) {
  while (n) {
    ssize_t r = ::pread(fd, p, n, off_t(at));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    at += uint64_t(r);
    n -= size_t(r);
  }
  return true;
}

}  // namespace

std::unique_ptr<Journal> Journal::take(const std::filesystem::path& dir) {
  const auto lock_path = dir / "journal.lock";
  int lock = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) throw io_error("cannot open", lock_path);
  if (::flock(lock, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(lock);
    if (err == EWOULDBLOCK) return nullptr;
    errno = err;
    throw io_error("cannot lock", lock_path);
  }
  std::unique_ptr<Journal> j(new Journal(dir, lock));
  j->open_file();
  return j;
}

Journal::Journal(std::filesystem::path dir, int lock_fd) : dir_(std::move(dir)), lock_fd_(lock_fd) {}

Journal::~Journal() {
  if (fd_ >= 0) ::close(fd_);
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

void Journal::open_file() {
  const auto path = dir_ / "journal";
  fd_ = ::open(path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
  if (fd_ < 0 && errno == ENOENT) {
    write_new_file(0);
    return;
  }
  if (fd_ < 0) throw io_error("cannot open", path);
  char head[kHeader];
  struct stat st {};
  if (::fstat(fd_, &st) != 0) throw io_error("cannot stat", path);
  if (uint64_t(st.st_size) < kHeader || !read_all(fd_, 0, head, kHeader) ||
      std::memcmp(head, kFileMagic, sizeof kFileMagic) != 0) {
    // Never written whole (a crash as it was made): it holds nothing.
    ::close(fd_);
    fd_ = -1;
    write_new_file(0);
    return;
  }
  start_ = get_le<uint64_t>(head + 8);
  size_ = uint64_t(st.st_size) - kHeader;
}

// A new file, made aside and renamed into place, so that a crash leaves the
// old one or the new one whole.
void Journal::write_new_file(uint64_t start) {
  const auto path = dir_ / "journal";
  const auto fresh = dir_ / "journal.new";
  int fd = ::open(fresh.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) throw io_error("cannot create", fresh);
  std::string head(kFileMagic, sizeof kFileMagic);
  put_le<uint64_t>(head, start);
  if (!write_all(fd, head.data(), head.size()) || ::rename(fresh.c_str(), path.c_str()) != 0) {
    StoreError e = io_error("cannot write", fresh);
    ::close(fd);
    ::unlink(fresh.c_str());
    throw e;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  start_ = start;
  size_ = 0;
}

std::string Journal::replay(uint64_t applied, const std::function<void(JournalRecord&)>& fn) {
  uint64_t at = 0;  // offset after the header
  std::string body;
  while (at < size_) {
    char head[kRecordHead];
    const uint64_t pos = start_ + at;
    auto damaged = [&](const std::string& why) {
      return "the journal ends in a damaged record at position " + std::to_string(pos) + " (" + why +
             "); it and the " + std::to_string(size_ - at) + " bytes after it were not applied";
    };
    if (size_ - at < kRecordHead || !read_all(fd_, kHeader + at, head, kRecordHead)) return damaged("torn header");
    const uint32_t magic = get_le<uint32_t>(head), crc = get_le<uint32_t>(head + 4), len = get_le<uint32_t>(head + 8);
    if (magic != kRecordMagic) return damaged("no record magic");
    if (len < kFixedBody || size_ - at - kRecordHead < len) return damaged("torn body");
    body.resize(len);
    if (!read_all(fd_, kHeader + at + kRecordHead, body.data(), len)) return damaged("unreadable body");
    if (uint32_t(crc32(0, reinterpret_cast<const Bytef*>(body.data()), uInt(len))) != crc)
      return damaged("checksum mismatch");
    at += kRecordHead + len;
    if (start_ + at <= applied) continue;
    const char* p = body.data();
    if (uint8_t(p[0]) != kPut) return damaged("unknown kind");
    const uint16_t id_len = get_le<uint16_t>(p + 1);
    if (kFixedBody + id_len > len) return damaged("id past the body");
    JournalRecord r;
    r.id.assign(p + 3, id_len);
    p += 3 + id_len;
    r.attrs.mode = get_le<uint32_t>(p);
    r.attrs.uid = get_le<uint32_t>(p + 4);
    r.attrs.gid = get_le<uint32_t>(p + 8);
    r.attrs.mtime_ns = get_le<int64_t>(p + 12);
    r.ino = get_le<int64_t>(p + 20);
    p += 28;
    r.bytes.assign(p, size_t(body.data() + len - p));
    r.end = start_ + at;
    fn(r);
  }
  return "";
}

uint64_t Journal::append(std::string_view id, const Attrs& attrs, int64_t ino, std::string_view bytes) {
  std::string rec;
  rec.reserve(kRecordHead + kFixedBody + id.size() + bytes.size());
  rec.resize(kRecordHead);
  rec.push_back(char(kPut));
  put_le<uint16_t>(rec, uint16_t(id.size()));
  rec.append(id);
  put_le<uint32_t>(rec, attrs.mode);
  put_le<uint32_t>(rec, attrs.uid);
  put_le<uint32_t>(rec, attrs.gid);
  put_le<int64_t>(rec, attrs.mtime_ns);
  put_le<int64_t>(rec, ino);
  rec.append(bytes);
  const size_t len = rec.size() - kRecordHead;
  const auto crc = uint32_t(crc32(0, reinterpret_cast<const Bytef*>(rec.data() + kRecordHead), uInt(len)));
  std::string head;
  put_le<uint32_t>(head, kRecordMagic);
  put_le<uint32_t>(head, crc);
  put_le<uint32_t>(head, uint32_t(len));
  rec.replace(0, kRecordHead, head);
  if (!write_all(fd_, rec.data(), rec.size())) {
    StoreError e = io_error("cannot write to", dir_ / "journal");
    // A part written is cut off again: the next record starts clean.
    if (::ftruncate(fd_, off_t(kHeader + size_)) != 0) {
    }
    throw e;
  }
  size_ += rec.size();
  return end();
}

void Journal::restart() { write_new_file(end()); }

void Journal::restart_at(uint64_t at) { write_new_file(std::max(at, end())); }

void Journal::sync() {
  if (::fdatasync(fd_) != 0) throw io_error("cannot sync", dir_ / "journal");
}

}  // namespace itemfs::store
