// Following the store's change feed (Index::Impl, see index_impl.h): a
// batch of changes applied in one transaction of search.db (apply_batch),
// the rows of replaced versions made again to delete them (recall_row), and
// the index built anew from all the items (rebuild_locked).

#include <algorithm>
#include <atomic>
#include <unordered_set>

#include "search/index_impl.h"
#include "search/schema.h"
#include "store/parallel.h"

namespace itemfs::search {

Extracted Index::Impl::extract_bytes(std::string_view bytes) {
  Extractor x;
  for (size_t at = 0; at < bytes.size() && !x.done(); at += kFeedBytes) x.feed(bytes.substr(at, kFeedBytes));
  return std::move(x.result());
}

// Extracts the text of every item of `work` (from its bytes, which it
// frees) on this thread, or for a large batch on up to a few threads
// (extraction_threads), each with a tokenizer of its own.
void Index::Impl::extract_all(std::vector<Work>& work) {
  const size_t threads = extraction_threads(work.size(), store::usable_cpus());
  std::atomic<size_t> next{0};
  store::run_on_threads(threads, [&](size_t) {
    auto tok = pooled_tokenizer();
    for (size_t k = next++; k < work.size(); k = next++) {
      Work& w = work[k];
      w.x = extract_bytes(w.bytes);
      w.row = make_row(w.x, *tok);
      w.x.body = std::string();  // insert() needs the facets, not the text
      std::string().swap(w.bytes);
    }
  });
}

// The item's bytes from snap, or false when they cannot be read back
// (damaged content: it is left out of the index, as it cannot be searched).
bool Index::Impl::read_bytes(store::Snapshot& snap, const store::ItemInfo& info, std::string& out) {
  out.clear();
  try {
    snap.read_item(info, [&](std::string_view bytes) { out.append(bytes); });
  } catch (const store::StoreError& e) {
    if (e.code() != EIO) throw;
    return false;
  }
  return true;
}

// Makes sure the row of generation `gen` (hash `sha`) can be deleted:
// from the recent rows, else from the bytes one of the changes `seqs`
// took away (the store keeps them for its followers). If neither has
// them, the row will stay behind as a dead row.
void Index::Impl::recall_row(store::Snapshot& snap, int64_t gen, int64_t sha, const std::vector<uint64_t>& seqs) {
  if (auto it = recent.find(gen); it != recent.end() && it->second.sha == sha) return;
  std::string old;
  for (uint64_t seq : seqs) {
    if (!snap.read_replaced(seq, old) || sha8(base::sha256_of(old)) != sha) continue;
    recalled.emplace(gen, Recent{sha, make_row(extract_bytes(old), write_tok)});
    return;
  }
}

// Applies the next batch of the store's change feed (the follower's
// step). Each changed item is indexed as the batch's snapshot has it, a
// state at least as new as its changes, so applying a change twice, or a
// later state early, leaves the index as it would be anyway.
Follower::Step Index::Impl::apply_batch() {
  std::lock_guard lock(write_mu);
  // Another process's index (an itemfs command beside a mount) may have
  // applied more of the feed meanwhile.
  applied = std::max(applied, uint64_t(meta_value(sdb.writer(), "applied").value_or(0)));
  auto snap = store.snapshot();
  store::ChangeList list = snap->changes_since(applied, kFeedBatch);
  if (!list.complete || applied > list.last_seq) {
    // Behind what the feed keeps, or ahead of the store (another store
    // put in its place): start again from the items.
    rebuild_locked({});
    return {applied, false};
  }
  if (list.changes.empty()) return {applied, false};
  std::vector<int64_t> gone;
  std::vector<store::ItemInfo> attrs_only;
  std::vector<Work> work;
  std::unordered_set<int64_t> seen;
  uint64_t through = applied;
  size_t bytes = 0;
  auto& st = stmts(sdb.writer());
  // The changes of this batch that took content away, by item: where the
  // bytes of the version the index has may be found, to delete its row.
  std::unordered_map<int64_t, std::vector<uint64_t>> took;
  for (const store::Change& c : list.changes) {
    if (c.kind == store::ChangeKind::kPut || c.kind == store::ChangeKind::kRemove) took[c.ino].push_back(c.seq);
  }
  for (const store::Change& c : list.changes) {
    if (bytes >= kFeedBatchBytes) break;  // the rest in the next batch
    through = c.seq;
    if (!seen.insert(c.ino).second) continue;
    auto info = snap->item_by_ino(c.ino);
    std::optional<int64_t> indexed_sha, indexed_gen;
    {
      base::StmtScope r(st.by_ino);
      if (st.by_ino.bind(1, c.ino).step()) indexed_gen = st.by_ino.int64(0), indexed_sha = st.by_ino.int64(1);
    }
    if (indexed_gen && (!info || *indexed_sha != sha8(info->sha256))) recall_row(*snap, *indexed_gen, *indexed_sha, took[c.ino]);
    if (!info) {
      gone.push_back(c.ino);
      continue;
    }
    if (indexed_sha == sha8(info->sha256)) {
      attrs_only.push_back(std::move(*info));
      continue;
    }
    Work w;
    w.info = std::move(*info);
    if (!read_bytes(*snap, w.info, w.bytes)) {
      gone.push_back(c.ino);
      continue;
    }
    bytes += w.bytes.size();
    work.push_back(std::move(w));
  }
  snap.reset();
  extract_all(work);
  struct Forget {
    std::unordered_map<int64_t, Recent>& rows;
    ~Forget() { rows.clear(); }
  } forget_recalled{recalled};
  in_transaction([&](sqlite3* w) {
    for (int64_t ino : gone) {
      drop_ino(st, ino, /*defer=*/true);
      st.closed_delete.bind(1, ino).run();
    }
    for (const auto& info : attrs_only) set_closed(st, info);
    for (auto& one : work) {
      drop_ino(st, one.info.ino);
      insert(st, one.info, one.x, std::move(one.row));
      set_closed(st, one.info);
    }
    if (!work.empty()) {
      flush_pending(st);
      flush_queued(st);
    }
    set_applied(w, through);
  });
  applied = through;
  store.advance(kFollowerName, applied);
  return {applied, through < list.last_seq};
}

// Builds the whole index anew from the items, in one transaction of
// search.db, and follows the feed from the snapshot it read them in.
void Index::Impl::rebuild_locked(const IndexOptions::Progress& progress) {
  // Registered afresh first, so the feed keeps every change after the
  // snapshot below.
  store.unfollow(kFollowerName);
  store.follow(kFollowerName);
  auto snap = store.snapshot();
  const uint64_t seq = snap->seq();
  std::vector<store::ItemInfo> items;
  snap->for_each_item([&](const store::ItemInfo& info) { items.push_back(info); });
  in_transaction([&](sqlite3* w) {
    exec_sql(w, "DELETE FROM search_doc; DELETE FROM search_value; DELETE FROM search_dead; DELETE FROM search_closed;"
                "INSERT INTO search_fts(search_fts) VALUES('delete-all');");
    forget_unwritten();
    WriterStmts& st = stmts(w);
    uint64_t done = 0;
    if (progress) progress(0, items.size());
    for (size_t from = 0; from < items.size(); from += kRebuildBatch) {
      std::vector<Work> work;
      for (size_t k = from; k < std::min(items.size(), from + kRebuildBatch); ++k) {
        Work one;
        one.info = items[k];
        if (read_bytes(*snap, one.info, one.bytes)) work.push_back(std::move(one));
      }
      extract_all(work);
      for (auto& one : work) {
        insert(st, one.info, one.x, std::move(one.row));
        set_closed(st, one.info);
      }
      done = std::min<uint64_t>(items.size(), from + kRebuildBatch);
      if (progress) progress(done, items.size());
    }
    flush_queued(st);
    recent.clear();
    recent_order.clear();
    recent_bytes = 0;
    exec_sql(w, "INSERT INTO search_fts(search_fts) VALUES('optimize');");
    set_applied(w, seq);
  });
  inserted = 0;
  applied = seq;
  snap.reset();
  store.advance(kFollowerName, seq);
  if (follower) follower->set_applied(seq);
}

}  // namespace itemfs::search
