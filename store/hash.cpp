#include "store/hash.h"

#include <openssl/evp.h>

#include <cerrno>

namespace itemfs::store {

namespace {
// OpenSSL 3 looks the algorithm up on every init unless it is fetched once.
const EVP_MD* sha256_md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md ? md : EVP_sha256();
}
}  // namespace

Sha256Hasher::Sha256Hasher() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_, sha256_md(), nullptr) != 1) throw StoreError(ENOMEM, "SHA-256 init failed");
}

Sha256Hasher::~Sha256Hasher() { EVP_MD_CTX_free(ctx_); }

void Sha256Hasher::update(std::string_view bytes) {
  if (EVP_DigestUpdate(ctx_, bytes.data(), bytes.size()) != 1) throw StoreError(EIO, "SHA-256 update failed");
}

Sha256 Sha256Hasher::finish() {
  Sha256 digest{};
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx_, digest.data(), &length) != 1 || length != digest.size() ||
      EVP_DigestInit_ex(ctx_, sha256_md(), nullptr) != 1)
    throw StoreError(EIO, "SHA-256 final failed");
  return digest;
}

Sha256 sha256_of(std::string_view bytes) {
  Sha256 digest{};
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest.data(), &length, sha256_md(), nullptr) != 1)
    throw StoreError(EIO, "SHA-256 failed");
  return digest;
}

std::string to_hex(const Sha256& digest) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (uint8_t byte : digest) {
    out.push_back(kDigits[byte >> 4]);
    out.push_back(kDigits[byte & 15]);
  }
  return out;
}

}  // namespace itemfs::store
