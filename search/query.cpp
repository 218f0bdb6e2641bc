#include "search/query.h"

#include <algorithm>
#include <cerrno>

#include "search/extract.h"

namespace itemfs::search::detail {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

base::Status bad(std::string message) { return base::Status::error(EINVAL, std::move(message)); }

// "character N" of `text` for the byte at `byte`: N counts code points from
// 1, so the position a message names is the one a person counts.
std::string character_at(std::string_view text, size_t byte) {
  size_t before = 0;  // code points before `byte`: bytes that do not continue one
  for (size_t i = 0; i < byte && i < text.size(); ++i)
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) ++before;
  return "character " + std::to_string(before + 1);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  }
  return out;
}

bool valid_field_name(std::string_view name) {
  if (name.empty() || name.size() > 200 || name.back() == '.') return false;
  const char c0 = name[0];
  if (!((c0 >= 'a' && c0 <= 'z') || (c0 >= 'A' && c0 <= 'Z') || c0 == '_' || c0 == '@')) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '.' || c == '-' || c == '@';
    if (!ok) return false;
  }
  return true;
}

bool has_cjk(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (is_cjk(next_code_point(s, i))) return true;
  }
  return false;
}

// One term of the query before OR grouping.
struct Atom {
  bool is_or = false;
  bool negated = false;
  bool option = false;  // limit:, sort:, after:, before: (already applied)
  std::string fts;      // "" when the text had nothing searchable
  Phrase phrase;        // what fts stands for
  std::vector<HighlightTerm> highlight;
};

void add_highlight(Tokenizer& tok, std::string_view text, bool prefix, std::vector<HighlightTerm>& out) {
  std::vector<std::pair<std::string, bool>> words;  // (folded or CJK text, cjk)
  tok.tokenize(text, [&](std::string_view folded, size_t start, size_t end) {
    const std::string_view original = text.substr(start, end - start);
    if (!has_cjk(original)) {
      words.emplace_back(std::string(folded), false);
      return;
    }
    // Split mixed tokens into CJK runs (kept as written) and other parts.
    std::string run;
    std::string other;
    auto flush_other = [&] {
      if (!other.empty()) {
        for (auto& t : tok.tokens(other)) words.emplace_back(std::move(t), false);
        other.clear();
      }
    };
    for (size_t i = 0; i < original.size();) {
      const size_t s = i;
      const uint32_t cp = next_code_point(original, i);
      if (is_cjk(cp)) {
        flush_other();
        run.append(original.substr(s, i - s));
      } else {
        if (!run.empty()) words.emplace_back(std::move(run), true), run.clear();
        other.append(original.substr(s, i - s));
      }
    }
    if (!run.empty()) words.emplace_back(std::move(run), true);
    flush_other();
  });
  for (size_t k = 0; k < words.size(); ++k) {
    out.push_back(HighlightTerm{words[k].first, prefix && k + 1 == words.size() && !words[k].second, words[k].second});
  }
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t k = 0; k < parts.size(); ++k) {
    if (k) out += sep;
    out += parts[k];
  }
  return out;
}

}  // namespace

std::string fts_phrase(const std::vector<std::string>& tokens) {
  std::string out = "\"";
  for (size_t k = 0; k < tokens.size(); ++k) {
    if (k) out += ' ';
    for (char c : tokens[k]) {
      if (c == '"') out += '"';
      out += c;
    }
  }
  out += '"';
  return out;
}

std::vector<std::string> query_tokens(Tokenizer& tok, std::string_view text, bool* last_is_single_cjk) {
  return tok.tokens(cjk_query_text(text, last_is_single_cjk));
}

