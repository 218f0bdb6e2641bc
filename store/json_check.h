#pragma once

#include <string_view>

#include "base/status.h"

namespace itemfs::store {
// validate_json() over bytes already in memory (faster than a stream).
base::Status validate_json_bytes(std::string_view bytes);
}  // namespace itemfs::store
