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

// ---------------------------------------------------------------- keys

Key::~Key() {
  OPENSSL_cleanse(bytes.data(), bytes.size());
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::unique_ptr<Key> load_key(const std::filesystem::path& key_file) {
  std::string raw;
  try {
    raw = read_small_file(key_file, 4096);
  } catch (const JobError& e) {
    throw JobError(EINVAL, std::string("backup key: ") + e.what());
  }
  auto key = std::make_unique<Key>();
  if (raw.size() == 32) {
    std::memcpy(key->bytes.data(), raw.data(), 32);
  } else {
    size_t b = 0, e = raw.size();
    while (b < e && std::isspace(static_cast<unsigned char>(raw[b]))) ++b;
    while (e > b && std::isspace(static_cast<unsigned char>(raw[e - 1]))) --e;
    bool ok = e - b == 64;
    for (size_t i = 0; ok && i < 32; ++i) {
      int hi = hexval(raw[b + 2 * i]), lo = hexval(raw[b + 2 * i + 1]);
      if (hi < 0 || lo < 0) ok = false;
      else key->bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
    OPENSSL_cleanse(raw.data(), raw.size());
    if (!ok) {
      throw JobError(EINVAL, "backup key " + key_file.string() + " must hold 32 raw bytes or 64 hex digits");
    }
  }
  OPENSSL_cleanse(raw.data(), raw.size());
  Sha256Hasher h;
  static const char label[] = "itemfs backup key id";
  h.update(label, sizeof label);  // including the NUL
  h.update(key->bytes.data(), key->bytes.size());
  base::Sha256 d = h.finish();
  std::memcpy(key->id.data(), d.data(), key->id.size());
  return key;
}

// ---------------------------------------------------------------- encryption

static constexpr char kEncMagic[8] = {'I', 'T', 'E', 'M', 'F', 'S', 'G', 'C'};

static void put_be64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<uint8_t>(v & 0xff);
    v >>= 8;
  }
}

static void chunk_nonce(const std::array<uint8_t, kEncHeader>& header, uint64_t counter, uint8_t nonce[12]) {
  std::memcpy(nonce, header.data() + 24, 12);
  uint8_t c[8];
  put_be64(c, counter);
  for (int i = 0; i < 8; ++i) nonce[4 + i] ^= c[i];
}

static void chunk_aad(const std::array<uint8_t, kEncHeader>& header, uint64_t counter, bool final,
                      uint8_t aad[kEncHeader + 9]) {
  std::memcpy(aad, header.data(), kEncHeader);
  put_be64(aad + kEncHeader, counter);
  aad[kEncHeader + 8] = final ? 1 : 0;
}

EncryptSink::EncryptSink(ByteSink& next, const Key& key) : next_(next), key_(key), ctx_(EVP_CIPHER_CTX_new()) {
  try {
    if (!ctx_ || EVP_EncryptInit_ex(ctx_, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) != 1) {
      throw JobError(EIO, "cannot initialise AES-256-GCM");
    }
    std::memcpy(header_.data(), kEncMagic, 8);
    header_[8] = 1;  // format version
    header_[9] = 1;  // cipher: AES-256-GCM
    header_[10] = header_[11] = 0;
    uint32_t cs = kEncChunk;
    header_[12] = static_cast<uint8_t>(cs >> 24);
    header_[13] = static_cast<uint8_t>(cs >> 16);
    header_[14] = static_cast<uint8_t>(cs >> 8);
    header_[15] = static_cast<uint8_t>(cs);
    std::memcpy(header_.data() + 16, key.id.data(), 8);
    if (RAND_bytes(header_.data() + 24, 12) != 1) throw JobError(EIO, "no random bytes for the file nonce");
    next_.write(header_.data(), header_.size());
    plain_.reserve(kEncChunk);
    cipher_.resize(kEncChunk + kEncTag);
  } catch (...) {
    EVP_CIPHER_CTX_free(ctx_);
    throw;
  }
}

EncryptSink::~EncryptSink() {
  OPENSSL_cleanse(plain_.data(), plain_.size());
  EVP_CIPHER_CTX_free(ctx_);
}

void EncryptSink::seal(bool final) {
  uint8_t nonce[12];
  uint8_t aad[kEncHeader + 9];
  chunk_nonce(header_, counter_, nonce);
  chunk_aad(header_, counter_, final, aad);
  int len = 0, fin = 0;
  if (EVP_EncryptInit_ex(ctx_, nullptr, nullptr, key_.bytes.data(), nonce) != 1 ||
      EVP_EncryptUpdate(ctx_, nullptr, &len, aad, sizeof aad) != 1 ||
      EVP_EncryptUpdate(ctx_, cipher_.data(), &len, plain_.data(), static_cast<int>(plain_.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx_, cipher_.data() + len, &fin) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_GET_TAG, kEncTag, cipher_.data() + len + fin) != 1) {
    throw JobError(EIO, "AES-256-GCM encryption failed");
  }
  next_.write(cipher_.data(), static_cast<size_t>(len + fin) + kEncTag);
  ++counter_;
  plain_.clear();
}

void EncryptSink::write(const void* data, size_t size) {
  if (finished_) throw JobError(EIO, "write after finish (encryption)");
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    // A full chunk is sealed only when more data follows, so that the final
    // chunk (flagged in its AAD) is always shorter than kEncChunk.
    if (plain_.size() == kEncChunk) seal(false);
    size_t take = std::min(size, kEncChunk - plain_.size());
    plain_.insert(plain_.end(), p, p + take);
    p += take;
    size -= take;
  }
}

