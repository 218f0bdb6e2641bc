// Store::scan_items: the item rows of a snapshot in table order, for backups.
#include "store/sqlite_db.h"
#include "store/store.h"

namespace itemfs::store {

void Store::scan_items(Snapshot& snap, const std::function<void(const ItemInfo&)>& fn) {
  // Table (rowid) order reads the table's pages once, front to back; id
  // order would walk the id index and look each row up in the table.
  Stmt s(snap.db(), "SELECT ino, id, size, sha256, mode, uid, gid, mtime_ns, ctime_ns FROM items");
  ItemInfo info;  // reused: the id keeps its buffer from row to row
  while (s.step()) {
    fill_item(s, info);
    fn(info);
  }
}

}  // namespace itemfs::store
