// itemfs search: a full-text index of the store's items, kept in the store's
// own SQLite database, and the query language that reads it.
//
// The contract:
//  - The index lives in tables named search_* inside store.db. It is updated
//    by the CommitHook calls, which the store runs inside its write
//    transaction, so a search sees exactly the items of one committed state:
//    after Store::write() returns, the next run() reflects the change.
//  - Text comes from the string values of each item (capped per item, see
//    README). Well-known fields feed filters and facets: title, url (and its
//    host), author, tags, lang / metadata.lang, published_at, crawled_at. Any
//    other field with a short scalar value can be filtered as name:value or
//    dotted.name:value.
//  - Ranking is bm25 with title matches weighted above body matches.
//  - Queries are parsed by this library, never handed to FTS5 as written: a
//    bad query returns EINVAL with a sentence saying what is wrong, and no
//    query can make the engine fail or crash.
//  - Who is asking: run(), suggest_json() and facets_json() take a Reader
//    (uid, gid, supplementary groups) and answer with the items that reader
//    may read, decided from each item's owner, group and mode as the
//    kernel's default_permissions decides (Reader::may_read; and, as on
//    the way to the item, search permission on items/ and its shard,
//    Reader::may_search). Unreadable
//    items are left out before ranking and limit:, so the hits are the
//    reader's best ones and every count (total, facets, a suggested word's
//    docs) counts only readable items; no id, snippet, facet value or word
//    of an unreadable item reaches the answer. The check reads the items'
//    modes in the same snapshot as the index (so chmod and chown count at
//    once, with nothing to keep in step), and only of the items that some
//    non-root reader may not read (a read bit missing: a partial index of
//    the store's items, search_items_closed): for root, and for a store
//    whose items are all readable by everyone (0644, 0444), a query costs
//    what it did without the check. The default Reader is root: `itemfs
//    search` is run by whoever can open the store, and shows everything.
//  - Every method is thread-safe. run(), suggest_json() and facets_json() read
//    one store Snapshot (a point in time) and never wait for writers.
//  - Errors a caller must act on come back as Status; unexpected SQLite
//    failures throw store::StoreError (inside a hook this aborts the batch).
//
// Usage:
//   auto store = itemfs::store::Store::open(dir);
//   itemfs::search::Index index(*store);   // must not outlive the store
//   store->add_hook(&index);
//   itemfs::search::Results r;
//   if (auto st = index.run("solar panel -wind limit:10", r); !st.ok()) ...
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/store.h"

namespace itemfs::search {

// Who is asking, as the kernel knows a caller: uid, gid and supplementary
// groups. uid 0 reads everything.
struct Reader {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;

  bool root() const { return uid == 0; }
  // Whether this reader may read a file (search a directory) of this owner,
  // group and mode, as default_permissions decides: the owner bits if uid
  // is the owner, else the group bits if the file's group is gid or one of
  // groups, else the other bits. Root may do anything.
  bool may_read(uint32_t mode, uint32_t owner, uint32_t group) const { return may(mode, owner, group, 04); }
  bool may_search(uint32_t mode, uint32_t owner, uint32_t group) const { return may(mode, owner, group, 01); }
  bool may(uint32_t mode, uint32_t owner, uint32_t group, uint32_t bit) const;
  bool operator==(const Reader&) const = default;
};

struct Hit {
  std::string id;
  double score = 0;     // higher is better (negated bm25); 0 for sort:date-only queries
  std::string snippet;  // a short passage of the item; matched words marked as [word]
};

struct Results {
  std::string query;      // the query as given
  uint64_t total = 0;     // number of matching items (not capped by limit:)
  std::vector<Hit> hits;  // at most limit: entries, best first (or newest first for sort:date)
};

class Index : public store::CommitHook {
 public:
  // Creates the index tables if missing (and fills them from the items when
  // the store already has some). The caller then calls store.add_hook(this).
  // Throws store::StoreError if the index was written by a newer itemfs.
  explicit Index(store::Store& store);
  ~Index() override;
  Index(const Index&) = delete;
  Index& operator=(const Index&) = delete;

  // Runs `query` (see readme()). EINVAL with a sentence on a bad query.
  // Only items `who` may read are found (see the contract above).
  store::Status run(std::string_view query, Results& out, const Reader& who = {});
  // The same without snippets (each costs a read of its item): for listings.
  store::Status run_without_snippets(std::string_view query, Results& out, const Reader& who = {});

  // The document served as search/<query>.json:
  //   {"query": q, "total": n, "hits": [{"rank": 1, "id": ..., "path":
  //    "items/<shard>/<id>.json", "score": ..., "snippet": ...}, ...]}
  static std::string to_json(const Results& r);

  // Indexed terms starting with `prefix` (folded like the index: lower case,
  // accents removed), most frequent first, as
  //   {"prefix": p, "terms": [{"term": t, "docs": n}, ...]}  (at most 50 terms)
  // Served as search/<prefix>.suggest.json. EINVAL if prefix has no letters.
  // For a reader who may not read some items, `docs` counts the items it
  // may read and a word no such item has is not listed.
  store::Status suggest_json(std::string_view prefix, std::string& out, const Reader& who = {});

  // Counts of the items matching `query` by facet, as
  //   {"query": q, "total": n, "facets": {"host": [{"value": v, "count": n}, ...],
  //    "author": [...], "tag": [...], "lang": [...], "year": [...]}}
  // (each list at most 20 entries, largest first; limit: is ignored).
  // Served as search/<query>.facets.json. Only items `who` may read count.
  store::Status facets_json(std::string_view query, std::string& out, const Reader& who = {});

  // The query language documentation (search/README.md, embedded at build time).
  static std::string_view readme();

  // Rebuilds the whole index from the items in one write transaction.
  void reindex();
  // Whether opening rebuilt the index (it was missing or of another
  // version), so that it is as fresh as reindex() would make it.
  bool rebuilt_when_opened() const;

  // Readable problem lines when the index is out of step with the items
  // (missing, extra or stale entries, damaged FTS structure). Empty if clean.
  std::vector<std::string> check();

  // store::CommitHook
  void on_put(store::Transaction& txn, const store::ItemInfo& item, std::istream& content) override;
  void on_remove(store::Transaction& txn, const store::ItemInfo& item) override;
  void on_rename(store::Transaction& txn, const store::ItemInfo& item, std::string_view old_id) override;
  // Writes the full-text rows of the batch's puts (and pending deletes) at once.
  void before_commit(store::Transaction& txn) override;
  // The text extraction of on_put() (thread-safe), for Store::prepare().
  std::unique_ptr<store::PreparedPut> prepare_put(std::string_view content) override;
  void on_put_prepared(store::Transaction& txn, const store::ItemInfo& item, std::istream& content,
                       store::PreparedPut* prepared) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace itemfs::search
