// The store's names for the UTF-8 check, which is base's (base/utf8.h).
#pragma once

#include "base/utf8.h"

namespace itemfs::store {

using base::is_valid_utf8;
using base::utf8_length;

}  // namespace itemfs::store
