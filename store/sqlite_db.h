// Thin RAII wrappers over one SQLite connection and its prepared statements.
// A Db is used by one thread at a time; the store pools them.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace itemfs::store {

// Throws StoreError with an errno that fits the SQLite result code.
[[noreturn]] void throw_sqlite(sqlite3* db, int rc, std::string_view what);

class Stmt {
 public:
  Stmt(sqlite3* db, std::string_view sql);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int index, int64_t value);
  Stmt& bind(int index, std::string_view text);
  Stmt& bind_blob(int index, const void* data, size_t size);
  Stmt& bind_null(int index);
  // True when a row is ready; false when done. Throws on error.
  bool step();
  void run();  // step() until done, then reset()
  void reset();

  int64_t int64(int column) const { return sqlite3_column_int64(stmt_, column); }
  double real(int column) const { return sqlite3_column_double(stmt_, column); }
  bool is_null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  std::string_view text(int column) const;
  std::string_view blob(int column) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// Resets a statement when the scope ends, so cached statements never hold a
// read transaction open by accident.
class StmtScope {
 public:
  explicit StmtScope(Stmt& stmt) : stmt_(stmt) {}
  ~StmtScope() { stmt_.reset(); }
  Stmt* operator->() { return &stmt_; }
  Stmt& operator*() { return stmt_; }

 private:
  Stmt& stmt_;
};

struct ItemInfo;

// Fills `info` from the current row of `s`, whose first columns are an
// items row's "ino, id, size, sha256, mode, uid, gid, mtime_ns, ctime_ns" in
// that order (defined in store.cpp). `info.id` keeps its buffer, so one
// ItemInfo can be filled row after row.
void fill_item(Stmt& s, ItemInfo& info);

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
