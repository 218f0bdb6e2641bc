#pragma once

#include <string_view>

#include "store/store.h"

namespace itemfs::store {
// validate_json() over bytes already in memory (faster than a stream).
Status validate_json_bytes(std::string_view bytes);
}  // namespace itemfs::store
