// itemfs search: a full-text index of the store's items, kept in its own
// SQLite database beside the store (STORE/search.db), and the query language
// that reads it.
//
// The contract:
//  - The index follows the store's change feed (store.h, Store::last_seq,
//    Snapshot::changes_since): a thread of its own applies the feed in
//    batches, woken by the store's commit listener, reading each changed
//    item through a store Snapshot, and records in search.db the last
//    sequence number it applied, in the same transaction as the rows. It
//    never runs inside the store's transactions and never decides what the
//    store holds: it can be rebuilt, or caught up, at any time. A crash
//    anywhere is repaired by catching up when the index is next opened.
//  - A query first waits until the index has applied every change committed
//    before the query began (at most IndexOptions::max_wait; by default
//    until then), so a search reflects every write at once. If it is still
//    behind, it answers from what is indexed and says how many changes are
//    pending (Results::pending, "pending": N in to_json()).
//  - A missing search.db, or one of another index version, is built from
//    the items when the Index is made (IndexOptions::progress tells how far
//    it is); a newer version is refused. A store opened read-only has its
//    index read as it is, never written: a missing one makes queries EIO,
//    one behind answers with "pending".
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
//    Reader::may_search). Unreadable items are left out before ranking and
//    limit:, so the hits are the reader's best ones and every count (total,
//    facets, a suggested word's docs) counts only readable items; no id,
//    snippet, facet value or word of an unreadable item reaches the answer.
//    The modes and owners of items come from the feed (a chmod or chown is
//    a change like any other, so it counts at once), kept in search.db only
//    for the items some non-root reader may not read (a read bit missing):
//    for root, and for a store whose items are all readable by everyone, a
//    query costs what it did without the check. Directories' modes are read
//    from the store at query time. The default Reader is root: `itemfs
//    search` is run by whoever can open the store, and shows everything.
//  - Every method is thread-safe. run(), suggest_json() and facets_json()
//    read one state of the index and never wait for the store's writers.
//  - Errors a caller must act on come back as Status; unexpected SQLite
//    failures throw store::StoreError.
//
// Usage:
//   auto store = itemfs::store::Store::open(dir);
//   itemfs::search::Index index(*store);   // must not outlive the store
//   itemfs::search::Results r;
//   if (auto st = index.run("solar panel -wind limit:10", r); !st.ok()) ...
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
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
  // Changes committed before the query that the index had not applied when
  // it answered (0: none; the answer is as of every write before it).
  uint64_t pending = 0;
};

struct IndexOptions {
  // How long a query waits for the index to apply the changes committed
  // before it began; none: until it has.
  std::optional<std::chrono::milliseconds> max_wait;
  // Called while the index is built from the items (opening a missing or
  // old index, reindex()) with the items done so far and their number.
  using Progress = std::function<void(uint64_t done, uint64_t total)>;
  Progress progress;
};

class Index {
 public:
  // Opens STORE/search.db (building it from the items if it is missing or
  // of another version), applies what the store committed while no index
  // followed it, and starts following the store's change feed.
  // Throws store::StoreError if the index was written by a newer itemfs.
  explicit Index(store::Store& store, IndexOptions options = {});
  ~Index();
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

  // Rebuilds the whole index from the items in one transaction of
  // search.db (IndexOptions::progress tells how far it is). EROFS on a
  // read-only store.
  void reindex();
  // Whether opening built the index (it was missing or of another
  // version), so that it is as fresh as reindex() would make it.
  bool rebuilt_when_opened() const;
  // Returns once the index has applied every change committed before the
  // call (or its follower failed: check() then says why).
  void catch_up();
  // The changes committed that the index has not applied yet.
  uint64_t lag();

  // Readable problem lines when the index is out of step with the items
  // (behind the feed after catching up, missing, extra or stale entries,
  // wrong modes, damaged FTS structure). Empty if clean.
  std::vector<std::string> check();

 private:
  // check() at one point of the feed; `store_moved`: the store committed
  // past what was caught up before the index could be read (a mount beside
  // this process), so the comparison is to be made again.
  std::vector<std::string> check_at_one_point(bool& store_moved);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace itemfs::search
