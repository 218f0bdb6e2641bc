// Snippets (see snippets.h).

#include "search/snippets.h"

#include <algorithm>
#include <cstdint>

#include "base/utf8.h"

namespace itemfs::search::detail {

namespace {

constexpr uint8_t kWordHit = 1;
constexpr uint8_t kCjkHit = 2;

uint8_t token_flags(std::string_view folded, std::string_view original, const std::vector<HighlightTerm>& terms) {
  uint8_t f = 0;
  for (const auto& term : terms) {
    if (term.cjk) {
      if (!term.text.empty() && original.find(term.text) != std::string_view::npos) f |= kCjkHit;
    } else if (folded == term.text || (term.prefix && folded.substr(0, term.text.size()) == term.text)) {
      f |= kWordHit;
    }
  }
  return f;
}

// The byte ranges of the CJK terms inside one token, in order.
std::vector<std::pair<size_t, size_t>> cjk_ranges(std::string_view original, const std::vector<HighlightTerm>& terms) {
  std::vector<std::pair<size_t, size_t>> out;
  for (const auto& term : terms) {
    if (!term.cjk || term.text.empty()) continue;
    for (size_t at = original.find(term.text); at != std::string_view::npos;
         at = original.find(term.text, at + term.text.size())) {
      out.emplace_back(at, at + term.text.size());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

void append_clean(std::string& out, std::string_view s) {
  bool space = !out.empty() && out.back() == ' ';
  for (char c : s) {
    if (uint8_t(c) < 0x20 || c == ' ') {
      if (!space) out += ' ';
      space = true;
    } else {
      out += c;
      space = false;
    }
  }
}

bool is_ascii_word(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  });
}

// Where `word` (lower-case ASCII) first occurs in text, ignoring ASCII case.
size_t find_ascii_nocase(std::string_view text, std::string_view word) {
  const char first = word[0];
  const char upper = first >= 'a' && first <= 'z' ? char(first - 'a' + 'A') : first;
  for (size_t i = 0; i + word.size() <= text.size(); ++i) {
    if (text[i] != first && text[i] != upper) continue;
    size_t k = 1;
    for (; k < word.size(); ++k) {
      char c = text[i + k];
      if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
      if (c != word[k]) break;
    }
    if (k == word.size()) return i;
  }
  return std::string_view::npos;
}

// Where tokenizing may start: a little before the first place any term's
// letters occur as typed (ASCII terms only; a word that only occurs with
// accents or in other case forms would be missed, so then 0). *settled
// tells whether text's continuation could change the answer: it could when
// a term does not occur in text yet.
size_t snippet_scan_start(std::string_view text, const std::vector<HighlightTerm>& terms, bool* settled) {
  constexpr size_t kBefore = 256;
  *settled = true;
  if (std::any_of(terms.begin(), terms.end(), [](const auto& t) { return t.cjk || !is_ascii_word(t.text); })) return 0;
  size_t first = std::string_view::npos;
  for (const auto& term : terms) {
    const size_t at = find_ascii_nocase(text, term.text);
    if (at == std::string_view::npos) {
      *settled = false;
      return 0;
    }
    first = std::min(first, at);
  }
  if (first == std::string_view::npos || first < 2 * kBefore) return 0;
  // Start just after an ASCII separator, so no token or UTF-8 sequence is cut.
  for (size_t b = first - kBefore; b + 64 > first - kBefore && b > 0; --b) {
    const char c = text[b - 1];
    if (uint8_t(c) < 0x80 && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return b;
  }
  return 0;
}

// True when no token of text can be one of the terms: they are all ASCII
// words, none occurs in text ignoring ASCII case, and text is ASCII only (a
// token with other characters could fold into a term: "ensuréd").
bool cannot_match(std::string_view text, const std::vector<HighlightTerm>& terms) {
  for (const auto& term : terms) {
    if (term.cjk || !is_ascii_word(term.text)) return false;
    if (find_ascii_nocase(text, term.text) != std::string_view::npos) return false;
  }
  return std::all_of(text.begin(), text.end(), [](char c) { return uint8_t(c) < 0x80; });
}

}  // namespace

std::string make_snippet(Tokenizer& tok, std::string_view text, const std::vector<HighlightTerm>& terms,
                         bool* matched, SnipScratch& sc, bool* settled) {
  constexpr size_t kWindow = 24;
  constexpr size_t kLongToken = 120;
  // Tokens looked at after the first match: four windows. Every token of
  // them has to be read, inflated and tokenized before the passage can be
  // cut, so this bounds a hit's cost: at 256 a common word's 100 hits
  // inflated 2.5 KB each, nearly every short item whole; at 96, 1.1 KB.
  constexpr size_t kScanAfterHit = 96;
  text = utf8_prefix(text, kSnippetBodyCap);
  bool start_settled = false;
  const size_t scan_from = snippet_scan_start(text, terms, &start_settled);
  // A word not in the text yet as typed: no passage can settle, and a caller
  // that asks wants none (tokenizing a non-ASCII text here would be for nothing).
  if (settled && !start_settled) {
    *settled = false;
    *matched = false;
    return {};
  }
  // Nothing can match: only the start of the text is shown.
  const bool hopeless = scan_from == 0 && cannot_match(text, terms);
  sc.spans.clear();
  sc.flags.clear();
  size_t first_hit = SIZE_MAX;
  bool stopped = false;
  tok.tokenize_until(text.substr(scan_from), [&](std::string_view folded, size_t start, size_t end) {
    start += scan_from;
    end += scan_from;
    sc.spans.emplace_back(uint32_t(start), uint32_t(end));
    sc.flags.push_back(hopeless ? 0 : token_flags(folded, text.substr(start, end - start), terms));
    if (sc.flags.back() && first_hit == SIZE_MAX) first_hit = sc.flags.size() - 1;
    stopped = first_hit != SIZE_MAX && sc.flags.size() > first_hit + kScanAfterHit;
    // (one token past the window tells that the text goes on)
    if (hopeless) stopped = sc.spans.size() > kWindow;
    return !stopped;
  });
  *matched = false;
  const auto& spans = sc.spans;
  // The scan stopped after the window it needs, and no token it saw can
  // change with more text: the character after the last one (a separator)
  // lies whole in text, a UTF-8 sequence being at most 4 bytes.
  if (settled) *settled = stopped && first_hit != SIZE_MAX && spans.back().second + 4 <= text.size();
  if (spans.empty()) return {};
  auto hit = [&](size_t k) { return sc.flags[k] != 0; };
  size_t best = 0, best_count = 0, count = 0;
  for (size_t k = 0; k < spans.size(); ++k) {
    count += hit(k);
    if (k >= kWindow) count -= hit(k - kWindow);
    if (count > best_count) {
      best_count = count;
      best = k + 1 >= kWindow ? k + 1 - kWindow : 0;
    }
  }
  size_t start = 0;
  if (best_count > 0) {
    *matched = true;
    size_t first = best;
    while (!hit(first)) ++first;
    start = first >= 4 ? first - 4 : 0;
    // A run at the end of the scan: the window ends where the scan did, so
    // that it is shown whole without reading further.
    if (stopped && start + kWindow > spans.size()) start = spans.size() - kWindow;
  }
  const size_t end = std::min(spans.size(), start + kWindow);
  std::string out;
  if (start > 0 || scan_from > 0) out += "… ";
  for (size_t k = start; k < end; ++k) {
    const auto [t_start, t_end] = spans[k];
    if (k > start) append_clean(out, text.substr(spans[k - 1].second, t_start - spans[k - 1].second));
    std::string_view word = text.substr(t_start, t_end - t_start);
    if (sc.flags[k] & kWordHit) {
      out += '[';
      out += word;
      out += ']';
    } else if (sc.flags[k] & kCjkHit) {
      // Mark each range; show only the part around the first one of a long run.
      const auto ranges = cjk_ranges(word, terms);
      size_t from = 0, to = word.size();
      if (word.size() > kLongToken) {
        from = utf8_prefix(word, ranges[0].first > 40 ? ranges[0].first - 40 : 0).size();
        to = utf8_prefix(word, std::min(word.size(), ranges[0].second + 80)).size();
        if (from > 0) out += "…";
      }
      size_t at = from;
      for (const auto& [a, b] : ranges) {
        if (a < at || b > to) continue;
        out.append(word.substr(at, a - at));
        out += '[';
        out.append(word.substr(a, b - a));
        out += ']';
        at = b;
      }
      out.append(word.substr(at, to - at));
      if (to < word.size()) out += "…";
    } else if (word.size() > kLongToken) {
      out.append(utf8_prefix(word, kLongToken));
      out += "…";
    } else {
      out.append(word);
    }
  }
  if (end < spans.size() || stopped) {
    out += " …";
  } else {
    append_clean(out, utf8_prefix(text.substr(spans.back().second), 16));
    while (!out.empty() && out.back() == ' ') out.pop_back();
  }
  return out;
}


}  // namespace itemfs::search::detail
