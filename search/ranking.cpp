// Ranking (see ranking.h).

#include "search/ranking.h"

#include <cmath>

#include "base/sqlite_stmt.h"
#include "search/matching.h"
#include "search/row.h"

namespace itemfs::search::detail {

namespace {

// How many rows hold token k of p (as title words when title is set).
int64_t rows_with(sqlite3* db, const Phrase& p, size_t k, bool title) {
  if (is_plain_term(p, k)) {
    base::Stmt s(db, "SELECT doc FROM search_vocab WHERE term = ?1");
    s.bind(1, index_term(p, k, title));
    return s.step() ? s.int64(0) : 0;
  }
  base::Stmt s(db, "SELECT count(*) FROM search_fts WHERE search_fts MATCH ?1");
  s.bind(1, token_fts(p, k, title));
  return s.step() ? s.int64(0) : 0;
}

}  // namespace

// How many rows search_fts has, as FTS5 keeps it: the first varint of its
// averages record (row 1 of search_fts_data). None if that cannot be read.
std::optional<int64_t> fts_rows(sqlite3* db) {
  base::Stmt s(db, "SELECT block FROM search_fts_data WHERE id = 1");
  if (!s.step()) return std::nullopt;
  const std::string_view b = s.text(0);
  uint64_t v = 0;
  for (size_t k = 0; k < 9; ++k) {  // an SQLite varint
    if (k >= b.size()) return std::nullopt;
    const auto c = uint8_t(b[k]);
    if (k == 8) return int64_t((v << 8) | c);
    v = (v << 7) | (c & 0x7F);
    if (!(c & 0x80)) return int64_t(v);
  }
  return std::nullopt;
}

// The number of entries in search_doc: the full-text rows less the dead
// ones (every row is an entry's or a dead one's), which reads one page
// where count(*) reads every page of an index of search_doc (0.5 ms and
// much of a reader's page cache at 100k items).
int64_t indexed_items(sqlite3* db, size_t dead) {
  if (auto rows = fts_rows(db); rows && *rows >= int64_t(dead)) return *rows - int64_t(dead);
  base::Stmt count(db, "SELECT count(*) FROM search_doc");
  return count.step() ? count.int64(0) : 0;
}

Scorer::Scorer(sqlite3* db, const Query& q, int64_t items, std::optional<int64_t> only_docs,
       const std::vector<int64_t>& closed) {
  const auto n = double(items - int64_t(closed.size()));
  auto docs_of = [&](const Phrase& p, size_t k, bool title) -> int64_t {
    if (only_docs) return *only_docs;
    if (closed.empty()) return rows_with(db, p, k, title);
    const std::vector<int64_t> rows = rows_matching(db, token_fts(p, k, title));
    int64_t out = int64_t(rows.size());
    for (int64_t c : closed) out -= std::binary_search(rows.begin(), rows.end(), c);
    return out;
  };
  for (const auto& group : q.all) {
    for (const Phrase& p : group) {
      if (!(p.columns & (kTitleColumn | kBodyColumn))) continue;  // field filters do not rank
      Alternative alt;
      // Alone in its group, a phrase is in every row the query finds.
      alt.implied = group.size() == 1;
      if (!alt.implied) alt.rows.rows = rows_matching(db, phrase_fts(p));
      const bool title_only = p.columns == kTitleColumn;
      // (An identifier's rows and count are those of its buckets: a row
      // found otherwise may score for one it only shares them with.)
      for (size_t k = 0; k < p.tokens.size(); ++k) {
        Word w;
        const auto docs = double(docs_of(p, k, title_only));
        w.idf = std::max(1e-6, std::log(1 + (n - docs + 0.5) / (docs + 0.5)));  // dead rows: docs > n
        w.weight = title_only ? kTitleWeight : kBodyWeight;
        if (p.columns == (kTitleColumn | kBodyColumn)) w.title.rows = rows_matching(db, token_fts(p, k, true));
        alt.words.push_back(std::move(w));
      }
      alts_.push_back(std::move(alt));
    }
  }
}

double Scorer::score(int64_t gen, int length_class, double avg_length) {
  const double norm = kK1 * (1 - kB + kB * class_length(length_class) / avg_length);
  double score = 0;
  for (auto& alt : alts_) {
    if (!alt.implied && !alt.rows.has(gen)) continue;
    for (auto& w : alt.words) {
      const double f = w.title.has(gen) ? kTitleWeight : w.weight;
      score += w.idf * f * (kK1 + 1) / (f + norm);
    }
  }
  return score;
}

}  // namespace itemfs::search::detail
