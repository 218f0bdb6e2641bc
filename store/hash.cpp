#include "store/hash.h"

#include <openssl/evp.h>

#include <cerrno>

namespace itemfs::store {

Sha256Hasher::Sha256Hasher() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) throw StoreError(ENOMEM, "SHA-256 init failed");
}

Sha256Hasher::~Sha256Hasher() { EVP_MD_CTX_free(ctx_); }

void Sha256Hasher::update(std::string_view bytes) {
  if (EVP_DigestUpdate(ctx_, bytes.data(), bytes.size()) != 1) throw StoreError(EIO, "SHA-256 update failed");
}

Sha256 Sha256Hasher::finish() {
  Sha256 digest{};
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx_, digest.data(), &length) != 1 || length != digest.size() ||
      EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1)
    throw StoreError(EIO, "SHA-256 final failed");
  return digest;
}

Sha256 sha256_of(std::string_view bytes) {
  Sha256Hasher hasher;
  hasher.update(bytes);
  return hasher.finish();
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