namespace {

std::string_view word_of(const Phrase& p, size_t k) { return std::string_view(p.tokens.at(k)).substr(p.mark.size()); }
bool is_prefix_token(const Phrase& p, size_t k) { return p.prefix && k + 1 == p.tokens.size(); }
bool token_has_bucket(const Phrase& p, size_t k) {
  const std::string_view w = word_of(p, k);
  return is_prefix_token(p, k) ? may_start_identifier(w) : is_identifier(w);
}
// A prefix no longer than a first bucket is in every row with a first
// bucket it starts: such rows need no check.
bool bucket_is_certain(const Phrase& p, size_t k) {
  return is_prefix_token(p, k) && word_of(p, k).size() <= kBucketChars;
}
std::string lead(const Phrase& p, bool title) { return (title ? std::string(kTitleMark) : std::string()) + p.mark; }

std::string plain_fts(const Phrase& p, size_t k, bool title) {
  return fts_phrase({index_term(p, k, title)}) + (is_prefix_token(p, k) ? " *" : "");
}

// An identifier is in the rows with both its buckets; a prefix of one in
// those with its first bucket (a prefix shorter than a bucket's characters:
// with any first bucket it starts).
std::string bucket_fts(const Phrase& p, size_t k, bool title) {
  const std::string_view w = word_of(p, k);
  const std::string l = lead(p, title);
  if (!is_prefix_token(p, k)) {
    return "(" + fts_phrase({l + bucket_of(w)}) + " AND " + fts_phrase({l + bucket_end_of(w)}) + ")";
  }
  return fts_phrase({l + bucket_of(w)}) + (w.size() < kBucketChars ? " *" : "");
}

bool is_title_only(const Phrase& p) { return p.columns == kTitleColumn; }

}  // namespace

std::string index_term(const Phrase& p, size_t k, bool title) { return lead(p, title) + std::string(word_of(p, k)); }

bool is_plain_term(const Phrase& p, size_t k) { return !is_prefix_token(p, k) && !token_has_bucket(p, k); }

std::string token_fts(const Phrase& p, size_t k, bool title) {
  if (!token_has_bucket(p, k)) return plain_fts(p, k, title);
  if (!is_prefix_token(p, k)) return bucket_fts(p, k, title);
  return "(" + plain_fts(p, k, title) + " OR " + bucket_fts(p, k, title) + ")";
}

bool has_bucket(const Phrase& p) {
  for (size_t k = 0; k < p.tokens.size(); ++k) {
    if (token_has_bucket(p, k) && !bucket_is_certain(p, k)) return true;
  }
  return false;
}

std::string bucket_rows_fts(const Phrase& p) { return bucket_fts(p, 0, is_title_only(p)); }

std::string bucket_only_fts(const Phrase& p) {
  if (!is_prefix_token(p, 0)) return bucket_rows_fts(p);
  return bucket_rows_fts(p) + " NOT " + plain_fts(p, 0, is_title_only(p));
}

std::string certain_fts(const Phrase& p) {
  if (p.tokens.size() != 1) return "";
  // content: where the word is not in the title, it is in the body.
  if (!has_bucket(p)) return is_body_word(p) ? "(" + phrase_fts(p) + " NOT " + title_word_fts(p) + ")" : phrase_fts(p);
  if (!is_prefix_token(p, 0)) return "";
  const std::string plain = plain_fts(p, 0, is_title_only(p));
  return is_body_word(p) ? "(" + plain + " NOT " + plain_fts(p, 0, true) + ")" : plain;
}

// The FTS5 expression for a phrase. The index has one column and keeps
// neither positions nor columns: the words of the title are in it twice, as
// themselves and as kTitleMark + word. So title: looks for the marked tokens
// and everything else for the plain ones (content: cannot tell the body from
// the title: matches() checks). One token is exact; several are loosened to
// all of them (matches() checks).
std::string phrase_fts(const Phrase& p) {
  const bool title = is_title_only(p);
  if (p.tokens.size() == 1) return token_fts(p, 0, title);
  std::string out = "(";
  for (size_t k = 0; k < p.tokens.size(); ++k) {
    if (k) out += " AND ";
    out += token_fts(p, k, title);
  }
  return out + ")";
}

bool is_body_word(const Phrase& p) { return p.tokens.size() == 1 && p.columns == kBodyColumn; }

std::string title_word_fts(const Phrase& p) { return token_fts(p, 0, true); }

namespace {
bool needs_check(const Phrase& p) { return p.tokens.size() > 1 || p.columns == kBodyColumn || has_bucket(p); }
}  // namespace

bool phrase_matches(const Phrase& p, const ColumnTokens& columns) {
  const size_t n = p.tokens.size();
  if (n == 0) return false;
  for (size_t c = 0; c < columns.size() && c < 3; ++c) {
    if (!(p.columns & (1u << c))) continue;
    const auto& toks = columns[c];
    for (size_t i = 0; i + n <= toks.size(); ++i) {
      size_t k = 0;
      for (; k + 1 < n; ++k) {
        if (toks[i + k] != p.tokens[k]) break;
      }
      if (k + 1 < n) continue;
      const std::string& last = toks[i + k];
      if (p.prefix ? last.compare(0, p.tokens[k].size(), p.tokens[k]) == 0 : last == p.tokens[k]) return true;
    }
  }
  return false;
}

