// Index::Impl: the state of a search index and the functions that keep and
// read it, shared by the files of search/ that implement Index (search.h):
// writer.cpp writes rows into search.db, feed.cpp follows the store's change
// feed, run.cpp runs a query, facets.cpp answers suggestions and facets,
// check.cpp checks the index, index.cpp opens and closes it. Private to
// search/.
//
// Design (the why is in README.md, "How it works"):
//  - search_fts is a contentless FTS5 table (content='') with one column and
//    detail=none: for each token, the rows that hold it, nothing more. A row
//    is the title's words, the same words again marked as title words
//    (kTitleMark + word), the rest of the text, field filters as
//    kFieldMark + field code + word and exact-value markers (host=...,
//    lang=...), and a token for the length class of its text (kLengthMark +
//    a letter; search_doc.len holds it too, which is where ranking reads it).
//    An identifier (ids, hashes: see is_identifier) is held as two bucket
//    tokens instead of itself; what a query finds through them is checked
//    against the item (CheckPlan), as phrases are.
//  - Its rowid is a generation number, new for every indexed version of an
//    item. search_doc maps generation -> item (ino, hash) plus the facet
//    values (ids of search_value, which keeps each value and tag list
//    once); the item's id is items.id.
//    Deleting from a contentless table needs the exact values that were
//    inserted; they are re-extracted from the previous version of the item
//    (or taken from a small cache of recent inserts). In the rare case
//    neither is available the old generation is left behind as a dead row,
//    listed in search_dead: queries skip those, and reindex reclaims them.
//  - Ranking is computed here from sorted lists of rowids (the rows of the
//    query, of each word's title token), not by FTS5 (see "Ranking").
//  - Snippets are made at query time from the top hits' own text, read only

#pragma once

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "search/extract.h"
#include "search/follower.h"
#include "base/sqlite_stmt.h"
#include "search/ranking.h"
#include "search/row.h"
#include "search/search.h"
#include "search/search_db.h"
#include "search/tokenize.h"
#include "store/store.h"

namespace itemfs::search {

namespace detail {

// The name of the index in the store's list of feed followers.
constexpr const char* kFollowerName = "search";
// Changes applied in one transaction of search.db, and the items' bytes
// read for one at most: a batch holds its items' bytes, text and rows at
// once, about 6 KB an item of the benchmark corpus (12 MB for 2,000).
constexpr size_t kFeedBatch = 1000;
constexpr size_t kFeedBatchBytes = 8u << 20;
// Items whose text is extracted at once (on worker threads) when the index
// is built from all the items.
constexpr size_t kRebuildBatch = 512;
// A batch of fewer items than this has its text extracted on the
// follower's thread alone. A mount's writes reach the index in batches of
// a few dozen items; a helper thread made for each of them (with the
// malloc arena it fills with rows) added megabytes to the daemon's resident
// size and no speed, as the writers keep the CPUs busy meanwhile. A build
// or a catch-up (batches of hundreds) extracts on up to 4 threads.
constexpr size_t kParallelExtractFrom = 256;
// The threads that extract the text of `items` items on `cpus` CPUs.
inline size_t extraction_threads(size_t items, size_t cpus) {
  if (items < kParallelExtractFrom) return std::min<size_t>(items, 1);
  return std::min<size_t>({items, std::max<size_t>(cpus, 1), 4});
}
constexpr size_t kRecentCacheBytes = 8u << 20;
constexpr size_t kMaxPending = 256;  // deferred full-text deletes (see Impl::drop)
constexpr size_t kMaxPendingBytes = 8u << 20;
constexpr size_t kMaxQueuedBytes = 8u << 20;  // puts' rows held until the commit
constexpr size_t kMaxProblems = 100;
// An Index that inserted at least kMergeAfterRows rows, and at least
// 1/kMergeFraction of all rows, merges the full-text index when it closes.
constexpr uint64_t kMergeAfterRows = 1000;
constexpr uint64_t kMergeFraction = 4;
// Unused facet values are swept when the entries dropped since the last
// sweep reach 1/kSweepFraction of the entries (checked every
// kSweepCheckEvery drops), and on close.
constexpr uint64_t kSweepCheckEvery = 1000;
constexpr uint64_t kSweepFraction = 4;
// Snippets are made on two threads for at least this many hits: a thread
// costs about as much as a few hits' snippets.
constexpr size_t kSnippetsOnTwoThreadsFrom = 16;

}  // namespace detail

using namespace detail;
using store::Status;
using store::StoreError;

struct Index::Impl {
  Impl(store::Store& s, IndexOptions o)
      : store(s), options(std::move(o)), sdb(s.dir() / "search.db", s.options().read_only), write_tok(lib) {}

