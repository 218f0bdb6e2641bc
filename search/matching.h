// Matching: the rows of the index that a query finds.
//
// The contract:
//  - rows_matching gives the full-text rows of an FTS5 expression, in rowid
//    order (dead rows too: dead_gens lists those, and queries skip them).
//  - match_sql is the SQL that lists every entry matching a query (its
//    generation first, then `cols`), bound by bind_match; it is used when the
//    query needs search_doc (dates, facets).
//  - The index finds a phrase as its words and an identifier through its
//    buckets; CheckPlan says which candidates need the word-for-word check,
//    and exact_match does it against the item's own text.
#pragma once

#include <sqlite3.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/sqlite_stmt.h"
#include "search/extract.h"
#include "search/query.h"
#include "search/tokenize.h"
#include "store/store.h"

namespace itemfs::search::detail {

// Rows a prefix finds through identifier buckets are all checked, up to
// this many (about 0.1 ms each); beyond, only those without its words.
constexpr size_t kCheckBucketRowsUpTo = 64;

constexpr const char* kItemOfGen = "SELECT ino FROM search_doc WHERE gen = ?";

// The rows that match FTS5 expression expr, in rowid order.
std::vector<int64_t> rows_matching(sqlite3* db, const std::string& expr);

// The SQL that lists every item matching q: its generation first, then
// `cols` (which may use d = search_doc when join is set). ?1 = match text,
// ?2 = after, ?3 = before (bind_match binds them). Dead rows are the
// caller's to skip. With `collect`, the rows go to itemfs_collect(?4, ...)
// and the statement gives one row, their count.
std::string match_sql(const Query& q, bool join, const std::string& cols, bool collect = false);
void bind_match(base::Stmt& s, const Query& q);

// The generations in search_dead, sorted.
std::vector<int64_t> dead_gens(sqlite3* db);
bool contains(const std::vector<int64_t>& sorted, int64_t v);

// The extracted text of an item as snap has it.
Extracted read_extracted(store::Snapshot& snap, const store::ItemInfo& info);
// The item indexed under generation gen, as snap has it (none if it is gone);
// lookup is a statement of kItemOfGen.
std::optional<store::ItemInfo> item_of(store::Snapshot& snap, base::Stmt& lookup, int64_t gen);
// Whether the item of generation gen matches q word for word (the index found
// it with phrases loosened to their words).
bool exact_match(store::Snapshot& snap, base::Stmt& lookup, Tokenizer& tok, const Query& q, int64_t gen);

// Which candidates of q need the word-for-word check (exact_match): all of
// them when q has a phrase; otherwise those that have a content: word in
// their title too, and those that have a word of q only as buckets (found
// through them, or not excluded because of them). Elsewhere the index alone
// is certain.
class CheckPlan {
 public:
  CheckPlan(sqlite3* db, const Query& q) : exact_(q.exact) {
    if (!exact_) return;
    auto phrase = [](const Phrase& p) { return p.tokens.size() > 1; };
    all_ = std::any_of(q.none.begin(), q.none.end(), phrase);
    for (const auto& group : q.all) all_ = all_ || std::any_of(group.begin(), group.end(), phrase);
    if (all_) return;
    auto add_rows = [&](const std::vector<int64_t>& rows) { rows_.insert(rows_.end(), rows.begin(), rows.end()); };
    auto add = [&](const Phrase& p) {
      if (is_body_word(p)) add_rows(rows_matching(db, title_word_fts(p)));
      if (!has_bucket(p)) return;
      // A prefix's own words are looked up a second time (to leave out the
      // rows that have them) only when its buckets hold more rows than are
      // cheaper to check: for a short prefix that second look-up costs as
      // much as the query.
      std::vector<int64_t> rows = rows_matching(db, bucket_rows_fts(p));
      if (p.prefix && rows.size() > kCheckBucketRowsUpTo) rows = rows_matching(db, bucket_only_fts(p));
      add_rows(rows);
    };
    for (const auto& group : q.all) std::for_each(group.begin(), group.end(), add);
    std::for_each(q.none.begin(), q.none.end(), add);
    std::sort(rows_.begin(), rows_.end());
  }
  bool needed(int64_t gen) const { return exact_ && (all_ || contains(rows_, gen)); }

 private:
  bool exact_ = false;
  bool all_ = false;
  std::vector<int64_t> rows_;
};


}  // namespace itemfs::search::detail
