// base/sqlite_stmt: the statement wrapper the store and the search index
// share binds and reads every kind of value (an empty blob stays a blob, an
// empty optional is NULL), turns every SQLite failure into base::Error with
// a fitting errno and leaves the statement usable, lets a caller mend the
// connection when preparing fails (a function not yet registered), and
// StmtScope resets a statement and its bindings when the scope ends.
#include <gtest/gtest.h>

#include <cerrno>
#include <functional>
#include <optional>
#include <string>

#include "base/sqlite_stmt.h"
#include "base/status.h"

namespace itemfs::base {
namespace {

class SqliteStmtTest : public testing::Test {
 protected:
  SqliteStmtTest() {
    EXPECT_EQ(sqlite3_open(":memory:", &db_), SQLITE_OK);
    sqlite3_extended_result_codes(db_, 1);
  }
  ~SqliteStmtTest() override { sqlite3_close(db_); }
  sqlite3* db_ = nullptr;
};

int error_code_of(const std::function<void()>& fn, std::string* message = nullptr) {
  try {
    fn();
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  return 0;
}

TEST_F(SqliteStmtTest, BindsAndReadsEveryKind) {
  Stmt(db_, "CREATE TABLE t(k INTEGER PRIMARY KEY, i, s, b, n, o)").run();
  Stmt insert(db_, "INSERT INTO t VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
  EXPECT_EQ(insert.params(), 6);
  const std::string text("with\0nul", 8);
  insert.bind(1, int64_t(1)).bind(2, int64_t(-5000000000)).bind(3, text).bind_blob(4, "", 0).bind_null(5);
  insert.bind(6, std::optional<int64_t>());
  insert.run();
  insert.bind(1, int64_t(2)).bind(2, int64_t(7)).bind(3, std::string_view("x")).bind_blob(4, "\x01\x02", 2);
  insert.bind(5, std::optional<int64_t>(42)).bind(6, std::optional<int64_t>(0));
  insert.run();

  Stmt read(db_, "SELECT i, s, b, typeof(b), n, o, 0.5 FROM t ORDER BY k");
  ASSERT_TRUE(read.step());
  EXPECT_EQ(read.int64(0), -5000000000);
  EXPECT_EQ(read.text(1), text);
  EXPECT_EQ(read.blob(2), "");
  EXPECT_EQ(read.text(3), "blob");  // an empty blob is not NULL
  EXPECT_TRUE(read.is_null(4));
  EXPECT_TRUE(read.is_null(5));
  EXPECT_EQ(read.real(6), 0.5);
  ASSERT_TRUE(read.step());
  EXPECT_EQ(read.blob(2), "\x01\x02");
  EXPECT_EQ(read.int64(4), 42);
  EXPECT_FALSE(read.is_null(5));
  EXPECT_EQ(read.int64(5), 0);
  EXPECT_FALSE(read.step());
}

TEST_F(SqliteStmtTest, FailuresAreErrorsWithAnErrnoAndTheStatementStaysUsable) {
  std::string message;
  EXPECT_EQ(error_code_of([&] { Stmt(db_, "SELEC nonsense"); }, &message), EIO);
  EXPECT_NE(message.find("prepare SELEC nonsense: "), std::string::npos) << message;
  EXPECT_NE(message.find("syntax error"), std::string::npos) << message;

  Stmt(db_, "CREATE TABLE u(k INTEGER PRIMARY KEY)").run();
  Stmt insert(db_, "INSERT INTO u VALUES(?1)");
  insert.bind(1, int64_t(1)).run();
  EXPECT_EQ(error_code_of([&] { insert.bind(1, int64_t(1)).run(); }, &message), EEXIST);
  EXPECT_NE(message.find("UNIQUE"), std::string::npos) << message;
  insert.bind(1, int64_t(2)).run();  // reset by the failure: usable again
  Stmt count(db_, "SELECT count(*) FROM u");
  ASSERT_TRUE(count.step());
  EXPECT_EQ(count.int64(0), 2);

  EXPECT_NE(error_code_of([&] { insert.bind(2, int64_t(1)); }, &message), 0);  // no ?2
  EXPECT_NE(message.find("bind"), std::string::npos) << message;
}

TEST(SqliteErrnoTest, FitsTheResultCode) {
  EXPECT_EQ(sqlite_errno(SQLITE_FULL), ENOSPC);
  EXPECT_EQ(sqlite_errno(SQLITE_IOERR_WRITE), EIO);
  EXPECT_EQ(sqlite_errno(SQLITE_READONLY), EROFS);
  EXPECT_EQ(sqlite_errno(SQLITE_READONLY_DBMOVED), EROFS);
  EXPECT_EQ(sqlite_errno(SQLITE_TOOBIG), EFBIG);
  EXPECT_EQ(sqlite_errno(SQLITE_NOMEM), ENOMEM);
  EXPECT_EQ(sqlite_errno(SQLITE_CONSTRAINT_UNIQUE), EEXIST);
  EXPECT_EQ(sqlite_errno(SQLITE_CANTOPEN), EACCES);
  EXPECT_EQ(sqlite_errno(SQLITE_CORRUPT), EIO);
  std::string message;
  EXPECT_EQ(error_code_of([] { throw_sqlite(nullptr, SQLITE_FULL, "commit"); }, &message), ENOSPC);
  EXPECT_EQ(message, std::string("commit: ") + sqlite3_errstr(SQLITE_FULL));
}

void twice(sqlite3_context* ctx, int, sqlite3_value** argv) { sqlite3_result_int64(ctx, 2 * sqlite3_value_int64(argv[0])); }

TEST_F(SqliteStmtTest, PreparingAgainAfterTheConnectionIsMended) {
  int calls = 0;
  Stmt s(db_, "SELECT twice(21)", [&](std::string_view error) {
    ++calls;
    EXPECT_NE(error.find("no such function: twice"), std::string_view::npos) << error;
    return sqlite3_create_function(db_, "twice", 1, SQLITE_UTF8, nullptr, twice, nullptr, nullptr) == SQLITE_OK;
  });
  EXPECT_EQ(calls, 1);
  ASSERT_TRUE(s.step());
  EXPECT_EQ(s.int64(0), 42);

  // Not mended: the failure is thrown, after one call or after three tries.
  calls = 0;
  EXPECT_EQ(error_code_of([&] { Stmt(db_, "SELECT thrice(1)", [&](std::string_view) { return ++calls, false; }); }), EIO);
  EXPECT_EQ(calls, 1);
  calls = 0;
  EXPECT_EQ(error_code_of([&] { Stmt(db_, "SELECT thrice(1)", [&](std::string_view) { return ++calls, true; }); }), EIO);
  EXPECT_EQ(calls, 2);
}

struct Seen {
  int value = 0;
};

void peek(sqlite3_context* ctx, int, sqlite3_value** argv) {
  const auto* seen = static_cast<Seen*>(sqlite3_value_pointer(argv[0], "test_seen"));
  sqlite3_result_int64(ctx, seen ? seen->value : -1);
}

TEST_F(SqliteStmtTest, PointersReachFunctionsOfTheirTypeOnly) {
  ASSERT_EQ(sqlite3_create_function(db_, "peek", 1, SQLITE_UTF8, nullptr, peek, nullptr, nullptr), SQLITE_OK);
  Seen seen{7};
  Stmt s(db_, "SELECT peek(?1)");
  s.bind_pointer(1, &seen, "test_seen");
  ASSERT_TRUE(s.step());
  EXPECT_EQ(s.int64(0), 7);
  s.reset();
  s.bind_pointer(1, &seen, "another_type");
  ASSERT_TRUE(s.step());
  EXPECT_EQ(s.int64(0), -1);
}

TEST_F(SqliteStmtTest, ScopeResetsTheStatementAndItsBindings) {
  Stmt s(db_, "SELECT ?1");
  {
    StmtScope scope(s);
    scope->bind(1, int64_t(5));
    ASSERT_TRUE(scope->step());
    EXPECT_EQ((*scope).int64(0), 5);
  }
  ASSERT_TRUE(s.step());  // from the start, with no value bound
  EXPECT_TRUE(s.is_null(0));
}

}  // namespace
}  // namespace itemfs::base
