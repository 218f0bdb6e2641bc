// The index's SQL functions (see sql_functions.h).
//
// Collecting rows. A query's walk over every matching row (16k for a common
// word) spent a third of its time in sqlite3_step's round trip per row. The
// SQL function itemfs_collect(sink, gen [, value]) appends each row to a
// RowSink passed as a pointer parameter instead, so a walk is one step of
// "SELECT count(itemfs_collect(...)) ...".

#include "search/sql_functions.h"

#include <new>

namespace itemfs::search::detail {

namespace {

void collect_row(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  auto* sink = argc >= 2 ? static_cast<RowSink*>(sqlite3_value_pointer(argv[0], kRowSinkType)) : nullptr;
  if (!sink) return sqlite3_result_error(ctx, "itemfs_collect: no row sink", -1);
  try {
    sink->rows.push_back(sqlite3_value_int64(argv[1]));
    if (argc > 2) {
      sink->values.push_back(sqlite3_value_type(argv[2]) == SQLITE_NULL ? std::nullopt
                                                                          : std::optional(sqlite3_value_int64(argv[2])));
    }
  } catch (const std::bad_alloc&) {
    sqlite3_result_error_nomem(ctx);
  } catch (...) {  // nothing may unwind through SQLite
    sqlite3_result_error(ctx, "itemfs_collect: cannot keep the row", -1);
  }
}

// The rows of a query that is one phrase (a word, a prefix), read by FTS5
// itself: itemfs_rows(search_fts, sink), called on the query's first row,
// walks the phrase's rows with xQueryPhrase. That is half the time of
// itemfs_collect's walk, which goes through SQLite's loop for every row.
// With more than one phrase (which rows_matching does not give it) it
// leaves the sink alone and sets its flag.

int add_phrase_row(const Fts5ExtensionApi* api, Fts5Context* fts, void* user) {
  try {
    static_cast<RowSink*>(user)->rows.push_back(api->xRowid(fts));
    return SQLITE_OK;
  } catch (const std::bad_alloc&) {
    return SQLITE_NOMEM;
  } catch (...) {  // nothing may unwind through SQLite
    return SQLITE_ERROR;
  }
}

void phrase_rows(const Fts5ExtensionApi* api, Fts5Context* fts, sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  auto* out = argc == 1 ? static_cast<PhraseRows*>(sqlite3_value_pointer(argv[0], kPhraseRowsType)) : nullptr;
  if (!out || !out->sink) return sqlite3_result_error(ctx, "itemfs_rows: no row sink", -1);
  if (api->xPhraseCount(fts) != 1) {
    out->not_one_phrase = true;
    return sqlite3_result_null(ctx);
  }
  out->sink->rows.clear();
  if (const int rc = api->xQueryPhrase(fts, 0, out->sink, add_phrase_row); rc != SQLITE_OK) {
    return sqlite3_result_error_code(ctx, rc);
  }
  sqlite3_result_null(ctx);
}

}  // namespace

// Registers itemfs_collect or itemfs_rows when `error` says it is missing.
bool register_missing_function(sqlite3* db, std::string_view error) {
  if (error == "no such function: itemfs_collect") {
    return sqlite3_create_function_v2(db, "itemfs_collect", -1, SQLITE_UTF8 | SQLITE_DIRECTONLY, nullptr, collect_row,
                                      nullptr, nullptr, nullptr) == SQLITE_OK;
  }
  if (error != "no such function: itemfs_rows") return false;
  fts5_api* api = nullptr;
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &s, nullptr) == SQLITE_OK &&
      sqlite3_bind_pointer(s, 1, static_cast<void*>(&api), "fts5_api_ptr", nullptr) == SQLITE_OK) {
    sqlite3_step(s);
  }
  sqlite3_finalize(s);
  return api && api->iVersion >= 2 && api->xCreateFunction(api, "itemfs_rows", nullptr, phrase_rows, nullptr) == SQLITE_OK;
}

base::Stmt collecting_stmt(sqlite3* db, std::string_view sql) {
  return base::Stmt(db, sql, [db](std::string_view error) { return register_missing_function(db, error); });
}

}  // namespace itemfs::search::detail
