#include "store/sqlite/db.h"

#include <cerrno>
#include <chrono>
#include <thread>

#include "store/store.h"

namespace itemfs::store {

namespace {

// Waits as long as it takes: a writer holds the lock only for one commit, and
// "database is locked" must never reach a user. Backs off up to 10 ms a try.
int wait_when_busy(void*, int attempts) {
  std::this_thread::sleep_for(std::chrono::microseconds(std::min(10000, 50 * (attempts + 1))));
  return 1;
}

}  // namespace

Db::Db(const std::filesystem::path& file, bool read_only, bool sync_full) {
  int flags = SQLITE_OPEN_NOMUTEX | (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  int rc = sqlite3_open_v2(file.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = "open " + file.string();
    sqlite3* failed = db_;
    db_ = nullptr;
    try {
      throw_sqlite(failed, rc, message);
    } catch (...) {
      sqlite3_close(failed);
      throw;
    }
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_handler(db_, wait_when_busy, nullptr);
  if (!read_only) exec("PRAGMA journal_mode=WAL");
  exec(sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  // Readers are pooled (one per FUSE thread at most), so their caches stay
  // small: 16 readers with the default-sized cache made a 300 MB daemon.
  exec("PRAGMA cache_size=-" + std::to_string(read_only ? kReaderCacheKiB : kWriterCacheKiB));
  exec("PRAGMA temp_store=MEMORY");
  // SQLite reuses a WAL file from its start after a checkpoint but never
  // shrinks it: one big item, or a disk that filled up, would keep its
  // high-water mark on disk for good. Cut it back to 4 MiB at each restart.
  if (!read_only) exec("PRAGMA journal_size_limit=4194304");
}

Db::~Db() {
  cache_.clear();
  sqlite3_close(db_);
}

void Db::restore_busy_handler() { sqlite3_busy_handler(db_, wait_when_busy, nullptr); }

void Db::exec(std::string_view sql) {
  std::string owned(sql);
  char* error = nullptr;
  int rc = sqlite3_exec(db_, owned.c_str(), nullptr, nullptr, &error);
  if (rc != SQLITE_OK) {
    std::string message = "exec " + owned.substr(0, 60) + ": " + (error ? error : "");
    sqlite3_free(error);
    throw StoreError(base::sqlite_errno(rc), message);
  }
}

StmtScope Db::cached(const char* sql) {
  auto& slot = cache_[sql];
  if (!slot) slot = std::make_unique<Stmt>(db_, sql);
  return StmtScope(*slot);
}

}  // namespace itemfs::store
