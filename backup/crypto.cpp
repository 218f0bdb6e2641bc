// Encryption of archives: the backup key, EncryptSink and DecryptSource
// (AES-256-GCM in authenticated chunks, docs/FORMAT.md §3); io.h.
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

}  // namespace itemfs::backup
