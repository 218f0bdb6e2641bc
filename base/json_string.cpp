#include "base/json_string.h"

#include <cstdint>
#include <nlohmann/json.hpp>

#include "base/utf8.h"

namespace itemfs::base {

void append_json_string(std::string& out, std::string_view s) {
  if (!is_valid_utf8(s)) {
    // Rare (item text is checked JSON, ids are checked UTF-8): let nlohmann
    // decide where each replacement goes, so the two never differ.
    using json = nlohmann::json;
    out += json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
    return;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  size_t plain = 0;  // start of the bytes not yet copied
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<uint8_t>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.substr(plain, i - plain));
    plain = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xF];
    }
  }
  out.append(s.substr(plain));
  out += '"';
}

}  // namespace itemfs::base
