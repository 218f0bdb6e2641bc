// Row building (see row.h).

#include "search/row.h"

#include <algorithm>
#include <bit>

namespace itemfs::search::detail {

// Octaves of the bytes of text (title and body) an item has: 0 below 32
// bytes, then 32-63, 64-127, ..., 15 from 512 KiB.
int length_class(size_t bytes) { return std::clamp(int(std::bit_width(bytes)) - 5, 0, kLengthClasses - 1); }

// A length in the middle of class c.
double class_length(int c) { return c == 0 ? 16.0 : double(int64_t(24) << c); }


std::string normal_lang(std::string lang) {
  std::replace(lang.begin(), lang.end(), '_', '-');
  return lang;
}

namespace {

// The token of length class c.
std::string length_token(int c) {
  std::string t(kLengthMark);
  t += char('a' + c);
  return t;
}

// Whether tokens are written as the index holds them (identifiers as their
// buckets) or as they are (for checking candidates word for word).
enum class Form { kIndexed, kExact };

// lead (a title or field marker) + token, or for an identifier in the
// index, its two bucket tokens, each after lead.
void append_word(std::string& out, std::string_view lead, std::string_view token, Form form) {
  out += lead;
  if (form == Form::kIndexed && is_identifier(token)) {
    out += bucket_of(token);
    out += ' ';
    out += lead;
    out += bucket_end_of(token);
  } else {
    out += token;
  }
}

// text with each identifier in it replaced by its bucket token. ASCII
// separators end every token, so the text is cut at them into runs, and
// only a run long enough to be an identifier is looked at: as it is when it
// is ASCII, else through the tokenizer (which costs a call per run).
std::string bucket_identifiers(std::string text, Tokenizer& tok) {
  std::string out;
  size_t copied = 0;
  auto replace = [&](size_t start, size_t end, std::string_view token) {
    out.append(text, copied, start - copied);
    append_word(out, "", token, Form::kIndexed);
    copied = end;
  };
  std::string folded;
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    auto is_separator = [](unsigned char c) {
      return c < 0x80 && !((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'));
    };
    if (is_separator(static_cast<unsigned char>(text[i]))) {
      ++i;
      continue;
    }
    size_t j = i;
    bool non_ascii = false;
    for (; j < n && !is_separator(static_cast<unsigned char>(text[j])); ++j) {
      non_ascii = non_ascii || static_cast<unsigned char>(text[j]) >= 0x80;
    }
    if (j - i >= kMinIdentifier) {
      if (!non_ascii) {
        folded.assign(text, i, j - i);
        for (char& c : folded) c = char(c | 0x20);  // ASCII letters and digits only
        if (is_identifier(folded)) replace(i, j, folded);
      } else {
        const size_t base = i;
        tok.tokenize(std::string_view(text).substr(i, j - i), [&](std::string_view t, size_t start, size_t end) {
          if (is_identifier(t)) replace(base + start, base + end, t);
        });
      }
    }
    i = j;
  }
  if (copied == 0) return text;  // no identifier
  out.append(text, copied);
  return out;
}

// A field's value as one token per word, each prefixed by the field's marker
// ("<marker>smith"): one index term per field and word, found without word
// positions; the tokens of one value stay next to each other for phrases.
void append_marked(std::string& meta, Tokenizer& tok, const std::string& mark, std::string_view value, Form form) {
  tok.tokenize(cjk_index_text(value), [&](std::string_view t, size_t, size_t) {
    append_word(meta, mark, t, form);
    meta += ' ';
  });
}

std::string make_meta(const Extracted& x, Tokenizer& tok, Form form) {
  std::string m;
  for (const auto& [path, value] : x.fields) {
    if (!is_reserved_field(path)) append_marked(m, tok, marker("p:" + path), value, form);
  }
  const std::string author = marker("@author");
  for (const auto& a : x.authors) append_marked(m, tok, author, a, form);
  const std::string tag = marker("@tag");
  for (const auto& t : x.tags) append_marked(m, tok, tag, t, form);
  if (!x.host.empty()) {
    std::string_view h = x.host;
    while (!h.empty()) {
      m += marker("host=" + std::string(h));
      m += ' ';
      const size_t dot = h.find('.');
      if (dot == std::string_view::npos) break;
      h.remove_prefix(dot + 1);
    }
  }
  if (!x.lang.empty()) {
    const std::string lang = normal_lang(x.lang);
    m += marker("lang=" + lang) + ' ';
    if (const size_t dash = lang.find('-'); dash != std::string::npos && dash > 0) {
      m += marker("lang=" + lang.substr(0, dash)) + ' ';
    }
  }
  return m;
}

}  // namespace

Row make_row(const Extracted& x, Tokenizer& tok) {
  Row row;
  const std::string title = cjk_index_text(x.title);
  const std::string body = bucket_identifiers(cjk_index_text(x.body), tok);
  const std::string meta = make_meta(x, tok, Form::kIndexed);
  row.text.reserve(3 * title.size() + body.size() + meta.size() + 8);
  row.text += bucket_identifiers(title, tok);
  row.text += '\n';
  tok.tokenize(title, [&](std::string_view t, size_t, size_t) {
    append_word(row.text, kTitleMark, t, Form::kIndexed);
    row.text += ' ';
  });
  row.text += '\n';
  row.text += body;
  row.text += '\n';
  row.text += meta;
  row.length_class = length_class(x.title.size() + x.body.size());
  row.text += length_token(row.length_class);
  return row;
}

// The tokens the index holds for an item, in the columns q looks at.
ColumnTokens column_tokens(const Extracted& x, Tokenizer& tok, const Query& q) {
  unsigned mask = 0;
  for (const auto& group : q.all) {
    for (const auto& p : group) mask |= p.columns;
  }
  for (const auto& p : q.none) mask |= p.columns;
  ColumnTokens cols(3);
  if (mask & kTitleColumn) cols[0] = tok.tokens(cjk_index_text(x.title));
  if (mask & kBodyColumn) cols[1] = tok.tokens(cjk_index_text(x.body));
  if (mask & kMetaColumn) cols[2] = tok.tokens(make_meta(x, tok, Form::kExact));
  return cols;
}

int64_t sha8(const base::Sha256& d) {
  uint64_t v = 0;
  for (int k = 0; k < 8; ++k) v = (v << 8) | d[size_t(k)];
  return int64_t(v);
}

int64_t value_hash(std::string_view value) {
  uint32_t h = 2166136261u;
  for (char c : value) {
    h ^= uint8_t(c);
    h *= 16777619u;
  }
  return int64_t(h >> 1);
}

std::string join_tags(const std::vector<std::string>& tags) {
  std::string out;
  for (size_t k = 0; k < tags.size(); ++k) {
    if (k) out += '\x1f';
    out += tags[k];
  }
  return out;
}

}  // namespace itemfs::search::detail
