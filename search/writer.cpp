// Writing the index's rows into search.db (Index::Impl, see index_impl.h):
// inserts, drops (deferred full-text deletes), the cache of recent rows, the
// facet values, and the write transaction.

#include <algorithm>

#include "search/access.h"
#include "search/index_impl.h"
#include "search/matching.h"
#include "search/ranking.h"

namespace itemfs::search {

Index::Impl::WriterStmts& Index::Impl::stmts(sqlite3* db) {
  auto& p = writer_stmts[db];
  if (!p) p = std::make_unique<WriterStmts>(db);
  return *p;
}

void Index::Impl::remember(int64_t gen, int64_t sha, Row row) {
  if (row.bytes() > kRecentCacheBytes / 8) return;
  forget(gen);
  recent_bytes += row.bytes();
  recent.emplace(gen, Recent{sha, std::move(row)});
  recent_order.push_back(gen);
  while (recent_bytes > kRecentCacheBytes && !recent_order.empty()) {
    forget(recent_order.front());
    recent_order.pop_front();
  }
  if (recent_order.size() > 2 * recent.size() + 64) {  // drop entries forgotten earlier
    std::deque<int64_t> live;
    for (int64_t g : recent_order) {
      if (recent.count(g)) live.push_back(g);
    }
    recent_order.swap(live);
  }
}
void Index::Impl::forget(int64_t gen) {
  auto it = recent.find(gen);
  if (it == recent.end()) return;
  recent_bytes -= it->second.row.bytes();
  recent.erase(it);  // its recent_order entry is dropped lazily
}

// The row that was inserted for generation `gen` (hash `sha`), if this
// index still has it: the item's earlier version is gone from the store
// by the time the feed tells of the change.
std::optional<Row> Index::Impl::old_row(int64_t gen, int64_t sha) {
  if (auto it = recent.find(gen); it != recent.end() && it->second.sha == sha) return it->second.row;
  if (auto it = recalled.find(gen); it != recalled.end() && it->second.sha == sha) return it->second.row;
  return std::nullopt;
}

// Removes generation `gen` from the index.
// With `defer`, the full-text row stays behind as a dead row (listed in
// search_dead, skipped by queries) and is deleted later with others
// in one go: by the next put, or once kMaxPending have gathered. FTS5 writes
// a segment for every statement that follows a change to it in a
// transaction, so a delete on its own cost several times the rest of a
// remove.
void Index::Impl::drop(WriterStmts& st, int64_t gen, int64_t ino, int64_t sha, bool defer) {
  if (auto q = queued.find(gen); q != queued.end()) {  // put in this transaction, not written yet
    queued_bytes -= q->second.bytes();
    queued.erase(q);
    forget(gen);
    st.doc_delete.bind(1, gen).run();
    return;
  }
  (void)ino;
  if (auto row = old_row(gen, sha)) {
    if (defer) {
      st.add_dead.bind(1, gen).run();
      add_pending(gen, std::move(*row));
    } else {
      st.fts_delete.bind(1, gen).bind(2, row->text).run();
    }
  } else {
    st.add_dead.bind(1, gen).run();  // its tokens stay behind under a generation no item has
  }
  forget(gen);
  st.doc_delete.bind(1, gen).run();
  if (pending.size() >= kMaxPending || pending_bytes >= kMaxPendingBytes) flush_pending(st);
  if (++dropped % kSweepCheckEvery == 0 && dropped * kSweepFraction >= uint64_t(indexed_items(st.db, 0))) {
    sweep_values(st.db);
  }
}

// Deletes the facet values and tag lists no entry uses any more (an item
// changed or went). It reads all of search_doc, so it runs once a good
// part of the entries have been dropped since the last time, and when
// the index is closed.
void Index::Impl::sweep_values(sqlite3* db) {
  exec_sql(db,
       "DELETE FROM search_value WHERE id NOT IN ("
       " SELECT host FROM search_doc WHERE host IS NOT NULL UNION ALL"
       " SELECT author FROM search_doc WHERE author IS NOT NULL UNION ALL"
       " SELECT lang FROM search_doc WHERE lang IS NOT NULL UNION ALL"
       " SELECT tags FROM search_doc WHERE tags IS NOT NULL)");
  dropped = 0;
}

void Index::Impl::add_pending(int64_t gen, Row row) {
  if (auto it = pending.find(gen); it != pending.end()) {
    pending_bytes -= it->second.bytes();
    pending.erase(it);
  }
  pending_bytes += row.bytes();
  pending.emplace(gen, std::move(row));
}

// Copies into temp table `table` the rows whose search_doc entry exists
// (`live`) or is gone (!`live`), for one INSERT ... SELECT afterwards:
// FTS5 writes what it has gathered at the start of each statement in a
// transaction, so one statement per row would write a segment each. The
// table is created here, not once: a transaction that rolls back takes it
// away. Returns how many rows were copied.
template <class Rows>
size_t Index::Impl::stage_rows(WriterStmts& st, const std::string& table, const Rows& rows, bool live) {
  exec_sql(st.db, ("CREATE TEMP TABLE IF NOT EXISTS " + table + "(gen INTEGER PRIMARY KEY, text TEXT)").c_str());
  base::Stmt add(st.db, "INSERT OR REPLACE INTO temp." + table + "(gen, text) VALUES(?,?)");
  size_t copied = 0;
  for (const auto& [gen, row] : rows) {
    bool exists = false;
    {
      base::StmtScope r(st.doc_exists);
      exists = st.doc_exists.bind(1, gen).step();
    }
    if (exists != live) continue;
    add.bind(1, gen).bind(2, row.text).run();
    ++copied;
  }
  return copied;
}

// Deletes the rows of deferred drops. One whose generation is an entry
// again was dropped in a transaction that did not commit: it is kept.
void Index::Impl::flush_pending(WriterStmts& st) {
  if (pending.empty()) return;
  size_t deleted = stage_rows(st, "search_dropped", pending, false);
  pending.clear();
  pending_bytes = 0;
  if (deleted == 0) return;
  exec_sql(st.db,
       "INSERT INTO search_fts(search_fts, rowid, text) SELECT 'delete', gen, text FROM temp.search_dropped;"
       "DELETE FROM search_dead WHERE gen IN (SELECT gen FROM temp.search_dropped);"
       "DELETE FROM temp.search_dropped;");
}

void Index::Impl::drop_ino(WriterStmts& st, int64_t ino, bool defer) {
  int64_t gen = 0, sha = 0;
  {
    base::StmtScope r(st.by_ino);
    st.by_ino.bind(1, ino);
    if (!st.by_ino.step()) return;
    gen = st.by_ino.int64(0);
    sha = st.by_ino.int64(1);
  }
  drop(st, gen, ino, sha, defer);
}

// The search_value id of a facet value or tag list (added if new); none
// for "".
std::optional<int64_t> Index::Impl::value_id(WriterStmts& st, const std::string& value) {
  if (value.empty()) return std::nullopt;
  const int64_t hash = value_hash(value);
  {
    base::StmtScope r(st.value_find);
    st.value_find.bind(1, hash);
    while (st.value_find.step()) {
      if (st.value_find.text(1) == value) return st.value_find.int64(0);
    }
  }
  base::StmtScope r(st.value_add);
  if (!st.value_add.bind(1, hash).bind(2, value).step()) throw StoreError(EIO, "search: cannot add a facet value");
  return st.value_add.int64(0);
}

void Index::Impl::insert(WriterStmts& st, const store::ItemInfo& item, const Extracted& x) {
  insert(st, item, x, make_row(x, write_tok));
}

// With the row made ahead from x (make_row() is a function of x alone).
void Index::Impl::insert(WriterStmts& st, const store::ItemInfo& item, const Extracted& x, Row row) {
  int64_t gen;
  {
    base::StmtScope r(st.next_seq);
    if (!st.next_seq.step()) throw StoreError(EIO, "search: search_meta has no next_seq row");
    gen = st.next_seq.int64(0);
  }
  queued_bytes += row.bytes();
  queued[gen] = row;
  ++inserted;
  st.doc_insert.bind(1, gen).bind(2, item.ino).bind(3, sha8(item.sha256)).bind(4, x.date());
  st.doc_insert.bind(5, int64_t(row.length_class));
  st.doc_insert.bind(6, value_id(st, x.host)).bind(7, value_id(st, x.author)).bind(8, value_id(st, normal_lang(x.lang)));
  st.doc_insert.bind(9, value_id(st, join_tags(x.tags)));
  st.doc_insert.run();
  remember(gen, sha8(item.sha256), std::move(row));
  if (queued_bytes > kMaxQueuedBytes) flush_queued(st);
}

// Writes the queued rows of this transaction's puts: all in one statement,
// so FTS5 writes one segment for them (see stage_rows). One whose entry
// is gone came from a transaction that did not commit.
void Index::Impl::flush_queued(WriterStmts& st) {
  if (queued.empty()) return;
  size_t added = stage_rows(st, "search_added", queued, true);
  queued.clear();
  queued_bytes = 0;
  if (added == 0) return;
  exec_sql(st.db,
       "INSERT INTO search_fts(rowid, text) SELECT gen, text FROM temp.search_added;"
       "DELETE FROM temp.search_added;");
}

void Index::Impl::set_closed(WriterStmts& st, const store::ItemInfo& item) {
  if (closed_mode(item.attrs.mode)) {
    st.closed_set.bind(1, item.ino).bind(2, int64_t(item.attrs.mode)).bind(3, int64_t(item.attrs.uid));
    st.closed_set.bind(4, int64_t(item.attrs.gid)).run();
  } else {
    st.closed_delete.bind(1, item.ino).run();
  }
}

void Index::Impl::set_applied(sqlite3* w, uint64_t seq) {
  base::Stmt(w, "UPDATE search_meta SET value=? WHERE key='applied'").bind(1, int64_t(seq)).run();
}

// Forgets what this index keeps in memory of rows not yet (or no longer)
// in search.db: after a transaction of search.db that did not commit.
void Index::Impl::forget_unwritten() {
  pending.clear();
  pending_bytes = 0;
  queued.clear();
  queued_bytes = 0;
  recent.clear();
  recent_order.clear();
  recent_bytes = 0;
}

// Runs fn in one write transaction of search.db.
void Index::Impl::in_transaction(const std::function<void(sqlite3*)>& fn) {
  sqlite3* w = sdb.writer();
  exec_sql(w, "BEGIN IMMEDIATE");
  try {
    fn(w);
    exec_sql(w, "COMMIT");
  } catch (...) {
    sqlite3_exec(w, "ROLLBACK", nullptr, nullptr, nullptr);
    forget_unwritten();
    throw;
  }
}

}  // namespace itemfs::search
