// The search index's tables in search.db, and reading its bookkeeping.
//
// The contract: kSchema creates every table the index uses (idempotent),
// kDrop drops them all; search_meta holds 'version' (kIndexVersion),
// 'next_seq' (the next generation) and 'applied' (the last change of the
// store's feed applied). FORMAT.md §2 describes the tables.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>

namespace itemfs::search::detail {

extern const char* const kSchema;
extern const char* const kDrop;

bool table_exists(sqlite3* db, const char* name);
// table_exists() for a snapshot's connection, from its copy of the schema
// (current once a read of the snapshot has checked the schema's version).
bool snapshot_has_table(sqlite3* db, const char* name);
// search_meta's value of key, none when it has none.
std::optional<int64_t> meta_value(sqlite3* db, const char* key);

}  // namespace itemfs::search::detail
