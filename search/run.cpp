// Running a query (Index::run): matching, skipping dead and unreadable
// rows, the word-for-word check, ranking, the best limit: hits, their
// snippets; and the results as JSON (Index::to_json).

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "base/json_string.h"
#include "search/access.h"
#include "search/index_impl.h"
#include "search/matching.h"
#include "search/ranking.h"
#include "search/schema.h"
#include "search/snippets.h"
#include "search/sql_functions.h"
#include "store/parallel.h"

namespace itemfs::search {

namespace {

using json = nlohmann::json;

}  // namespace

// The table for snapshot db (read or brought up to date as needed); live:
// the number of items the index has in it.
std::shared_ptr<const ClassTable> Index::Impl::class_table(sqlite3* db, int64_t live) {
  const int64_t next = meta_value(db, "next_seq").value_or(1);
  std::lock_guard lock(class_mu);
  std::shared_ptr<const ClassTable> cur = class_cache;
  if (cur && cur->upto == next) return cur;
  auto table = std::make_shared<ClassTable>();
  int64_t from = INT64_MIN;
  // Only the generations added since; all again when most of the table is
  // generations that are gone. (next < cur->upto: an older snapshot, or an
  // index made anew; either way this snapshot's own table is right for it.)
  if (cur && cur->upto < next && cur->live() <= 2 * live + 65536) {
    *table = *cur;
    from = cur->upto;
  }
  base::Stmt s(db, "SELECT gen, len FROM search_doc WHERE gen >= ?1 ORDER BY gen");
  s.bind(1, from);
  size_t rows = 0;
  while (s.step()) {
    table->add(s.int64(0), uint8_t(std::clamp<int64_t>(s.int64(1), 0, kLengthClasses - 1)));
    if (++rows % 65536 == 0) table->fit(live);  // (bounds the memory as it reads)
  }
  table->fit(live);
  table->upto = next;
  if (!cur || next >= cur->upto) class_cache = table;
  return table;
}

Status Index::Impl::run(std::string_view text, Results& out, bool snippets, const Reader& who) {
  out = Results{};
  out.query = std::string(text);
  auto pooled = pooled_tokenizer();
  Tokenizer& tok = *pooled;
  Query q;
  if (Status st = parse_query(text, tok, q); !st.ok()) return st;
  auto view = query_view(&out.pending);
  if (!view) return Status::error(EIO, "the search index is missing; run itemfs reindex");
  sqlite3* db = view->db();
  auto snap = store.snapshot();
  const std::vector<int64_t> dead = dead_gens(db);
  // Rows of items `who` may not read are skipped like dead ones, before
  // ranking and limit:, so hits and counts are the reader's own.
  const std::vector<int64_t> closed = unreadable_gens(db, store, who);
  const CheckPlan check(db, q);
  // Only dates need search_doc; everything else comes from the full-text index.
  const bool dates = q.sort_date || q.after || q.before || q.positive.empty();
  RowSink matched;  // dead rows too
  if (!dates) {
    matched.rows = rows_matching(db, q.match());
  } else {
    base::Stmt s = collecting_stmt(db, match_sql(q, q.sort_date, "d.date", true));
    bind_match(s, q);
    bind_sink(s, 4, matched);
    s.step();
  }
  base::Stmt lookup(db, kItemOfGen);
  // Every row that matches, in rowid order: its generation, its date when
  // the query needs dates, its length class when it ranks.
  std::vector<int64_t> gens;
  std::vector<std::optional<int64_t>> row_dates;
  const auto rows = int64_t(matched.rows.size());
  gens.reserve(matched.rows.size());
  for (size_t k = 0; k < matched.rows.size(); ++k) {
    const int64_t gen = matched.rows[k];
    if (!dead.empty() && contains(dead, gen)) continue;
    if (!closed.empty() && contains(closed, gen)) continue;
    if (check.needed(gen) && !exact_match(*snap, lookup, tok, q, gen)) continue;
    gens.push_back(gen);
    if (dates) row_dates.push_back(matched.values[k]);
  }
  if (!std::is_sorted(gens.begin(), gens.end())) {
    std::vector<size_t> order(gens.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return gens[a] < gens[b]; });
    std::vector<int64_t> g(gens.size());
    std::vector<std::optional<int64_t>> d(row_dates.size());
    for (size_t k = 0; k < order.size(); ++k) {
      g[k] = gens[order[k]];
      if (dates) d[k] = row_dates[order[k]];
    }
    gens.swap(g);
    row_dates.swap(d);
  }
  const bool ranked = !q.positive.empty();
  std::vector<uint8_t> classes;
  double avg_length = 0;
  const int64_t indexed = ranked && !gens.empty() ? indexed_items(db, dead.size()) : 0;
  if (ranked && !gens.empty()) {
    classes.resize(gens.size());
    const auto table = class_table(db, indexed);
    base::Stmt len(db, "SELECT len FROM search_doc WHERE gen=?");
    double length = 0;
    size_t hint = 0;
    for (size_t k = 0; k < gens.size(); ++k) {
      int c = table->get(gens[k], hint);
      if (c == ClassTable::kNone) {
        base::StmtScope r(len);
        // A row no item has (not a dead row: check() reports it) counts as class 0.
        c = len.bind(1, gens[k]).step() ? int(std::clamp<int64_t>(len.int64(0), 0, kLengthClasses - 1)) : 0;
      }
      classes[k] = uint8_t(c);
      length += class_length(c);
    }
    avg_length = length / double(gens.size());
  }
  auto better = [&](const Candidate& a, const Candidate& b) {
    if (q.sort_date || q.positive.empty()) {
      if (a.date != b.date) return a.date.value_or(INT64_MIN) > b.date.value_or(INT64_MIN);
    }
    if (a.score != b.score) return a.score > b.score;
    return a.gen < b.gen;
  };
  // The best `limit` rows, kept as a heap whose front is the worst of them.
  uint64_t total = gens.size();
  std::vector<Candidate> found;
  found.reserve(std::min<size_t>(gens.size(), q.limit));
  std::optional<Scorer> scorer;
  if (ranked && !gens.empty()) {
    // A query of one word has just read every row that has the word.
    std::optional<int64_t> only_docs;
    if (q.all.size() == 1 && q.all[0].size() == 1 && q.negative.empty() && !dates && !q.exact) {
      const Phrase& p = q.all[0][0];
      if (!p.prefix && p.tokens.size() == 1 && (p.columns & (kTitleColumn | kBodyColumn)) &&
          q.positive == "(" + phrase_fts(p) + ")") {
        only_docs = rows;  // less the closed ones among them (matched.rows is sorted here)
        for (int64_t c : closed) *only_docs -= std::binary_search(matched.rows.begin(), matched.rows.end(), c);
      }
    }
    scorer.emplace(db, q, indexed, only_docs, closed);
  }
  for (size_t k = 0; k < gens.size(); ++k) {
    Candidate c{gens[k], 0, dates ? row_dates[k] : std::nullopt, ranked ? classes[k] : 0};
    if (scorer) c.score = scorer->score(c.gen, c.length_class, avg_length);
    if (found.size() < q.limit) {
      found.push_back(c);
      std::push_heap(found.begin(), found.end(), better);
    } else if (!found.empty() && better(c, found.front())) {
      std::pop_heap(found.begin(), found.end(), better);
      found.back() = c;
      std::push_heap(found.begin(), found.end(), better);
    }
  }
  std::sort_heap(found.begin(), found.end(), better);
  const size_t top = found.size();
  std::vector<store::ItemInfo> items;
  for (size_t k = 0; k < top; ++k) {
    if (auto info = item_of(*snap, lookup, found[k].gen)) {
      out.hits.push_back(Hit{info->id, found[k].score == 0 ? 0.0 : found[k].score, {}});
      items.push_back(std::move(*info));
    } else if (total > 0) {
      --total;  // an entry whose item is gone (not a dead row: check() reports it)
    }
  }
  out.total = total;
  if (snippets && !items.empty()) {
    // Inflating and tokenizing the hits' text is most of a common word's
    // query: a second thread, when there is a second core and enough hits.
    const size_t threads = items.size() >= kSnippetsOnTwoThreadsFrom && store::usable_cpus() > 1 ? 2 : 1;
    std::vector<PooledTokenizer> more;
    std::vector<Tokenizer*> tokenizers{&tok};
    while (tokenizers.size() < threads) tokenizers.push_back(&*more.emplace_back(pooled_tokenizer()));
    Snippets made(q.highlight, items.size(), std::move(tokenizers));
    snap->read_items_until(items, threads, made);
    for (size_t k = 0; k < out.hits.size(); ++k) out.hits[k].snippet = made.take(k);
  }
  return Status::success();
}