bool Query::matches(const ColumnTokens& columns) const {
  for (const auto& group : all) {
    if (std::none_of(group.begin(), group.end(), [&](const Phrase& p) { return phrase_matches(p, columns); })) {
      return false;
    }
  }
  return std::none_of(none.begin(), none.end(), [&](const Phrase& p) { return phrase_matches(p, columns); });
}

bool is_reserved_field(std::string_view n) {
  static constexpr std::string_view kReserved[] = {"title", "content", "body",     "text",  "author", "authors",
                                                   "tag",   "tags",    "host",     "site",  "lang",   "language",
                                                   "limit", "sort",    "after",    "before"};
  return std::find(std::begin(kReserved), std::end(kReserved), n) != std::end(kReserved);
}

std::string Query::match() const {
  if (negative.empty()) return positive;
  return "(" + positive + ") NOT (" + negative + ")";
}

// A query is a directory name, which cannot hold '/': %2F stands for it
// (url:example.com%2Fdocs), and %25 for a '%' itself. Nothing else is
// decoded. origin[i] is the byte of `text` that decoded byte i came from.
std::string decode_slashes(std::string_view text, std::vector<size_t>& origin) {
  std::string out;
  out.reserve(text.size());
  origin.clear();
  for (size_t i = 0; i < text.size(); ++i) {
    origin.push_back(i);
    const bool escape = text[i] == '%' && i + 2 < text.size() && text[i + 1] == '2';
    if (escape && (text[i + 2] == 'F' || text[i + 2] == 'f')) {
      out += '/';
      i += 2;
    } else if (escape && text[i + 2] == '5') {
      out += '%';
      i += 2;
    } else {
      out += text[i];
    }
  }
  origin.push_back(text.size());
  return out;
}

