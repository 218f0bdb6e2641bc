// CJK text for the index (declared in extract.h): is_cjk names the scripts
// written without spaces, and cjk_index_text / cjk_query_text rewrite their
// runs as overlapping bigrams, in the index and in a query alike.

#include <string>
#include <utility>
#include <vector>

#include "base/utf8.h"
#include "search/extract.h"
#include "search/fold.h"

namespace itemfs::search::detail {

bool is_cjk(uint32_t cp) {
  if (cp < 0x0E00) return false;
  if (cp <= 0x0EFF) return true;                    // Thai, Lao
  if (cp >= 0x1000 && cp <= 0x109F) return true;    // Myanmar
  if (cp >= 0x1100 && cp <= 0x11FF) return true;    // Hangul Jamo
  if (cp >= 0x1780 && cp <= 0x17FF) return true;    // Khmer
  if (cp == 0x3005 || cp == 0x3006) return true;    // 々 〆
  if (cp >= 0x3041 && cp <= 0x30FF) return cp != 0x30A0 && cp != 0x30FB;  // kana
  if (cp >= 0x3130 && cp <= 0x318F) return true;    // Hangul compatibility jamo
  if (cp >= 0x31F0 && cp <= 0x31FF) return true;    // katakana extensions
  if (cp >= 0x3400 && cp <= 0x4DBF) return true;    // CJK extension A
  if (cp >= 0x4E00 && cp <= 0x9FFF) return true;    // CJK unified ideographs
  if (cp >= 0xA960 && cp <= 0xA97F) return true;    // Hangul Jamo extended A
  if (cp >= 0xAC00 && cp <= 0xD7FF) return true;    // Hangul syllables, Jamo extended B
  if (cp >= 0xF900 && cp <= 0xFAFF) return true;    // compatibility ideographs
  if (cp >= 0xFF66 && cp <= 0xFFDC) return true;    // half-width kana and Hangul
  if (cp >= 0x20000 && cp <= 0x3134F) return true;  // ideograph extensions B..G
  return false;
}

bool is_reserved_mark(uint32_t cp) { return cp >= 0xE000 && cp <= 0xE00F; }

namespace {

// Every script is_cjk() names, and the reserved marks, are written in UTF-8
// sequences of three or four bytes, so only those are decoded (Vietnamese,
// Greek, Cyrillic... are not).
bool needs_rewrite(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    if (uint8_t(text[i]) < 0xE0) {
      ++i;
    } else {
      const uint32_t cp = next_code_point(text, i);
      if (is_cjk(cp) || is_reserved_mark(cp)) return true;
    }
  }
  return false;
}

// Emits the bigrams of `chars` (of text) separated by spaces.
void emit_bigrams(std::string& out, std::string_view text, const std::vector<std::pair<size_t, size_t>>& chars) {
  for (size_t k = 0; k + 1 < chars.size(); ++k) {
    out += ' ';
    out.append(text.substr(chars[k].first, chars[k].second + chars[k + 1].second));
    out += ' ';
  }
}

template <typename OnRun>
std::string rewrite_runs(std::string_view text, OnRun on_run) {
  std::string out;
  out.reserve(text.size() + text.size() / 2);
  std::vector<std::pair<size_t, size_t>> run;
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = i;
    const uint32_t cp = next_code_point(text, i);
    if (is_cjk(cp)) {
      run.emplace_back(start, i - start);
      continue;
    }
    if (!run.empty()) {
      on_run(out, run, /*at_end=*/false);
      run.clear();
    }
    if (is_reserved_mark(cp)) {
      out += ' ';
    } else {
      out.append(text.substr(start, i - start));
    }
  }
  if (!run.empty()) on_run(out, run, /*at_end=*/true);
  return out;
}

}  // namespace

std::string cjk_index_text(std::string_view raw) {
  // ß, ligatures: folded before anything else sees the text (search/fold.h).
  std::string folded;
  if (needs_full_fold(raw)) folded = fold_full_case(raw);
  const std::string_view text = folded.empty() ? raw : std::string_view(folded);
  if (!needs_rewrite(text)) return std::string(text);
  return rewrite_runs(text, [&](std::string& out, const std::vector<std::pair<size_t, size_t>>& run, bool) {
    emit_bigrams(out, text, run);
    out += ' ';
    out.append(text.substr(run.back().first, run.back().second));
    out += ' ';
  });
}

std::string cjk_query_text(std::string_view typed, bool* last_is_single) {
  *last_is_single = false;
  std::string folded;
  if (needs_full_fold(typed)) folded = fold_full_case(typed);
  const std::string_view word = folded.empty() ? typed : std::string_view(folded);
  if (!needs_rewrite(word)) return std::string(word);
  return rewrite_runs(word, [&](std::string& out, const std::vector<std::pair<size_t, size_t>>& run, bool at_end) {
    emit_bigrams(out, word, run);
    if (run.size() == 1 || !at_end) {
      out += ' ';
      out.append(word.substr(run.back().first, run.back().second));
      out += ' ';
    }
    if (at_end && run.size() == 1) *last_is_single = true;
  });
}

}  // namespace itemfs::search::detail
