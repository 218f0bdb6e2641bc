// base/sqlite_stmt: the one wrapper of a prepared SQLite statement, for every
// part that keeps a SQLite database (the store, the search index).
//
// The contract:
//  - A Stmt owns one prepared statement on a connection it does not own; it
//    is used by one thread at a time, like its connection.
//  - Every failure (prepare, bind, step) throws base::Error with an errno
//    that fits SQLite's result code (sqlite_errno: SQLITE_FULL is ENOSPC,
//    SQLITE_READONLY is EROFS, ...) and SQLite's own message; a failed step
//    resets the statement first, so it can be used again.
//  - Text and blob columns are views into SQLite's buffers: valid until the
//    next step(), reset() or column call of another type on that column.
//  - StmtScope resets a statement (cached on its connection) when the scope
//    ends, so a cached statement never holds a read transaction open by
//    accident.
#pragma once

#include <sqlite3.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

namespace itemfs::base {

// Sends SQLite's own reports of damage and I/O failures (SQLITE_CORRUPT,
// SQLITE_IOERR, SQLITE_NOTADB, with the system call and errno behind them)
// to stderr, which a mount's log receives. Call once, first thing in main.
void log_sqlite_damage();

// The errno that fits a SQLite result code (primary or extended).
int sqlite_errno(int rc);

// Throws base::Error(sqlite_errno(rc)) saying "what: " and SQLite's message
// (of `db`, or of `rc` when db is null).
[[noreturn]] void throw_sqlite(sqlite3* db, int rc, std::string_view what);

class Stmt {
 public:
  Stmt(sqlite3* db, std::string_view sql);
  // When preparing fails with SQLITE_ERROR (e.g. "no such function"),
  // `mend` is called with SQLite's message; when it returns true (it mended
  // the connection, e.g. registered the function), preparing is tried again,
  // three times in all; otherwise the failure is thrown.
  Stmt(sqlite3* db, std::string_view sql, const std::function<bool(std::string_view error)>& mend);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int index, int64_t value);
  Stmt& bind(int index, std::string_view text);
  Stmt& bind(int index, const std::optional<int64_t>& value);  // NULL when empty
  // An empty blob is bound as an empty blob, not as NULL.
  Stmt& bind_blob(int index, const void* data, size_t size);
  Stmt& bind_null(int index);
  // sqlite3_bind_pointer: for SQL functions that take a pointer of `type`.
  Stmt& bind_pointer(int index, void* pointer, const char* type);
  int params() const { return sqlite3_bind_parameter_count(stmt_); }

  // True when a row is ready; false when done. Throws on error.
  bool step();
  void run();  // step() until done, then reset()
  void reset();  // also clears the bindings

  int64_t int64(int column) const { return sqlite3_column_int64(stmt_, column); }
  double real(int column) const { return sqlite3_column_double(stmt_, column); }
  bool is_null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  std::string_view text(int column) const;
  std::string_view blob(int column) const;

 private:
  int prepare(std::string_view sql);
  void check_bind(int rc);

  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// Resets a statement when the scope ends.
class StmtScope {
 public:
  explicit StmtScope(Stmt& stmt) : stmt_(stmt) {}
  ~StmtScope() { stmt_.reset(); }
  StmtScope(const StmtScope&) = delete;
  StmtScope& operator=(const StmtScope&) = delete;
  Stmt* operator->() { return &stmt_; }
  Stmt& operator*() { return stmt_; }

 private:
  Stmt& stmt_;
};

}  // namespace itemfs::base
