// Internal: SQLite's own unicode61 tokenizer (remove_diacritics 2), used
// outside FTS5 so that query words, field values and snippets are split and
// folded exactly the way the index splits and folds text.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

struct sqlite3;
struct fts5_api;
struct Fts5Tokenizer;

namespace itemfs::search::detail {

// The FTS5 module of a private in-memory connection. Thread-safe to share.
class Fts5Library {
 public:
  Fts5Library();
  ~Fts5Library();
  Fts5Library(const Fts5Library&) = delete;
  Fts5Library& operator=(const Fts5Library&) = delete;
  struct Unicode61;
  const Unicode61& unicode61() const { return *unicode61_; }

 private:
  sqlite3* db_ = nullptr;
  fts5_api* api_ = nullptr;
  Unicode61* unicode61_ = nullptr;  // found once, so tokenizers are made without touching api_
};

// One tokenizer instance; use from one thread at a time.
class Tokenizer {
 public:
  explicit Tokenizer(const Fts5Library& lib);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Calls fn(folded token, start byte, end byte) for each token of text,
  // exactly as unicode61 would (ASCII runs are split and folded here, the
  // rest by unicode61 itself).
  void tokenize(std::string_view text, const std::function<void(std::string_view, size_t, size_t)>& fn);
  // The same until fn returns false.
  void tokenize_until(std::string_view text, const std::function<bool(std::string_view, size_t, size_t)>& fn);
  // The folded tokens of text.
  std::vector<std::string> tokens(std::string_view text);
  // (folded token, start, end) of text from unicode61 alone, every token
  // through it: what tokenize() must agree with (tests).
  std::vector<std::tuple<std::string, size_t, size_t>> unicode61_tokens(std::string_view text);

 private:
  const Fts5Library::Unicode61& module_;
  Fts5Tokenizer* tok_ = nullptr;
  std::string folded_;  // the current ASCII token, lower-cased
};

}  // namespace itemfs::search::detail
