// The search index: opening (building or catching up search.db), closing
// (deferred deletes, merging FTS5's segments), reindex, the feed lag, the
// tokenizer pool and a query's read view. See search.h for the contract,
// index_impl.h for Index::Impl and README.md for the query language.

#include "search/index_impl.h"
#include "search/schema.h"

namespace itemfs::search {

// A tokenizer from the pool, back to it when the holder goes.
Index::Impl::PooledTokenizer Index::Impl::pooled_tokenizer() {
  {
    std::lock_guard lock(tok_pool_mu);
    if (!tok_pool.empty()) {
      PooledTokenizer held(*this, std::move(tok_pool.back()));
      tok_pool.pop_back();
      return held;
    }
  }
  return PooledTokenizer(*this, std::make_unique<Tokenizer>(lib));
}


// A read view of the index for a query, once the index has applied every
// change committed before the query began (waiting up to
// options.max_wait); *pending: the changes it has still not applied.
// None if there is no index.
std::optional<SearchDb::View> Index::Impl::query_view(uint64_t* pending_out) {
  const uint64_t target = store.last_seq();
  if (follower) follower->wait_for(target, options.max_wait);
  std::optional<SearchDb::View> view(sdb.read());
  if (!view->db() || !snapshot_has_table(view->db(), "search_doc")) return std::nullopt;
  const auto got = uint64_t(meta_value(view->db(), "applied").value_or(0));
  if (pending_out) *pending_out = target > got ? target - got : 0;
  return view;
}

// The changes committed before now that the index has not applied, after
// waiting for them as long as the options say.
uint64_t Index::Impl::wait_for_feed(std::optional<std::chrono::milliseconds> wait) {
  const uint64_t target = store.last_seq();
  const uint64_t got = follower ? follower->wait_for(target, wait) : 0;
  return got >= target ? 0 : target - got;
}

Index::Index(store::Store& store, IndexOptions options) : impl_(std::make_unique<Impl>(store, std::move(options))) {
  Impl& impl = *impl_;
  if (!impl.sdb.exists()) return;  // read-only, and never built: queries say so
  sqlite3* w = impl.sdb.writer();
  if (!w) {  // a read-only store: the index is read as it is
    auto view = impl.sdb.read();
    if (!table_exists(view.db(), "search_meta")) return;
    const auto version = meta_value(view.db(), "version");
    if (version && *version != kIndexVersion) {
      throw StoreError(EPROTO, "search: the index has version " + std::to_string(*version) + ", this itemfs reads " +
                                   std::to_string(kIndexVersion) + " (open the store to write to rebuild it)");
    }
    impl.applied = uint64_t(meta_value(view.db(), "applied").value_or(0));
    return;
  }
  std::optional<int64_t> version;
  if (table_exists(w, "search_meta")) version = meta_value(w, "version");
  if (version && *version > kIndexVersion) {
    throw StoreError(EPROTO, "search: the index was written by a newer itemfs (index version " +
                                 std::to_string(*version) + ", this one knows " + std::to_string(kIndexVersion) + ")");
  }
  {
    std::lock_guard lock(impl.write_mu);
    if (version == kIndexVersion) {
      impl.applied = uint64_t(meta_value(w, "applied").value_or(0));
    } else {
      impl.in_transaction([&](sqlite3* db) {
        exec_sql(db, kDrop);
        exec_sql(db, kSchema);
        base::Stmt(db, "INSERT OR REPLACE INTO search_meta(key, value) VALUES('version', ?)").bind(1, int64_t(kIndexVersion)).run();
      });
      impl.writer_stmts.clear();
      impl.rebuild_locked(impl.options.progress);
      impl.rebuilt_when_opened = true;
    }
  }
  // What the store committed while no index followed it (a crash, a
  // command that ran without one) is applied now: an opened index is
  // current.
  try {
    while (impl.apply_batch().more) {
    }
  } catch (const std::exception&) {
    // (A full disk, say.) The follower tries again; check() says why it is behind.
  }
  impl.follower = std::make_unique<Follower>(impl.applied, [&impl] { return impl.apply_batch(); });
  store.add_commit_listener([wake = impl.follower->waker()](uint64_t) { wake(); });
  impl.follower->wake();
}

bool Index::rebuilt_when_opened() const { return impl_->rebuilt_when_opened; }

void Index::catch_up() {
  if (impl_->follower) impl_->wait_for_feed(std::nullopt);
}

uint64_t Index::lag() {
  const uint64_t last = impl_->store.last_seq();
  uint64_t applied = 0;
  if (impl_->follower) {
    applied = impl_->follower->applied();
  } else {
    auto view = impl_->sdb.read();
    if (view.db() && table_exists(view.db(), "search_meta")) applied = uint64_t(meta_value(view.db(), "applied").value_or(0));
  }
  return last > applied ? last - applied : 0;
}

Index::~Index() {
  // The follower stops after the batch under way; what it has not applied
  // is applied when the store is next opened with an index.
  impl_->follower.reset();
  // Deferred deletes not written now stay as dead rows until a reindex. After
  // a session that added a good part of the rows (an import, a restore, a
  // large copy into the mount), FTS5's segments are merged into one, which
  // makes the index about a tenth smaller than the merges FTS5 does as it
  // goes leave it.
  if (!impl_->sdb.writer()) return;
  const bool merge = impl_->inserted >= kMergeAfterRows;
  if (impl_->pending.empty() && !merge && impl_->dropped == 0) return;
  try {
    std::lock_guard lock(impl_->write_mu);
    impl_->in_transaction([&](sqlite3* db) {
      impl_->flush_pending(impl_->stmts(db));
      if (impl_->dropped) impl_->sweep_values(db);
      if (!merge) return;
      base::Stmt rows(db, "SELECT count(*) FROM search_doc");
      if (rows.step() && impl_->inserted * kMergeFraction >= uint64_t(rows.int64(0))) {
        exec_sql(db, "INSERT INTO search_fts(search_fts) VALUES('optimize')");
      }
    });
  } catch (const std::exception&) {
  }
}

void Index::reindex() {
  if (!impl_->sdb.writer()) throw StoreError(EROFS, "search: the store is open read-only");
  std::lock_guard lock(impl_->write_mu);
  impl_->rebuild_locked(impl_->options.progress);
}

extern const unsigned char kReadme[];
extern const size_t kReadmeSize;

std::string_view Index::readme() { return std::string_view(reinterpret_cast<const char*>(kReadme), kReadmeSize); }

}  // namespace itemfs::search
