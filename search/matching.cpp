// Matching (see matching.h).

#include "search/matching.h"

#include <algorithm>

#include "search/row.h"
#include "search/sql_functions.h"

namespace itemfs::search::detail {

Extracted read_extracted(store::Snapshot& snap, const store::ItemInfo& info) {
  Extractor x;
  snap.read_item(info, [&](std::string_view bytes) {
    if (!x.done()) x.feed(bytes);
  });
  return std::move(x.result());
}

// The item indexed under generation gen, as snap has it (none if it is gone).
std::optional<store::ItemInfo> item_of(store::Snapshot& snap, base::Stmt& lookup, int64_t gen) {
  int64_t ino = 0;
  {
    base::StmtScope r(lookup);
    lookup.bind(1, gen);
    if (!lookup.step()) return std::nullopt;
    ino = lookup.int64(0);
  }
  return snap.item_by_ino(ino);
}

// Whether the item of generation gen matches q word for word (the index found
// it with phrases loosened to their words).
bool exact_match(store::Snapshot& snap, base::Stmt& lookup, Tokenizer& tok, const Query& q, int64_t gen) {
  auto info = item_of(snap, lookup, gen);
  if (!info) return false;
  return q.matches(column_tokens(read_extracted(snap, *info), tok, q));
}

std::vector<int64_t> dead_gens(sqlite3* db) {
  std::vector<int64_t> out;
  base::Stmt s(db, "SELECT gen FROM search_dead ORDER BY gen");
  while (s.step()) out.push_back(s.int64(0));
  return out;
}

bool contains(const std::vector<int64_t>& sorted, int64_t v) { return std::binary_search(sorted.begin(), sorted.end(), v); }

namespace {

// Whether an FTS5 expression made here is one phrase: every phrase is
// quoted (fts_phrase), and AND, OR and NOT join two or more.
bool is_one_phrase(std::string_view expr) {
  size_t phrases = 0;
  bool quoted = false;
  for (size_t k = 0; k < expr.size(); ++k) {
    if (expr[k] != '"') continue;
    if (quoted && k + 1 < expr.size() && expr[k + 1] == '"') {
      ++k;  // a quote in the phrase, doubled
    } else {
      quoted = !quoted;
      phrases += quoted ? 1 : 0;
    }
  }
  return phrases == 1;
}

}  // namespace

std::vector<int64_t> rows_matching(sqlite3* db, const std::string& expr) {
  RowSink sink;
  PhraseRows phrase{&sink};
  const bool one_phrase = is_one_phrase(expr);
  if (one_phrase) {
    base::Stmt s =
        collecting_stmt(db, "SELECT itemfs_rows(search_fts, ?2) FROM search_fts WHERE search_fts MATCH ?1 LIMIT 1");
    s.bind(1, expr);
    s.bind_pointer(2, &phrase, kPhraseRowsType);
    s.step();
  }
  if (!one_phrase || phrase.not_one_phrase) {
    base::Stmt s = collecting_stmt(db, "SELECT count(itemfs_collect(?2, rowid)) FROM search_fts WHERE search_fts MATCH ?1");
    s.bind(1, expr);
    bind_sink(s, 2, sink);
    s.step();
  }
  std::vector<int64_t>& out = sink.rows;
  if (!std::is_sorted(out.begin(), out.end())) std::sort(out.begin(), out.end());
  return std::move(out);
}

std::string match_sql(const Query& q, bool join, const std::string& cols, bool collect) {
  const bool dates = q.after || q.before;
  const std::string date_cond = " AND d.date IS NOT NULL AND (?2 IS NULL OR d.date >= ?2) AND (?3 IS NULL OR d.date < ?3)";
  auto select = [&](const char* gen) {
    const std::string list = gen + (cols.empty() ? "" : ", " + cols);
    return collect ? "SELECT count(itemfs_collect(?4, " + list + "))" : "SELECT " + list;
  };
  if (!q.positive.empty()) {
    std::string sql = select("search_fts.rowid") + " FROM search_fts";
    if (join || dates) sql += " JOIN search_doc d ON d.gen = search_fts.rowid";
    sql += " WHERE search_fts MATCH ?1";
    if (dates) sql += date_cond;
    return sql;
  }
  std::string sql = select("d.gen") + " FROM search_doc d WHERE 1" + date_cond;
  if (!q.negative.empty()) sql += " AND d.gen NOT IN (SELECT rowid FROM search_fts WHERE search_fts MATCH ?1)";
  return sql;
}

void bind_match(base::Stmt& s, const Query& q) {
  if (!q.positive.empty()) {
    s.bind(1, q.match());
  } else if (!q.negative.empty()) {
    s.bind(1, q.negative);
  }
  if (q.after || q.before || q.positive.empty()) s.bind(2, q.after).bind(3, q.before);
}

}  // namespace itemfs::search::detail
