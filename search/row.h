// Row building: what the index's full-text row of an item holds.
//
// The contract: make_row(x) is a function of the extracted item alone: the
// title's words, the same words marked as title words, the body, the field
// and exact-value markers, and the token of the text's length class; each
// identifier (is_identifier) is written as its two bucket tokens.
// column_tokens gives the tokens of the columns a query looks at, written as
// they are (for checking candidates word for word). value_hash and sha8 are
// stored in search.db, so they must not change.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "search/extract.h"
#include "search/query.h"
#include "search/tokenize.h"
#include "base/sha256.h"

namespace itemfs::search::detail {

constexpr int kLengthClasses = 16;

// What goes into one FTS row.
struct Row {
  std::string text;
  int length_class = 0;  // also in text, as its length token
  size_t bytes() const { return text.size(); }
};

// Octaves of the bytes of text (title and body) an item has: 0 below 32
// bytes, then 32-63, 64-127, ..., 15 from 512 KiB.
int length_class(size_t bytes);
// A length in the middle of class c.
double class_length(int c);

Row make_row(const Extracted& x, Tokenizer& tok);
// The tokens the index holds for an item, in the columns q looks at.
ColumnTokens column_tokens(const Extracted& x, Tokenizer& tok, const Query& q);
// A language tag as the index keeps it ("en_US" -> "en-US").
std::string normal_lang(std::string lang);

// The first 8 bytes of an item's SHA-256: which version is indexed.
int64_t sha8(const base::Sha256& d);
// How search_value finds a value: FNV-1a, 31 bits (SQLite stores that in 4
// bytes). Stored, so it must not change.
int64_t value_hash(std::string_view value);
// An item's tags as one value, joined by U+001F.
std::string join_tags(const std::vector<std::string>& tags);

}  // namespace itemfs::search::detail
