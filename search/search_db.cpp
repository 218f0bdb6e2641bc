// search.db connections (see search_db.h).

#include "search/search_db.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "base/sqlite_stmt.h"
#include "base/status.h"

namespace itemfs::search {

namespace {

constexpr size_t kIdleReaders = 4;

}  // namespace

void exec_sql(sqlite3* db, const char* sql) {
  if (const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr); rc != SQLITE_OK) {
    base::throw_sqlite(db, rc, "search: SQL failed");
  }
}

SearchDb::SearchDb(const std::filesystem::path& file, bool read_only) : file_(file), read_only_(read_only) {
  if (!read_only_) {
    // Created 0600 before SQLite opens it, which gives -wal and -shm the
    // same mode.
    const int fd = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      ::close(fd);
    } else if (errno != EEXIST) {
      throw base::Error(errno, "cannot create " + file_.string() + ": " + std::strerror(errno));
    }
  } else {
    std::error_code ec;
    if (!std::filesystem::exists(file_, ec)) return;
  }
  writer_ = open_connection(read_only_);
  if (!read_only_) exec_sql(writer_, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
}

SearchDb::~SearchDb() {
  for (sqlite3* db : pool_) sqlite3_close_v2(db);
  if (writer_) sqlite3_close_v2(writer_);
}

sqlite3* SearchDb::open_connection(bool read_only) {
  sqlite3* db = nullptr;
  const int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(file_.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    std::string why = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    throw base::Error(EIO, "search: cannot open " + file_.string() + ": " + why);
  }
  // Another process may write the index (an itemfs reindex beside a mount):
  // wait for it rather than fail.
  sqlite3_busy_timeout(db, 600000);
  sqlite3_extended_result_codes(db, 1);
  return db;
}

SearchDb::View SearchDb::read() {
  if (!writer_) return View(*this, nullptr);
  sqlite3* db = nullptr;
  {
    std::lock_guard lock(pool_mutex_);
    if (!pool_.empty()) {
      db = pool_.back();
      pool_.pop_back();
    }
  }
  if (!db) db = open_connection(true);
  View view(*this, db);
  exec_sql(db, "BEGIN");
  // The read transaction starts at the first read.
  exec_sql(db, "SELECT count(*) FROM sqlite_master");
  return view;
}

void SearchDb::give_back(sqlite3* db) {
  if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  std::lock_guard lock(pool_mutex_);
  if (pool_.size() < kIdleReaders) {
    pool_.push_back(db);
    return;
  }
  sqlite3_close_v2(db);
}

SearchDb::View::View(SearchDb& owner, sqlite3* db) : owner_(&owner), db_(db) {}
SearchDb::View::View(View&& other) noexcept : owner_(other.owner_), db_(other.db_) { other.db_ = nullptr; }
SearchDb::View::~View() {
  if (db_) owner_->give_back(db_);
}

}  // namespace itemfs::search
