// Who may read what: the indexed items a reader may not read.
//
// The contract: unreadable_gens gives the generations of the indexed items
// `who` may not read (a read bit missing for it on the item, as the feed last
// said in search_closed, or a search bit missing on items/ or on the item's
// shard, as the store has them now), sorted and distinct; empty for root and
// when every item and directory is readable and searchable by all. A query
// skips those rows before ranking and limit:, so hits and counts are the
// reader's own.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <vector>

#include "search/search.h"
#include "store/store.h"

namespace itemfs::search::detail {

// Whether an item with this mode is kept in search_closed: some non-root
// reader may not read it.
bool closed_mode(uint32_t mode);

std::vector<int64_t> unreadable_gens(sqlite3* db, store::Store& store, const Reader& who);

}  // namespace itemfs::search::detail