base::Status parse_query(std::string_view text, Tokenizer& tok, Query& out) {
  out = Query{};
  // Positions in messages are the typed text's, before %2F is decoded.
  const std::string_view typed = text;
  std::string decoded;
  std::vector<size_t> origin;
  if (text.find('%') != std::string_view::npos) {
    decoded = decode_slashes(text, origin);
    text = decoded;
  }
  auto at = [&](size_t byte) { return character_at(typed, origin.empty() ? byte : origin[std::min(byte, origin.size() - 1)]); };
  if (text.size() > kMaxQueryBytes) return bad("the query is longer than 4096 bytes");
  for (char c : text) {
    if (c == '\0') return bad("the query contains a NUL byte");
  }
  std::vector<Atom> atoms;
  bool have_limit = false, have_sort = false;
  size_t pos = 0;
  const size_t n = text.size();

  // Builds the FTS5 text of a word or phrase searched in `column`, or among
  // the values of a field when `field_marker` is set.
  auto text_term = [&](Atom& atom, std::string_view value, bool prefix, unsigned columns,
                       const std::string& field_marker, bool highlight) {
    bool single = false;
    std::vector<std::string> tokens = query_tokens(tok, value, &single);
    if (tokens.empty()) return;
    if (single) prefix = true;
    // A field's values are indexed as marker+token, one token each.
    for (auto& t : tokens) t.insert(0, field_marker);
    atom.phrase = Phrase{columns, std::move(tokens), prefix, field_marker};
    atom.fts = phrase_fts(atom.phrase);
    if (highlight && !atom.negated) add_highlight(tok, value, prefix, atom.highlight);
  };

  while (true) {
    while (pos < n && is_space(text[pos])) ++pos;
    if (pos >= n) break;
    if (atoms.size() >= kMaxTerms) return bad("the query has too many terms (at most 64)");
    Atom atom;
    const size_t start = pos;
    if (text[pos] == '-') {
      if (pos + 1 >= n || is_space(text[pos + 1])) {
        return bad("'-' at " + at(start) + " must be followed by a word to exclude");
      }
      atom.negated = true;
      ++pos;
    }
    // A phrase, possibly as the value of field:"...".
    auto read_phrase = [&](std::string& phrase, bool& prefix) -> base::Status {
      const size_t open = pos;
      const size_t close = text.find('"', pos + 1);
      if (close == std::string_view::npos) {
        return bad("unbalanced quote: the phrase opened at " + at(open) +
                   " is not closed");
      }
      phrase = std::string(text.substr(open + 1, close - open - 1));
      pos = close + 1;
      prefix = pos < n && text[pos] == '*';
      if (prefix) ++pos;
      return base::Status::success();
    };
    if (text[pos] == '"') {
      std::string phrase;
      bool prefix = false;
      if (auto st = read_phrase(phrase, prefix); !st.ok()) return st;
      text_term(atom, phrase, prefix, kTitleColumn | kBodyColumn, "", true);
      atoms.push_back(std::move(atom));
      continue;
    }
    const size_t word_start = pos;
    size_t end = pos;
    while (end < n && !is_space(text[end]) && text[end] != '"') ++end;
    std::string_view word = text.substr(pos, end - pos);
    pos = end;
    if (word.empty()) return bad("'-' at " + at(start) + " must be followed by a word to exclude");

    if (word == "OR" || word == "AND" || word == "NOT" || word == "NEAR" || word == "|" || word == "||" || word == "&&") {
      if (word == "OR" && !atom.negated) {
        atom.is_or = true;
        atoms.push_back(std::move(atom));
        continue;
      }
      if (word == "AND" && !atom.negated) continue;  // implied
      if (word == "NOT") return bad("unknown operator NOT: put '-' before a word to exclude it (-word)");
      return bad("unknown operator " + std::string(word) + " at " + at(start) +
                 ": words are combined with AND by default, or with OR");
    }
    if (word.front() == '(' || word.back() == ')') {
      return bad("unknown operator '" + std::string(word.front() == '(' ? "(" : ")") + "' at " +
                 at(start) + ": parentheses are not supported; OR joins the terms next to it");
    }

    const size_t colon = word.find(':');
    const bool is_field = colon != std::string_view::npos && colon > 0 && valid_field_name(word.substr(0, colon)) &&
                          word.substr(colon + 1, 2) != "//";
    if (!is_field) {
      bool prefix = false;
      if (word.back() == '*') {
        word.remove_suffix(1);
        prefix = true;
      }
      if (size_t star = word.find('*'); star != std::string_view::npos || (prefix && word.empty())) {
        const size_t star_at = prefix && word.empty() ? word_start : word_start + star;
        return bad("'*' at " + at(star_at) + " is only allowed at the end of a word (prefix*)");
      }
      text_term(atom, word, prefix, kTitleColumn | kBodyColumn, "", true);
      atoms.push_back(std::move(atom));
      continue;
    }

    const std::string name = lower(word.substr(0, colon));
    std::string value(word.substr(colon + 1));
    bool prefix = false;
    bool quoted = false;
    if (value.empty() && pos < n && text[pos] == '"') {
      if (auto st = read_phrase(value, prefix); !st.ok()) return st;
      quoted = true;
    }
    if (value.empty()) {
      return bad("the filter " + name + ": at " + at(start) + " has no value (" + name +
                 ":word or " + name + ":\"some words\")");
    }
    if (!quoted && value.back() == '*') {
      value.pop_back();
      prefix = true;
    }
    if (size_t star = value.find('*'); !quoted && (value.empty() || star != std::string::npos)) {
      // The value starts right after the colon; an empty one was all '*'.
      const size_t star_at = word_start + colon + 1 + (value.empty() ? 0 : star);
      return bad("'*' at " + at(star_at) + " is only allowed at the end of a word (prefix*)");
    }
    if (name == "limit" || name == "sort" || name == "after" || name == "before") {
      if (atom.negated) return bad("'-' cannot be used with " + name + ":");
      if (prefix || quoted) return bad(name + ": takes a plain value, not a phrase or prefix");
      atom.option = true;
      if (name == "limit") {
        if (have_limit) return bad("limit: is given twice");
        have_limit = true;
        uint64_t v = 0;
        bool ok = value.size() <= 6;
        for (char c : value) ok = ok && c >= '0' && c <= '9';
        if (ok) v = std::stoull(value);
        if (!ok || v < 1 || v > kMaxLimit) return bad("limit: takes a number from 1 to 10000, not '" + value + "'");
        out.limit = v;
      } else if (name == "sort") {
        if (have_sort) return bad("sort: is given twice");
        have_sort = true;
        const std::string v = lower(value);
        if (v == "date") {
          out.sort_date = true;
        } else if (v != "score") {
          return bad("sort: takes date or score, not '" + value + "'");
        }
      } else {
        auto d = parse_date(value);
        if (!d) {
          return bad(name + ": takes a date such as 2024-03-01 (or 2024, 2024-03, 2024-03-01T12:00:00Z), not '" +
                     value + "'");
        }
        if (name == "after") {
          if (out.after) return bad("after: is given twice");
          out.after = d;
        } else {
          // before:2024 and before:2024-03 mean before the start of that year / month.
          if (out.before) return bad("before: is given twice");
          out.before = d;
        }
      }
      atoms.push_back(std::move(atom));
      continue;
    }
    if (name == "title") {
      text_term(atom, value, prefix, kTitleColumn, "", true);
    } else if (name == "content" || name == "body" || name == "text") {
      text_term(atom, value, prefix, kBodyColumn, "", true);
    } else if (name == "author" || name == "authors") {
      text_term(atom, value, prefix, kMetaColumn, marker("@author"), false);
    } else if (name == "tag" || name == "tags") {
      text_term(atom, value, prefix, kMetaColumn, marker("@tag"), false);
    } else if (name == "host" || name == "site") {
      std::string host = value.find("://") != std::string::npos ? host_of_url(value) : lower(value);
      while (!host.empty() && host.back() == '.') host.pop_back();
      if (prefix || host.empty()) return bad("host: takes a host name such as example.com, not '" + value + "'");
      atom.phrase = Phrase{kMetaColumn, {marker("host=" + host)}, false};
      atom.fts = phrase_fts(atom.phrase);
    } else if (name == "lang" || name == "language") {
      if (prefix) return bad("lang: takes a language code such as en or pt-br, not a prefix");
      atom.phrase = Phrase{kMetaColumn, {marker("lang=" + lower(value))}, false};
      atom.fts = phrase_fts(atom.phrase);
    } else {
      text_term(atom, value, prefix, kMetaColumn, marker("p:" + name), false);
    }
    atoms.push_back(std::move(atom));
  }

  if (atoms.empty()) return bad("the query is empty");

  // Group terms joined by OR; everything else is ANDed.
  std::vector<std::vector<Atom*>> groups;
  for (size_t k = 0; k < atoms.size(); ++k) {
    if (atoms[k].is_or) {
      if (k == 0 || k + 1 == atoms.size() || atoms[k - 1].is_or || atoms[k + 1].is_or) {
        return bad("OR needs a term on each side");
      }
      continue;
    }
    if (k > 0 && atoms[k - 1].is_or) {
      groups.back().push_back(&atoms[k]);
    } else {
      groups.push_back({&atoms[k]});
    }
  }
  std::vector<std::string> positive;
  std::vector<std::string> negative;
  bool any_searchable = false;
  for (auto& group : groups) {
    if (group.size() > 1) {
      for (Atom* a : group) {
        if (a->negated || a->option) {
          return bad("-word, limit:, sort:, after: and before: cannot be joined with OR");
        }
      }
    }
    std::vector<std::string> alts;
    std::vector<Phrase> phrases;
    for (Atom* a : group) {
      if (a->option) continue;
      if (a->fts.empty()) continue;
      any_searchable = true;
      if (needs_check(a->phrase)) out.exact = true;
      if (a->negated) {
        // What the index cannot exclude (a loosened phrase, what it holds
        // only as buckets), matches() does.
        if (std::string certain = certain_fts(a->phrase); !certain.empty()) negative.push_back(std::move(certain));
        out.none.push_back(a->phrase);
      } else {
        alts.push_back(a->fts);
        phrases.push_back(a->phrase);
        for (auto& h : a->highlight) out.highlight.push_back(std::move(h));
      }
    }
    if (!phrases.empty()) out.all.push_back(std::move(phrases));
    if (alts.size() == 1) {
      positive.push_back("(" + alts[0] + ")");
    } else if (alts.size() > 1) {
      positive.push_back("(" + join(alts, " OR ") + ")");
    }
  }
  out.positive = join(positive, " AND ");
  out.negative = join(negative, " OR ");
  if (out.positive.empty() && !out.after && !out.before) {
    if (!out.none.empty()) return bad("the query only excludes words; add a word or filter to search for");
    if (!any_searchable) return bad("the query has no words to search for");
    return bad("the query has nothing to search for");
  }
  return base::Status::success();
}

}  // namespace itemfs::search::detail
