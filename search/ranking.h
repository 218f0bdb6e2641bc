// Ranking: BM25 over what the index knows of each row.
//
// The contract: the index knows, for each token, the rows that hold it (FTS5
// detail=none) and nothing of positions or columns, so FTS5's bm25() cannot
// rank. The score is BM25 (k1 1.2, b 0.75) over what the index does know:
// whether a row has each word of the query (once: frequency is not kept), 10
// times as much when the word is in its title (its kTitleMark token), and
// the length of its text, known to a factor of two from its length class.
// idf is Lucene's, log(1 + (N - n + 0.5) / (n + 0.5)), which stays above 0
// for a word in every row. Rows are scored in rowid order, so each list is
// read from start to end once. A row's length class comes from search_doc
// (Impl::class_table).
// Scorer scores rows in rising generation order; indexed_items counts the
// indexed items from FTS5's own count of rows; ClassTable keeps every
// generation's length class.
#pragma once

#include <sqlite3.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "search/query.h"

namespace itemfs::search::detail {

constexpr double kK1 = 1.2, kB = 0.75;
constexpr double kTitleWeight = 10, kBodyWeight = 1;

// A sorted list read alongside rising rowids.
struct Cursor {
  std::vector<int64_t> rows;
  size_t at = 0;
  bool has(int64_t gen) {
    while (at < rows.size() && rows[at] < gen) ++at;
    return at < rows.size() && rows[at] == gen;
  }
};

// How many rows search_fts has, as FTS5 keeps it. None if that cannot be read.
std::optional<int64_t> fts_rows(sqlite3* db);
// The number of entries in search_doc (the full-text rows less the dead ones).
int64_t indexed_items(sqlite3* db, size_t dead);

class Scorer {
 public:
  // n: indexed_items(). only_docs: with a query of one word (no prefix, no
  // other condition), the number of rows that have it, which the caller has
  // just counted. closed: the rows of items the reader may not read
  // (sorted), which count neither in n nor in a word's rows, so that a
  // score tells nothing of them.
  Scorer(sqlite3* db, const Query& q, int64_t items, std::optional<int64_t> only_docs = std::nullopt,
         const std::vector<int64_t>& closed = {});

  // Call with rising gens; avg_length is the mean
  // class_length() of the rows.
  double score(int64_t gen, int length_class, double avg_length);

 private:
  struct Word {
    double idf = 0;
    double weight = kBodyWeight;  // when the row does not have it in the title
    Cursor title;                 // rows that have it in the title
  };
  struct Alternative {
    bool implied = true;
    Cursor rows;  // rows that have it, unless implied
    std::vector<Word> words;
  };
  std::vector<Alternative> alts_;
};

// The length class of every generation, read from search_doc once and
// then only for the generations added since, so that a query reads each
// word's rows once instead of once per class. A generation's class never
// changes (every indexed version of an item gets a new one, and next_seq
// only grows), so a table read at one snapshot stays right for later ones
// up to the next_seq it was read at; a generation it does not have (one
// removed before it was read and seen by an older snapshot) is looked up
// in the query's own snapshot.
// One byte per generation from the oldest live one on (100 KB at 100k
// items); after much rewriting, when few generations of a long span are
// live, the live ones and their classes instead (sparse).
struct ClassTable {
  static constexpr uint8_t kNone = 0xFF;
  int64_t base = 0;            // dense: the generation of cls[0]
  int64_t upto = 0;            // next_seq when read: every generation below it
  bool sparse = false;
  std::vector<uint8_t> cls;    // dense: by generation - base, kNone where search_doc had none; sparse: of gens[k]
  std::vector<int64_t> gens;   // sparse: the generations, in order
  // hint: where the previous lookup ended (lookups come with rising gens).
  int get(int64_t gen, size_t& hint) const {
    if (!sparse) {
      const uint64_t at = uint64_t(gen - base);
      return at < cls.size() ? cls[at] : kNone;
    }
    if (hint > gens.size() || (hint > 0 && gens[hint - 1] >= gen)) hint = 0;
    const auto it = std::lower_bound(gens.begin() + ptrdiff_t(hint), gens.end(), gen);
    hint = size_t(it - gens.begin());
    return it != gens.end() && *it == gen ? cls[hint] : kNone;
  }
  void add(int64_t gen, uint8_t c) {
    if (sparse) {
      if (gens.empty() || gen > gens.back()) gens.push_back(gen), cls.push_back(c);
      return;
    }
    if (cls.empty()) base = gen;
    if (gen < base) return;  // (gens come in order)
    const auto at = uint64_t(gen - base);
    if (at >= cls.size()) cls.resize(at + 1, kNone);
    cls[at] = c;
  }
  // Dense while the span is at most 16 bytes per live generation.
  void fit(int64_t live) {
    if (sparse || int64_t(cls.size()) <= 16 * live + (int64_t(1) << 20)) return;
    for (size_t k = 0; k < cls.size(); ++k) {
      if (cls[k] != kNone) gens.push_back(base + int64_t(k));
    }
    std::vector<uint8_t> packed;
    packed.reserve(gens.size());
    for (int64_t g : gens) packed.push_back(cls[size_t(g - base)]);
    cls.swap(packed);
    sparse = true;
  }
  int64_t live() const {
    return sparse ? int64_t(gens.size()) : int64_t(std::count_if(cls.begin(), cls.end(), [](uint8_t c) { return c != kNone; }));
  }
};

}  // namespace itemfs::search::detail
