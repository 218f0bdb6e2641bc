// Internal: turning an item's JSON bytes into the text and fields the index
// keeps. Everything here is deterministic: the same bytes always give the same
// result, which the index relies on to delete the exact tokens it inserted.
// If anything here changes what is extracted, bump kIndexVersion so existing
// indexes are rebuilt.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/utf8.h"

namespace itemfs::search::detail {

// 2: detail=column, field words as marker+word tokens; 3: no field tokens for
// paths the query language routes elsewhere (title, content, author, ...);
// 4: host and author facet values in search_value, by id in search_doc;
// 5: data strings (kMinDataRun) are not indexed as text; 6: one full-text
// column with detail=none (title words also as kTitleMark tokens, fields as
// kFieldMark tokens, the text's length class as a kLengthMark token),
// search_doc without the id, host/author/lang by id, search_dead; 7:
// identifiers indexed by their buckets (kBucketMark, kBucketEndMark); 8: ß,
// ẞ and the Latin ligatures indexed by their full case folding (fold.h).
inline constexpr int kIndexVersion = 9;

// The index's own tokens start with a character of Unicode's private use area
// (unicode61 takes them for letters), so that no word of a text can be one:
// cjk_index_text() and cjk_query_text() turn U+E000..U+E00F into spaces.
inline constexpr std::string_view kTitleMark = "\xEE\x80\x80";   // U+E000 + a word of the title
inline constexpr std::string_view kFieldMark = "\xEE\x80\x81";   // U+E001 + a field's code (+ a word)
inline constexpr std::string_view kLengthMark = "\xEE\x80\x82";  // U+E002 + a..p: length class of the text
inline constexpr std::string_view kBucketMark = "\xEE\x80\x83";     // U+E003 + an identifier's first characters
inline constexpr std::string_view kBucketEndMark = "\xEE\x80\x84";  // U+E004 + its last characters

// Identifiers (ids, hashes, etags: long words of ASCII letters and digits,
// with both) are nearly all different, and a term of its own for each is
// the largest part of an index of such items. The index keeps each one as
// two bucket tokens: kBucketMark + its first kBucketChars characters and
// kBucketEndMark + its last kBucketChars. A query for one finds the items
// with both and checks them against their own text, as it checks phrases;
// a prefix of one looks for the first.
inline constexpr size_t kMinIdentifier = 12;
inline constexpr size_t kBucketChars = 3;
// Whether a folded token is an identifier.
bool is_identifier(std::string_view token);
// Whether some identifier starts with this folded token.
bool may_start_identifier(std::string_view token);
// The bucket token of the start of an identifier, or of a prefix of one
// (shorter than kBucketChars: the start of such bucket tokens).
std::string bucket_of(std::string_view token);
// The bucket token of an identifier's end.
std::string bucket_end_of(std::string_view token);

inline constexpr size_t kMinDataRun = 200;

inline constexpr size_t kMaxBodyText = 4u << 20;  // text indexed per item
inline constexpr size_t kMaxTitle = 4096;
inline constexpr size_t kMaxFieldValue = 512;  // longer scalars are not filterable by field
inline constexpr size_t kMaxFields = 256;      // filterable values per item
inline constexpr size_t kMaxTags = 64;
inline constexpr size_t kMaxKey = 64;    // bytes of one object key kept in a path
inline constexpr size_t kMaxDepth = 64;  // deeper values are ignored

struct Extracted {
  std::string title;
  // String values other than title/url/dates/lang, '\n' separated: first the
  // main text (content, text, body, description, summary, abstract), then
  // the others (its first main_size bytes are the main text).
  std::string body;
  size_t main_size = 0;
  std::string url;
  std::string host;    // lower case, from url
  std::string author;  // first author value
  std::string lang;    // lower case
  std::vector<std::string> authors;
  std::vector<std::string> tags;
  std::optional<int64_t> published;  // unix seconds
  std::optional<int64_t> crawled;
  // Short scalar values by lower-case dotted path (arrays are transparent).
  std::vector<std::pair<std::string, std::string>> fields;
  std::optional<int64_t> date() const { return published ? published : crawled; }
};

// A push parser over already validated JSON. Memory stays bounded whatever
// the input: text beyond the caps is dropped, deeper nesting is skipped.
class Extractor {
 public:
  // What to collect: everything Extracted holds, or only the title and the
  // body text (what a snippet is made of).
  enum class Collect { kAll, kText };
  explicit Extractor(size_t body_cap = kMaxBodyText, Collect collect = Collect::kAll);
  // Feeds the next bytes. Returns false once nothing more will be used.
  bool feed(std::string_view bytes);
  bool done() const { return done_; }
  // The main text read so far: always the start of result()'s main text
  // (not counting the newlines result() trims from its end).
  std::string_view main_text_so_far() const;
  Extracted& result();  // call after the last feed

