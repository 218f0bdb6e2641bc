// Checking the index against the store (Index::check, what itemfs fsck
// reports): the feed cursor, every item's entry and full-text row, the
// facet values, the readers' modes, orphan and dead rows, and FTS5's own
// integrity check.

#include <array>
#include <unordered_map>
#include <unordered_set>

#include "search/access.h"
#include "search/index_impl.h"
#include "search/matching.h"
#include "search/ranking.h"
#include "search/schema.h"

namespace itemfs::search {

// A mount beside this process may commit between the catch-up and the
// snapshot the index is compared with: the store is then ahead of the
// index, which is no fault of the index. The comparison is made again from
// a new catch-up, a few times, before that is reported.
std::vector<std::string> Index::check() {
  for (int attempt = 1;; ++attempt) {
    bool store_moved = false;
    std::vector<std::string> problems = check_at_one_point(store_moved);
    if (!store_moved || attempt == 5) return problems;
  }
}

std::vector<std::string> Index::check_at_one_point(bool& store_moved) {
  std::vector<std::string> problems;
  uint64_t more = 0;
  auto problem = [&](std::string line) {
    if (problems.size() < kMaxProblems) {
      problems.push_back("search: " + std::move(line));
    } else {
      ++more;
    }
  };
  catch_up();
  // The follower waits meanwhile, so that the index and the store are read
  // at the same point of the feed.
  std::unique_lock writing(impl_->write_mu);
  {
    auto view = impl_->sdb.read();
    sqlite3* db = view.db();
    if (!db) return {"search: the index is missing (itemfs reindex builds it)"};
    for (const char* table : {"search_meta", "search_doc", "search_value", "search_dead", "search_fts", "search_closed"}) {
      if (!table_exists(db, table)) return {"search: the index tables are missing (itemfs reindex rebuilds them)"};
    }
    auto snap = impl_->store.snapshot();
    const auto applied = uint64_t(meta_value(db, "applied").value_or(0));
    if (applied != snap->seq()) {
      store_moved = applied < snap->seq();
      return {"search: the index has applied the store's changes up to " + std::to_string(applied) +
              ", but the store is at " + std::to_string(snap->seq()) +
              (impl_->follower ? " (" + impl_->follower->last_error() + ")" : std::string(" (read-only)"))};
    }
    if (auto cursor = impl_->store.cursor(kFollowerName); cursor && *cursor > applied) {
      problem("the store's feed keeps changes after " + std::to_string(*cursor) + " only, but the index applied up to " +
              std::to_string(applied));
    }
    std::unordered_map<int64_t, std::array<int64_t, 3>> closed;  // by ino: mode, uid, gid
    {
      base::Stmt s(db, "SELECT ino, mode, uid, gid FROM search_closed");
      while (s.step()) closed[s.int64(0)] = {s.int64(1), s.int64(2), s.int64(3)};
    }
    if (meta_value(db, "version").value_or(0) != kIndexVersion) {
      problem("the index has version " + std::to_string(meta_value(db, "version").value_or(0)) + ", expected " +
              std::to_string(kIndexVersion));
    }
    struct Doc {
      int64_t gen, sha;
      bool seen = false;
    };
    std::unordered_map<int64_t, Doc> docs;  // by ino
    std::unordered_set<int64_t> uses;  // the search_value ids entries hold
    {
      base::Stmt s(db, "SELECT ino, gen, sha, host, author, lang, tags FROM search_doc");
      while (s.step()) {
        docs.emplace(s.int64(0), Doc{s.int64(1), s.int64(2)});
        for (int c = 3; c <= 6; ++c) {
          if (!s.is_null(c)) uses.insert(s.int64(c));
        }
      }
    }
    {
      // (Values no entry uses wait for the next sweep: not a problem.) A
      // value under a wrong hash would be added again, splitting its count.
      base::Stmt s(db, "SELECT id, hash, value FROM search_value");
      std::unordered_set<std::string> values;
      uint64_t misfiled = 0, twice = 0;
      while (s.step()) {
        uses.erase(s.int64(0));
        misfiled += s.int64(1) != value_hash(s.text(2));
        twice += !values.emplace(s.text(2)).second;
      }
      if (!uses.empty()) problem(std::to_string(uses.size()) + " facet values of items are missing");
      if (misfiled) problem(std::to_string(misfiled) + " facet values are under a wrong hash");
      if (twice) problem(std::to_string(twice) + " facet values are kept twice");
    }
    // Every row holds one length token, so these are all the rows.
    std::vector<int64_t> rows = rows_matching(db, fts_phrase({std::string(kLengthMark)}) + " *");
    uint64_t wrong_modes = 0;
    snap->for_each_item([&](const store::ItemInfo& item) {
      const auto c = closed.find(item.ino);
      const std::array<int64_t, 3> attrs{item.attrs.mode, item.attrs.uid, item.attrs.gid};
      if (closed_mode(item.attrs.mode) ? c == closed.end() || c->second != attrs : c != closed.end()) ++wrong_modes;
      auto it = docs.find(item.ino);
      if (it == docs.end()) {
        problem("item " + item.id + " is not in the index");
        return;
      }
      it->second.seen = true;
      if (it->second.sha != sha8(item.sha256)) problem("the index has an older version of item " + item.id);
      if (!contains(rows, it->second.gen)) problem("the full-text row of item " + item.id + " is missing");
    });
    if (wrong_modes) problem("the index has the wrong modes or owners of " + std::to_string(wrong_modes) + " items");
    std::unordered_set<int64_t> live;
    for (const auto& [ino, doc] : docs) {
      live.insert(doc.gen);
      if (!doc.seen) problem("the index lists inode " + std::to_string(ino) + ", which is not an item");
    }
    const std::vector<int64_t> dead = dead_gens(db);
    uint64_t orphans = 0;
    for (int64_t r : rows) orphans += !live.count(r) && !contains(dead, r);
    if (orphans) problem(std::to_string(orphans) + " full-text rows belong to no item");
    // Ranking takes the number of items from FTS5's count of its rows.
    if (const auto counted = fts_rows(db); counted && *counted != int64_t(rows.size())) {
      problem("the full-text index counts " + std::to_string(*counted) + " rows but has " + std::to_string(rows.size()));
    }
    uint64_t live_dead = 0;
    for (int64_t g : dead) live_dead += live.count(g);
    if (live_dead) problem(std::to_string(live_dead) + " entries of items are listed as dead rows");
  }
  if (sqlite3* w = impl_->sdb.writer()) {
    // FTS5's own structure check; it writes nothing but needs a write transaction.
    std::string damage;
    impl_->in_transaction([&](sqlite3* db) {
      if (sqlite3_exec(db, "INSERT INTO search_fts(search_fts) VALUES('integrity-check')", nullptr, nullptr, nullptr) !=
          SQLITE_OK) {
        damage = sqlite3_errmsg(db);
      }
    });
    (void)w;
    if (!damage.empty()) problem("the full-text index is damaged: " + damage);
  }
  if (more) problems.push_back("search: ... and " + std::to_string(more) + " more problems");
  return problems;
}

}  // namespace itemfs::search