Status Index::run(std::string_view query, Results& out, const Reader& who) { return impl_->run(query, out, true, who); }
Status Index::run_without_snippets(std::string_view query, Results& out, const Reader& who) {
  return impl_->run(query, out, false, who);
}

// What dump() makes of {"query", "total", "hits": [{"rank", "id", "path",
// "score", "snippet"}, ...]} (keys sorted, indent 2), written directly:
// building that tree and dumping it was 6% of a common word's query.
std::string Index::to_json(const Results& r) {
  std::string out;
  out.reserve(64 + r.query.size() + r.hits.size() * 512);
  out += "{\n  \"hits\": [";
  uint64_t rank = 0;
  for (const Hit& h : r.hits) {
    out += rank == 0 ? "\n    {\n      \"id\": " : ",\n    {\n      \"id\": ";
    base::append_json_string(out, h.id);
    out += ",\n      \"path\": ";
    base::append_json_string(out, store::item_path(h.id));
    out += ",\n      \"rank\": ";
    out += std::to_string(++rank);
    out += ",\n      \"score\": ";
    out += json(std::round(h.score * 1e6) / 1e6).dump();
    out += ",\n      \"snippet\": ";
    base::append_json_string(out, h.snippet);
    out += "\n    }";
  }
  if (rank > 0) out += "\n  ";
  out += "],\n  ";
  if (r.pending > 0) out += "\"pending\": " + std::to_string(r.pending) + ",\n  ";
  out += "\"query\": ";
  base::append_json_string(out, r.query);
  out += ",\n  \"total\": ";
  out += std::to_string(r.total);
  out += "\n}\n";
  return out;
}

}  // namespace itemfs::search