  // Statements on a writer connection, prepared once.
  struct WriterStmts {
    explicit WriterStmts(sqlite3* db_)
        : db(db_),
          by_ino(db, "SELECT gen, sha FROM search_doc WHERE ino=?"),
          next_seq(db, "UPDATE search_meta SET value=value+1 WHERE key='next_seq' RETURNING value-1"),
          add_dead(db, "INSERT OR IGNORE INTO search_dead(gen) VALUES(?)"),
          doc_exists(db, "SELECT 1 FROM search_doc WHERE gen=?"),
          value_find(db, "SELECT id, value FROM search_value WHERE hash=?"),
          value_add(db, "INSERT INTO search_value(hash, value) VALUES(?,?) RETURNING id"),
          fts_delete(db, "INSERT INTO search_fts(search_fts, rowid, text) VALUES('delete',?,?)"),
          doc_insert(db,
                     "INSERT INTO search_doc(gen, ino, sha, date, len, host, author, lang, tags) "
                     "VALUES(?,?,?,?,?,?,?,?,?)"),
          doc_delete(db, "DELETE FROM search_doc WHERE gen=?"),
          closed_set(db, "INSERT OR REPLACE INTO search_closed(ino, mode, uid, gid) VALUES(?,?,?,?)"),
          closed_delete(db, "DELETE FROM search_closed WHERE ino=?") {}
    sqlite3* db;
    base::Stmt by_ino, next_seq, add_dead, doc_exists, value_find, value_add, fts_delete, doc_insert, doc_delete;
    base::Stmt closed_set, closed_delete;
  };

  struct Recent {
    int64_t sha;
    Row row;
  };

  store::Store& store;
  IndexOptions options;
  SearchDb sdb;
  Fts5Library lib;
  std::unique_ptr<Follower> follower;  // none when the index is read-only
  std::mutex write_mu;  // guards everything below
  uint64_t applied = 0;  // the feed's last change in search.db
  Tokenizer write_tok;
  std::map<sqlite3*, std::unique_ptr<WriterStmts>> writer_stmts;
  std::unordered_map<int64_t, Recent> recent;  // by generation
  std::unordered_map<int64_t, Recent> recalled;  // rows made again for this batch's drops (see recall_row)
  std::unordered_map<int64_t, Row> pending;    // deferred deletes by generation (see drop())
  size_t pending_bytes = 0;
  std::map<int64_t, Row> queued;  // rows of this transaction's puts, written by before_commit
  size_t queued_bytes = 0;
  std::deque<int64_t> recent_order;
  size_t recent_bytes = 0;
  uint64_t inserted = 0;  // rows inserted since the last merge into one segment (see ~Index)
  uint64_t dropped = 0;   // entries dropped since the last sweep_values()
  bool rebuilt_when_opened = false;

  // Tokenizers kept for extract_all() and queries (making one per use
  // showed in a query's time), one per thread that uses one at a time.
  std::mutex tok_pool_mu;
  std::vector<std::unique_ptr<Tokenizer>> tok_pool;
  struct PooledTokenizer {
    Impl& impl;
    std::unique_ptr<Tokenizer> tok;
    PooledTokenizer(Impl& i, std::unique_ptr<Tokenizer> t) : impl(i), tok(std::move(t)) {}
    PooledTokenizer(PooledTokenizer&&) = default;
    ~PooledTokenizer() {
      if (!tok) return;
      std::lock_guard lock(impl.tok_pool_mu);
      try {
        impl.tok_pool.push_back(std::move(tok));
      } catch (const std::bad_alloc&) {  // not kept: it is made again when needed
      }
    }
    Tokenizer& operator*() { return *tok; }
  };
  // A tokenizer from the pool, back to it when the holder goes.
  PooledTokenizer pooled_tokenizer();

