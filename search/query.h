// Internal: the query language (see README.md) compiled to an FTS5 MATCH
// expression plus conditions on the per-item table. Every word the user typed
// reaches FTS5 only as a double-quoted string of tokens that this parser
// produced with the index's own tokenizer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "search/tokenize.h"

namespace itemfs::search::detail {

inline constexpr uint64_t kDefaultLimit = 100;
inline constexpr uint64_t kMaxLimit = 10000;
inline constexpr size_t kMaxQueryBytes = 4096;
inline constexpr size_t kMaxTerms = 64;

// A word to mark in snippets.
struct HighlightTerm {
  std::string text;  // folded token, or for CJK the characters as written
  bool prefix = false;
  bool cjk = false;
};

// Columns of the index a phrase is looked for in.
inline constexpr unsigned kTitleColumn = 1;
inline constexpr unsigned kBodyColumn = 2;
inline constexpr unsigned kMetaColumn = 4;

// A word or phrase as the index sees it: tokens next to each other, in this
// order, in one of `columns` (the last token a prefix when `prefix` is set).
struct Phrase {
  unsigned columns = 0;
  std::vector<std::string> tokens;
  bool prefix = false;
  std::string mark;  // the field marker every token starts with ("" for text)
};

// The tokens of one indexed item by column (0 title, 1 body, 2 meta).
using ColumnTokens = std::vector<std::vector<std::string>>;

bool phrase_matches(const Phrase& p, const ColumnTokens& columns);

struct Query {
  // The index keeps neither word positions nor columns (FTS5 detail=none), so
  // a phrase of several tokens reaches FTS5 loosened to "all its tokens",
  // content: to "the word anywhere", and `exact` is set: each candidate must
  // then pass matches() on its own tokens (for content:word alone, only the
  // candidates that have the word in the title). So is each candidate found
  // through an identifier's buckets (has_bucket()). Other single words,
  // title: and fields are answered by the index alone.
  std::string positive;  // FTS5 expression every hit matches ("" if none)
  std::string negative;  // FTS5 expression no hit matches ("" if none)
  bool exact = false;
  std::vector<std::vector<Phrase>> all;  // each group: one of its phrases must match
  std::vector<Phrase> none;              // none of these may match
  std::optional<int64_t> after;   // date >= after
  std::optional<int64_t> before;  // date < before
  uint64_t limit = kDefaultLimit;
  bool sort_date = false;
  std::vector<HighlightTerm> highlight;

  // positive minus negative; requires !positive.empty().
  std::string match() const;
  // Whether an item with these tokens matches the words of the query (dates
  // and options aside): the exact check of candidates when `exact` is set.
  bool matches(const ColumnTokens& columns) const;
};

base::Status parse_query(std::string_view text, Tokenizer& tok, Query& out);

// Filter names the query language answers some other way (a column, a marker,
// an option): title, content, author, tag, host, lang, limit, ... A field at
// exactly such a path is never searched as name:value, so it is not indexed
// as one.
bool is_reserved_field(std::string_view lower_name);

// The FTS5 string literal for the given tokens: "a b" with quotes doubled.
std::string fts_phrase(const std::vector<std::string>& tokens);
// The FTS5 expression for token k of p, as the index holds it: marked as a
// title word when `title` is set; for an identifier, its bucket; for a
// prefix that may start one, the words or the buckets it starts.
std::string token_fts(const Phrase& p, size_t k, bool title);
// Whether token k of p is held as a term of its own, exactly as typed (no
// prefix, no bucket), and that term.
bool is_plain_term(const Phrase& p, size_t k);
std::string index_term(const Phrase& p, size_t k, bool title);
// Whether the index may hold a token of p as a bucket that does not tell
// whether the token is there (an identifier; a prefix longer than a bucket's
// characters): its candidates from the bucket must be checked word for word.
bool has_bucket(const Phrase& p);
// For a single token with a bucket: the rows with its bucket(s), and of
// those the ones it may match only through them (the ones to check).
std::string bucket_rows_fts(const Phrase& p);
std::string bucket_only_fts(const Phrase& p);
// For a single token: the rows the index alone knows to have it ("" if
// none: a phrase, an identifier), which is what `-word` can exclude there.
std::string certain_fts(const Phrase& p);
// The FTS5 expression that finds the candidates of p.
std::string phrase_fts(const Phrase& p);
// A single word of content: (the index cannot tell the body from the title,
// so an item that has it in its title is checked) and its title token.
bool is_body_word(const Phrase& p);
std::string title_word_fts(const Phrase& p);
// The tokens FTS5 sees for a word or phrase the user typed (CJK handled).
std::vector<std::string> query_tokens(Tokenizer& tok, std::string_view text, bool* last_is_single_cjk);

}  // namespace itemfs::search::detail
