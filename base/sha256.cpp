#include "base/sha256.h"

#include <openssl/evp.h>

#include <cerrno>

#include "base/status.h"

namespace itemfs::base {

namespace {
// OpenSSL 3 looks the algorithm up on every init unless it is fetched once.
const EVP_MD* sha256_md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md ? md : EVP_sha256();
}

// 0..15 for a hex digit, 0xff for anything else.
constexpr std::array<uint8_t, 256> kHexValue = [] {
  std::array<uint8_t, 256> t{};
  for (auto& v : t) v = 0xff;
  for (int c = '0'; c <= '9'; ++c) t[c] = static_cast<uint8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) t[c] = static_cast<uint8_t>(c - 'a' + 10);
  for (int c = 'A'; c <= 'F'; ++c) t[c] = static_cast<uint8_t>(c - 'A' + 10);
  return t;
}();
}  // namespace

Sha256Hasher::Sha256Hasher() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_, sha256_md(), nullptr) != 1) {
    EVP_MD_CTX_free(ctx_);
    throw Error(ENOMEM, "SHA-256 init failed");
  }
}

Sha256Hasher::~Sha256Hasher() { EVP_MD_CTX_free(ctx_); }

void Sha256Hasher::update(std::string_view bytes) {
  if (EVP_DigestUpdate(ctx_, bytes.data(), bytes.size()) != 1) throw Error(EIO, "SHA-256 update failed");
}

Sha256 Sha256Hasher::finish() {
  Sha256 digest{};
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx_, digest.data(), &length) != 1 || length != digest.size() ||
      EVP_DigestInit_ex(ctx_, sha256_md(), nullptr) != 1)
    throw Error(EIO, "SHA-256 final failed");
  return digest;
}

Sha256 sha256_of(std::string_view bytes) {
  Sha256 digest{};
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest.data(), &length, sha256_md(), nullptr) != 1)
    throw Error(EIO, "SHA-256 failed");
  return digest;
}

void append_hex(std::string& out, const uint8_t* data, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  const size_t at = out.size();
  out.resize(at + size * 2);
  for (size_t i = 0; i < size; ++i) {
    out[at + 2 * i] = kDigits[data[i] >> 4];
    out[at + 2 * i + 1] = kDigits[data[i] & 15];
  }
}

std::string hex(const uint8_t* data, size_t size) {
  std::string out;
  append_hex(out, data, size);
  return out;
}

std::string to_hex(const Sha256& digest) { return hex(digest.data(), digest.size()); }

bool parse_sha256_hex(std::string_view text, Sha256& out) {
  if (text.size() != 64) return false;
  uint8_t bad = 0;
  for (size_t i = 0; i < 32; ++i) {
    const uint8_t hi = kHexValue[static_cast<unsigned char>(text[2 * i])];
    const uint8_t lo = kHexValue[static_cast<unsigned char>(text[2 * i + 1])];
    bad |= hi | lo;
    out[i] = static_cast<uint8_t>(hi << 4 | (lo & 15));
  }
  return (bad & 0xf0) == 0;
}

}  // namespace itemfs::base
