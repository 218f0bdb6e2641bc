// base/utf8: the one UTF-8 decoder of itemfs.
//
// The contract: UTF-8 is what RFC 3629 says it is: no overlong forms, no
// surrogates, nothing above U+10FFFF. This is also exactly what nlohmann's
// lexer accepts in a string and what its dump() writes unchanged, which the
// JSON string writer (base/json_string.h) and the backup manifest's fast
// parser rely on. Item ids are checked with it; the search's text extraction
// decodes with it, turning each byte that starts no valid sequence into
// U+FFFD.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace itemfs::base {

// Length (1 to 4) of the UTF-8 sequence that starts at s[i], or 0 when there
// is no valid one there (cut short included). i must be < s.size().
size_t utf8_length(std::string_view s, size_t i);

bool is_valid_utf8(std::string_view s);

// Decodes the code point at s[i] and advances i past it; a byte that starts
// no valid sequence gives U+FFFD and advances i by one. i must be < s.size().
uint32_t next_code_point(std::string_view s, size_t& i);

// Appends cp as UTF-8; a surrogate or a value above U+10FFFF as U+FFFD.
void append_utf8(std::string& out, uint32_t cp);

// The longest prefix of s, at most n bytes, that does not cut a UTF-8
// sequence.
std::string_view utf8_prefix(std::string_view s, size_t n);

}  // namespace itemfs::base
