// Store::scan_items: the items of a snapshot in storage order, for backups.
#include "store/store.h"

namespace itemfs::store {

void Store::scan_items(Snapshot& snap, const std::function<void(const ItemInfo&)>& fn) { snap.scan_items(fn); }

}  // namespace itemfs::store
