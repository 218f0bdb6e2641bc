// SQL functions the index registers on search.db's connections, so that a
// query's walk over its matching rows is one statement step, not one per row.
//
// The contract:
//  - itemfs_collect(sink, gen [, value]) appends each row it is called for to
//    the RowSink bound (sqlite3_bind_pointer) as type kRowSinkType.
//  - itemfs_rows(search_fts, phrase_rows), called on the first row of a query
//    that is one phrase, fills phrase_rows->sink with every row of the phrase
//    (FTS5's xQueryPhrase); with more than one phrase it sets not_one_phrase
//    and leaves the sink alone.
//  - register_missing_function registers whichever of the two `error` (an
//    SQLite prepare error) says is missing, once per connection: registering
//    again would expire every statement the connection has prepared.
//  - collecting_stmt prepares SQL that calls them (base::Stmt's `mend`
//    registers what is missing); bind_sink binds a RowSink for itemfs_collect.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "base/sqlite_stmt.h"

namespace itemfs::search::detail {

constexpr const char* kRowSinkType = "itemfs_row_sink";

struct RowSink {
  std::vector<int64_t> rows;
  std::vector<std::optional<int64_t>> values;  // the third argument, when given
};

// The rows of a query that is one phrase, read by FTS5 itself (itemfs_rows).
struct PhraseRows {
  RowSink* sink = nullptr;
  bool not_one_phrase = false;
};
constexpr const char* kPhraseRowsType = "itemfs_phrase_rows";

// Registers itemfs_collect or itemfs_rows when `error` says it is missing.
bool register_missing_function(sqlite3* db, std::string_view error);

// A statement whose SQL calls itemfs_collect or itemfs_rows, registered on
// db at their first use there (registering itemfs_collect again would expire
// the statements the connection caches; itemfs_rows would be listed twice).
base::Stmt collecting_stmt(sqlite3* db, std::string_view sql);

// Binds `sink` as parameter `index`, the first argument of itemfs_collect.
inline void bind_sink(base::Stmt& stmt, int index, RowSink& sink) { stmt.bind_pointer(index, &sink, kRowSinkType); }

}  // namespace itemfs::search::detail
