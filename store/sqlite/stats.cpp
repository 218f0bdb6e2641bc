// Store::stats(): items, blobs and bytes, from one read transaction.

#include "store/sqlite/store_impl.h"

namespace itemfs::store::sqlite {

Stats StoreImpl::stats() {
  Stats stats;
  auto reader = acquire();
  reader->exec("BEGIN");
  {
    auto s = reader->cached("SELECT count(*), coalesce(sum(size),0) FROM items");
    s->step();
    stats.items = uint64_t(s->int64(0));
    stats.logical_bytes = uint64_t(s->int64(1));
  }
  {
    auto s = reader->cached("SELECT count(*), coalesce(sum(raw_size),0), coalesce(sum(stored_size),0) FROM blobs");
    s->step();
    stats.blobs = uint64_t(s->int64(0));
    stats.unique_bytes = uint64_t(s->int64(1));
    stats.stored_bytes = uint64_t(s->int64(2));
  }
  reader->exec("COMMIT");
  stats.damaged_reads = damaged_reads_.load(std::memory_order_relaxed);
  stats.syncs = sync_group_.runs();
  for (const char* suffix : {"", "-wal"}) {
    std::error_code ec;
    auto size = fs::file_size(db_path().string() + suffix, ec);
    if (!ec) stats.database_bytes += size;
  }
  return stats;
}

}  // namespace itemfs::store::sqlite
