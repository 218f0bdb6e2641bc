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
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

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

}  // namespace itemfs::search::detail
