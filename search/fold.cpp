#include "search/fold.h"

#include <cstdint>

namespace itemfs::search::detail {

namespace {

struct Folding {
  std::string_view from;  // UTF-8
  std::string_view to;
};

// Lead bytes: U+00DF (C3), U+0149 (C5), U+1E9E (E1), U+FB00..U+FB06 (EF).
constexpr Folding kFoldings[] = {
    {"\xC3\x9F", "ss"},          // ß
    {"\xE1\xBA\x9E", "ss"},      // ẞ
    {"\xC5\x89", "\xCA\xBCn"},   // ŉ -> ʼn
    {"\xEF\xAC\x80", "ff"},      // ﬀ
    {"\xEF\xAC\x81", "fi"},      // ﬁ
    {"\xEF\xAC\x82", "fl"},      // ﬂ
    {"\xEF\xAC\x83", "ffi"},     // ﬃ
    {"\xEF\xAC\x84", "ffl"},     // ﬄ
    {"\xEF\xAC\x85", "st"},      // ﬅ
    {"\xEF\xAC\x86", "st"},      // ﬆ
};

bool is_lead(uint8_t c) { return c == 0xC3 || c == 0xC5 || c == 0xE1 || c == 0xEF; }

// The folding that starts at text[i], or nullptr.
const Folding* folding_at(std::string_view text, size_t i) {
  for (const Folding& f : kFoldings)
    if (text.substr(i, f.from.size()) == f.from) return &f;
  return nullptr;
}

}  // namespace

bool needs_full_fold(std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i)
    if (is_lead(uint8_t(text[i])) && folding_at(text, i)) return true;
  return false;
}

std::string fold_full_case(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (size_t i = 0; i < text.size();) {
    if (is_lead(uint8_t(text[i]))) {
      if (const Folding* f = folding_at(text, i)) {
        out += f->to;
        i += f->from.size();
        continue;
      }
    }
    out += text[i++];
  }
  return out;
}

}  // namespace itemfs::search::detail
