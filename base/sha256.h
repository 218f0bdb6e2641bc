// base/sha256: SHA-256 (through OpenSSL) and its hex form, as every part of
// itemfs names content: the store's blobs and items, backup manifests and
// archives, the import's unchanged check.
//
// The contract:
//  - Sha256Hasher hashes bytes given in any number of pieces; finish()
//    returns the digest and makes the hasher ready for new bytes.
//    sha256_of() hashes bytes in memory in one call. A failure of OpenSSL
//    (which does not happen short of running out of memory) throws
//    base::Error.
//  - Hex is lower case, two digits a byte; parse_sha256_hex() reads exactly
//    64 digits of either case and nothing else.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace itemfs::base {

using Sha256 = std::array<uint8_t, 32>;

class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;
  void update(std::string_view bytes);
  void update(const void* data, size_t size) { update(std::string_view(static_cast<const char*>(data), size)); }
  Sha256 finish();  // also resets for the next use

 private:
  EVP_MD_CTX* ctx_;
};

Sha256 sha256_of(std::string_view bytes);

// Appends `size` bytes as hex.
void append_hex(std::string& out, const uint8_t* data, size_t size);
std::string hex(const uint8_t* data, size_t size);
std::string to_hex(const Sha256& digest);
// Parses exactly 64 hex digits into `out`; false (out undefined) otherwise.
bool parse_sha256_hex(std::string_view text, Sha256& out);

}  // namespace itemfs::base
