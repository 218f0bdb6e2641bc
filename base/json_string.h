// base/json_string: the one JSON string writer of itemfs.
//
// The contract: append_json_string() appends a string as a JSON string
// literal, quotes included, byte for byte what nlohmann::json's
// dump(-1, ' ', false, error_handler_t::replace) writes for it: '"' and '\'
// escaped, \b \f \n \r \t by name, other bytes below 0x20 as \u00XX, every
// other valid UTF-8 sequence (DEL included) as it is, and each invalid
// sequence replaced by U+FFFD. So output written by hand (search results,
// backup manifests and status) and output written through nlohmann agree,
// and the result is always valid JSON whatever the bytes given.
#pragma once

#include <string>
#include <string_view>

namespace itemfs::base {

void append_json_string(std::string& out, std::string_view s);

}  // namespace itemfs::base
