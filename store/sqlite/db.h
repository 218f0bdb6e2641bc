// The store's SQLite connection: a Db opens store.db with the store's
// settings (WAL, busy waits that never give up) and caches its prepared
// statements. A Db is used by one thread at a time; the store pools them.
// The statement wrapper itself is base's (base/sqlite_stmt.h).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "base/sqlite_stmt.h"

namespace itemfs::store {

using base::Stmt;
using base::StmtScope;
using base::throw_sqlite;

struct ItemInfo;

// Fills `info` from the current row of `s`, whose first columns are an
// items row's "ino, id, size, sha256, mode, uid, gid, mtime_ns, ctime_ns" in
// that order (defined in store/sqlite/store.cpp). `info.id` keeps its buffer, so one
// ItemInfo can be filled row after row.
void fill_item(Stmt& s, ItemInfo& info);

// Page cache sizes in KiB. The writer keeps the hot pages of every index
// it updates: the items' id and hash indexes, where inserts land anywhere,
// and the last pages of items, chunks and blobs (about 5 MB at 100,000
// items; the rest of its cache holds blob pages written once). When one
// connection also wrote the search index it had 16 MB; the index now has
// its own connection and cache in search.db (SQLite's default, 2 MB), and
// both stay within those 16 MB: a mount holds both for its whole life.
inline constexpr int kWriterCacheKiB = 12000;
inline constexpr int kReaderCacheKiB = 2000;

class Db {
 public:
  Db(const std::filesystem::path& file, bool read_only, bool sync_full);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  sqlite3* handle() { return db_; }
  // Puts back the wait-forever busy handler after a sqlite3_busy_timeout().
  void restore_busy_handler();
  void exec(std::string_view sql);
  // A statement prepared once per connection and reused.
  StmtScope cached(const char* sql);

 private:
  sqlite3* db_ = nullptr;
  std::map<const char*, std::unique_ptr<Stmt>> cache_;
};

}  // namespace itemfs::store