void EncryptSink::finish() {
  if (finished_) return;
  if (plain_.size() == kEncChunk) seal(false);
  seal(true);
  finished_ = true;
  next_.finish();
}

static size_t read_full(ByteSource& src, uint8_t* buf, size_t want) {
  size_t got = 0;
  while (got < want) {
    size_t n = src.read(buf + got, want - got);
    if (n == 0) break;
    got += n;
  }
  return got;
}

DecryptSource::DecryptSource(ByteSource& raw, const Key& key, std::string name)
    : raw_(raw), key_(key), name_(std::move(name)), ctx_(EVP_CIPHER_CTX_new()) {
  try {
    if (!ctx_ || EVP_DecryptInit_ex(ctx_, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) != 1) {
      throw JobError(EIO, "cannot initialise AES-256-GCM");
    }
    if (read_full(raw_, header_.data(), header_.size()) != header_.size() ||
        std::memcmp(header_.data(), kEncMagic, 8) != 0) {
      throw JobError(EIO, name_ + ": not an itemfs encrypted archive (bad header)");
    }
    if (header_[8] != 1 || header_[9] != 1) {
      throw JobError(EIO, name_ + ": unsupported encryption format version " + std::to_string(header_[8]));
    }
    chunk_size_ = size_t(header_[12]) << 24 | size_t(header_[13]) << 16 | size_t(header_[14]) << 8 | header_[15];
    if (chunk_size_ < 1024 || chunk_size_ > (16u << 20)) throw JobError(EIO, name_ + ": bad chunk size in header");
    if (std::memcmp(header_.data() + 16, key.id.data(), 8) != 0) {
      throw JobError(EACCES, name_ + ": encrypted with another key (key id " + hex(header_.data() + 16, 8) +
                                 ", the given key is " + hex(key.id.data(), 8) + ")");
    }
    raw_buf_.resize(chunk_size_ + kEncTag);
    plain_.resize(chunk_size_);
    plain_.clear();
  } catch (...) {
    EVP_CIPHER_CTX_free(ctx_);
    throw;
  }
}

DecryptSource::~DecryptSource() {
  OPENSSL_cleanse(plain_.data(), plain_.size());
  EVP_CIPHER_CTX_free(ctx_);
}

void DecryptSource::open_chunk() {
  size_t got = read_full(raw_, raw_buf_.data(), raw_buf_.size());
  uint64_t offset = kEncHeader + counter_ * (chunk_size_ + kEncTag);
  if (got < kEncTag) {
    throw JobError(EIO, name_ + ": truncated (encrypted chunk " + std::to_string(counter_) + " at byte " +
                            std::to_string(offset) + " is incomplete or missing)");
  }
  bool final = got < raw_buf_.size();
  size_t clen = got - kEncTag;
  uint8_t nonce[12];
  uint8_t aad[kEncHeader + 9];
  chunk_nonce(header_, counter_, nonce);
  chunk_aad(header_, counter_, final, aad);
  plain_.resize(chunk_size_);
  int len = 0, fin = 0;
  bool ok = EVP_DecryptInit_ex(ctx_, nullptr, nullptr, key_.bytes.data(), nonce) == 1 &&
            EVP_DecryptUpdate(ctx_, nullptr, &len, aad, sizeof aad) == 1 &&
            EVP_DecryptUpdate(ctx_, plain_.data(), &len, raw_buf_.data(), static_cast<int>(clen)) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_SET_TAG, kEncTag, raw_buf_.data() + clen) == 1 &&
            EVP_DecryptFinal_ex(ctx_, plain_.data() + len, &fin) == 1;
  if (!ok) {
    OPENSSL_cleanse(plain_.data(), plain_.size());
    throw JobError(EIO, name_ + ": encrypted chunk " + std::to_string(counter_) + " at byte " +
                            std::to_string(offset) +
                            " failed authentication (tampered, corrupted or truncated)");
  }
  plain_.resize(static_cast<size_t>(len + fin));
  pos_ = 0;
  ++counter_;
  if (final) {
    uint8_t extra;
    if (raw_.read(&extra, 1) != 0) throw JobError(EIO, name_ + ": data after the final encrypted chunk");
    done_ = true;
  }
}

size_t DecryptSource::read(void* buf, size_t cap) {
  while (pos_ == plain_.size()) {
    if (done_) return 0;
    open_chunk();
  }
  size_t n = std::min(cap, plain_.size() - pos_);
  std::memcpy(buf, plain_.data() + pos_, n);
  pos_ += n;
  return n;
}

std::string archive_key_id(const std::filesystem::path& path) {
  int fd = -1;
  try {
    fd = open_regular(path);
  } catch (const JobError&) {
    return "";
  }
  std::array<uint8_t, kEncHeader> header{};
  size_t got = 0;
  while (got < header.size()) {
    ssize_t n = ::read(fd, header.data() + got, header.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  if (got != header.size() || std::memcmp(header.data(), kEncMagic, 8) != 0) return "";
  return hex(header.data() + 16, 8);
}

bool looks_encrypted(const std::filesystem::path& path) {
  int fd = -1;
  try {
    fd = open_regular(path);
  } catch (const JobError&) {
    return false;
  }
  char magic[8];
  bool yes = ::read(fd, magic, 8) == 8 && std::memcmp(magic, kEncMagic, 8) == 0;
  ::close(fd);
  return yes;
}

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
