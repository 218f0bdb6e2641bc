#pragma once
// UTF-8 as RFC 3629 has it: no overlong forms, no surrogates, nothing above
// U+10FFFF. This is also exactly what nlohmann's lexer accepts and what its
// dump() writes unchanged, which the search's JSON writer and the backup
// manifest's fast parser rely on.

#include <cstddef>
#include <string_view>

namespace itemfs::store {

// Length (1 to 4) of the UTF-8 sequence that starts at s[i], or 0 when there
// is no valid one there (cut short included). i must be < s.size().
size_t utf8_length(std::string_view s, size_t i);

bool is_valid_utf8(std::string_view s);

}  // namespace itemfs::store