  // --- Writing rows (writer.cpp)
  WriterStmts& stmts(sqlite3* db);
  void remember(int64_t gen, int64_t sha, Row row);
  void forget(int64_t gen);
  // The row that was inserted for generation `gen` (hash `sha`), if this
  // index still has it.
  std::optional<Row> old_row(int64_t gen, int64_t sha);
  // Removes generation `gen` from the index; with `defer`, its full-text row
  // is deleted later with others in one go.
  void drop(WriterStmts& st, int64_t gen, int64_t ino, int64_t sha, bool defer = false);
  void drop_ino(WriterStmts& st, int64_t ino, bool defer = false);
  // Deletes the facet values and tag lists no entry uses any more.
  void sweep_values(sqlite3* db);
  void add_pending(int64_t gen, Row row);
  template <class Rows>
  size_t stage_rows(WriterStmts& st, const std::string& table, const Rows& rows, bool live);
  // Deletes the rows of deferred drops.
  void flush_pending(WriterStmts& st);
  // The search_value id of a facet value or tag list (added if new); none
  // for "".
  static std::optional<int64_t> value_id(WriterStmts& st, const std::string& value);
  void insert(WriterStmts& st, const store::ItemInfo& item, const Extracted& x);
  // With the row made ahead from x (make_row() is a function of x alone).
  void insert(WriterStmts& st, const store::ItemInfo& item, const Extracted& x, Row row);
  // Writes the queued rows of this transaction's puts.
  void flush_queued(WriterStmts& st);
  void set_closed(WriterStmts& st, const store::ItemInfo& item);
  void set_applied(sqlite3* w, uint64_t seq);
  // Forgets what this index keeps in memory of rows not yet (or no longer)
  // in search.db.
  void forget_unwritten();
  // Runs fn in one write transaction of search.db.
  void in_transaction(const std::function<void(sqlite3*)>& fn);

  // --- Following the feed (feed.cpp)
  static constexpr size_t kFeedBytes = 64 << 10;
  // What a batch does to one item: its new row (made on a worker thread).
  struct Work {
    store::ItemInfo info;
    std::string bytes;
    Extracted x;
    Row row;
  };
  // An item's text from its bytes in memory, fed in pieces of kFeedBytes.
  static Extracted extract_bytes(std::string_view bytes);
  // Extracts the text of every item of `work` on up to a few threads.
  void extract_all(std::vector<Work>& work);
  // The item's bytes from snap, or false when they cannot be read back.
  static bool read_bytes(store::Snapshot& snap, const store::ItemInfo& info, std::string& out);
  // Makes sure the row of generation `gen` (hash `sha`) can be deleted.
  void recall_row(store::Snapshot& snap, int64_t gen, int64_t sha, const std::vector<uint64_t>& seqs);
  // Applies the next batch of the store's change feed (the follower's step).
  Follower::Step apply_batch();
  // Builds the whole index anew from the items.
  void rebuild_locked(const IndexOptions::Progress& progress);

  // --- Reading (index.cpp, run.cpp)
  // A read view of the index for a query, once the index has applied every
  // change committed before the query began; none if there is no index.
  std::optional<SearchDb::View> query_view(uint64_t* pending_out);
  // The changes committed before now that the index has not applied, after
  // waiting for them.
  uint64_t wait_for_feed(std::optional<std::chrono::milliseconds> wait);

  struct Candidate {
    int64_t gen;
    double score;  // higher is better
    std::optional<int64_t> date;
    int length_class;
  };

  Status run(std::string_view text, Results& out, bool snippets, const Reader& who);

  using ClassTable = detail::ClassTable;
  std::mutex class_mu;
  std::shared_ptr<const ClassTable> class_cache;  // guarded by class_mu
  // The length classes for snapshot db (read or brought up to date as
  // needed); live: the number of items the index has in it.
  std::shared_ptr<const ClassTable> class_table(sqlite3* db, int64_t live);
};

}  // namespace itemfs::search