 private:
  enum class Role { kKey, kTitle, kUrl, kDate, kLang, kTag, kAuthor, kMain, kOther };
  struct Frame {
    bool object;
    size_t base;  // path length before this frame's keys
  };
  void begin_string();
  void end_string();
  void append_string(std::string_view s);
  void append_raw(std::string_view s);
  void append_code_point(uint32_t cp);
  void end_scalar();
  void value_done();
  Role role_for_path() const;

  size_t body_cap_;
  bool text_only_;
  Extracted out_;
  std::string other_;  // body text of kTag, kAuthor, kOther
  bool finished_ = false;
  std::vector<Frame> frames_;
  std::string path_;
  size_t skip_depth_ = 0;  // containers open beyond kMaxDepth
  bool expect_key_ = false;
  bool in_string_ = false;
  bool escape_ = false;
  int hex_left_ = 0;
  uint32_t hex_ = 0;
  uint32_t high_surrogate_ = 0;
  bool in_scalar_ = false;
  Role role_ = Role::kOther;
  std::string* to_body_ = nullptr;
  size_t string_start_ = 0;     // where the current string began in *to_body_
  size_t string_bytes_ = 0;     // its bytes so far
  bool string_is_text_ = false;  // it holds whitespace or non-ASCII
  std::string small_;  // the first bytes of the current string or scalar
  bool small_full_ = false;
  bool done_ = false;
};

Extracted extract(std::string_view json, size_t body_cap = kMaxBodyText);

// CJK and other scripts written without spaces: each run of such characters
// is replaced by its overlapping bigrams plus its last character, separated
// by spaces, so that unicode61 indexes them as words ("日本語" -> "日本 本語 語").
// The index's marker characters (U+E000..U+E00F) become spaces.
bool is_cjk(uint32_t cp);
bool is_reserved_mark(uint32_t cp);
std::string cjk_index_text(std::string_view text);
// The same for a query word: bigrams of each run; the run's last character is
// added only when the word goes on after the run. `last_is_single` is set when
// the word ends in a one-character run (search it as a prefix).
std::string cjk_query_text(std::string_view word, bool* last_is_single);

// Text is decoded and cut with base's UTF-8 decoder (base/utf8.h): an
// invalid byte is U+FFFD.
using base::append_utf8;
using base::next_code_point;
using base::utf8_prefix;

// ISO 8601 date or date-time ("2024-03-01", "2024-03-01T12:00:00+02:00",
// also "2024" and "2024-03") or a number of seconds (milliseconds above 1e11)
// since 1970 -> unix seconds.
std::optional<int64_t> parse_date(std::string_view s);
int64_t days_from_civil(int64_t y, unsigned m, unsigned d);
int year_of(int64_t unix_seconds);
std::string host_of_url(std::string_view url);

// The FTS token that stands for a field path or an exact value (kFieldMark
// and 10 hex digits of a hash of key); a field's words are indexed as marker
// + word.
std::string marker(std::string_view key);
// True for the index's own tokens (title, field, every-row), which start with
// a reserved mark; false for the words of the text.
bool is_marker(std::string_view term);

}  // namespace itemfs::search::detail
