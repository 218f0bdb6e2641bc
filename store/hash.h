// The store's names for SHA-256, which is base's (base/sha256.h).
#pragma once

#include "base/sha256.h"

namespace itemfs::store {

using base::Sha256Hasher;
using base::sha256_of;

}  // namespace itemfs::store
