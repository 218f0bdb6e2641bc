// The search index's SQLite statement wrapper and error reporting.
//
// The contract: every failure throws StoreError ("search: what: SQLite's
// message", ENOSPC for a full disk, else EIO). A Stmt made with Collecting
// registers the index's SQL functions (sql_functions.h) on its connection at
// their first use there. ResetOnExit resets a cached statement when a scope
// ends, whatever happens.
#pragma once

#include <sqlite3.h>

#include <cerrno>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "search/sql_functions.h"
#include "store/store.h"

namespace itemfs::search::detail {

[[noreturn]] inline void fail(sqlite3* db, const std::string& what) {
  const int rc = sqlite3_extended_errcode(db);
  const int code = (rc & 0xFF) == SQLITE_FULL ? ENOSPC : EIO;
  throw store::StoreError(code, "search: " + what + ": " + sqlite3_errmsg(db));
}

inline void exec(sqlite3* db, const char* sql) {
  if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) fail(db, "SQL failed");
}

class Stmt {
 public:
  Stmt(sqlite3* db, std::string_view sql) : db_(db) {
    if (!prepare(sql)) fail(db, "cannot prepare " + std::string(sql.substr(0, 60)));
  }
  // For SQL that calls itemfs_collect or itemfs_rows, which are registered
  // on a connection at their first use there: registering itemfs_collect
  // again would expire every statement the connection has prepared (the
  // store caches some), and itemfs_rows would be listed twice.
  struct Collecting {};
  Stmt(sqlite3* db, std::string_view sql, Collecting) : db_(db) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      if (prepare(sql)) return;
      if (sqlite3_errcode(db) != SQLITE_ERROR || !register_missing_function(db, sqlite3_errmsg(db))) break;
    }
    fail(db, "cannot prepare " + std::string(sql.substr(0, 60)));
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, int64_t v) {
    check(sqlite3_bind_int64(stmt_, i, v));
    return *this;
  }
  Stmt& bind(int i, std::string_view v) {
    check(sqlite3_bind_text(stmt_, i, v.data(), int(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& bind(int i, const std::optional<int64_t>& v) {
    check(v ? sqlite3_bind_int64(stmt_, i, *v) : sqlite3_bind_null(stmt_, i));
    return *this;
  }
  Stmt& bind_null(int i) {
    check(sqlite3_bind_null(stmt_, i));
    return *this;
  }
  Stmt& bind_sink(int i, RowSink& sink) { return bind_pointer(i, &sink, kRowSinkType); }
  Stmt& bind_pointer(int i, void* p, const char* type) {
    check(sqlite3_bind_pointer(stmt_, i, p, type, nullptr));
    return *this;
  }
  // True for a row, false when done; throws on error.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(db_, "query failed");
  }
  void run() {
    while (step()) {
    }
    reset();
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  int params() { return sqlite3_bind_parameter_count(stmt_); }
  int64_t int64(int c) { return sqlite3_column_int64(stmt_, c); }
  double real(int c) { return sqlite3_column_double(stmt_, c); }
  bool null(int c) { return sqlite3_column_type(stmt_, c) == SQLITE_NULL; }
  std::string_view text(int c) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, c));
    return p ? std::string_view(p, size_t(sqlite3_column_bytes(stmt_, c))) : std::string_view();
  }

 private:
  bool prepare(std::string_view sql) {
    return sqlite3_prepare_v2(db_, sql.data(), int(sql.size()), &stmt_, nullptr) == SQLITE_OK;
  }
  void check(int rc) {
    if (rc != SQLITE_OK) fail(db_, "bind failed");
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// Resets a cached statement when leaving a scope, whatever happens.
struct ResetOnExit {
  Stmt& s;
  ~ResetOnExit() { s.reset(); }
};

}  // namespace itemfs::search::detail
