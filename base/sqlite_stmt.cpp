#include "base/sqlite_stmt.h"

#include <cerrno>
#include <string>

#include "base/log.h"
#include "base/status.h"

namespace itemfs::base {

namespace {

void report_damage(void*, int rc, const char* message) {
  switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_IOERR:
    case SQLITE_NOTADB:
      log_event("error: sqlite: " + std::string(message) + " (code " + std::to_string(rc) + ")");
      break;
    default: break;
  }
}

}  // namespace

void log_sqlite_damage() { sqlite3_config(SQLITE_CONFIG_LOG, report_damage, nullptr); }

int sqlite_errno(int rc) {
  switch (rc & 0xff) {
    case SQLITE_FULL: return ENOSPC;
    case SQLITE_READONLY: return EROFS;
    case SQLITE_TOOBIG: return EFBIG;
    case SQLITE_NOMEM: return ENOMEM;
    case SQLITE_CONSTRAINT: return EEXIST;
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_AUTH: return EACCES;
    default: return EIO;
  }
}

void throw_sqlite(sqlite3* db, int rc, std::string_view what) {
  std::string message(what);
  message += ": ";
  message += db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  throw Error(sqlite_errno(rc), message);
}

int Stmt::prepare(std::string_view sql) {
  return sqlite3_prepare_v3(db_, sql.data(), int(sql.size()), SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
}

Stmt::Stmt(sqlite3* db, std::string_view sql) : db_(db) {
  const int rc = prepare(sql);
  if (rc != SQLITE_OK) throw_sqlite(db, rc, "prepare " + std::string(sql.substr(0, 60)));
}

Stmt::Stmt(sqlite3* db, std::string_view sql, const std::function<bool(std::string_view error)>& mend) : db_(db) {
  int rc = SQLITE_OK;
  for (int attempt = 1;; ++attempt) {
    rc = prepare(sql);
    if (rc == SQLITE_OK) return;
    if (attempt == 3 || (rc & 0xff) != SQLITE_ERROR || !mend(sqlite3_errmsg(db))) break;
  }
  throw_sqlite(db, rc, "prepare " + std::string(sql.substr(0, 60)));
}

Stmt::~Stmt() { sqlite3_finalize(stmt_); }

void Stmt::check_bind(int rc) {
  if (rc != SQLITE_OK) throw_sqlite(db_, rc, "bind");
}

Stmt& Stmt::bind(int index, int64_t value) {
  check_bind(sqlite3_bind_int64(stmt_, index, value));
  return *this;
}

Stmt& Stmt::bind(int index, std::string_view text) {
  check_bind(sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  return *this;
}

Stmt& Stmt::bind(int index, const std::optional<int64_t>& value) {
  return value ? bind(index, *value) : bind_null(index);
}

Stmt& Stmt::bind_blob(int index, const void* data, size_t size) {
  static const char empty = 0;
  check_bind(sqlite3_bind_blob64(stmt_, index, size ? data : &empty, size, SQLITE_TRANSIENT));
  return *this;
}

Stmt& Stmt::bind_null(int index) {
  check_bind(sqlite3_bind_null(stmt_, index));
  return *this;
}

Stmt& Stmt::bind_pointer(int index, void* pointer, const char* type) {
  check_bind(sqlite3_bind_pointer(stmt_, index, pointer, type, nullptr));
  return *this;
}

bool Stmt::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  sqlite3_reset(stmt_);
  throw_sqlite(db_, rc, "step");
}

void Stmt::run() {
  while (step()) {
  }
  reset();
}

void Stmt::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

std::string_view Stmt::text(int column) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
  return p ? std::string_view(p, size_t(sqlite3_column_bytes(stmt_, column))) : std::string_view();
}

std::string_view Stmt::blob(int column) const {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, column));
  return p ? std::string_view(p, size_t(sqlite3_column_bytes(stmt_, column))) : std::string_view();
}

}  // namespace itemfs::base
