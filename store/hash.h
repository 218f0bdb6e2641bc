// Incremental SHA-256 through OpenSSL EVP.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

#include "store/store.h"

typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace itemfs::store {

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

}  // namespace itemfs::store
