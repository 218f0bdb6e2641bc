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
    info.ino = s.int64(0);
    info.id.assign(s.text(1));
    info.size = uint64_t(s.int64(2));
    auto digest = s.blob(3);
    info.sha256 = {};
    if (digest.size() == info.sha256.size()) std::copy(digest.begin(), digest.end(), info.sha256.begin());
    info.attrs.mode = uint32_t(s.int64(4));
    info.attrs.uid = uint32_t(s.int64(5));
    info.attrs.gid = uint32_t(s.int64(6));
    info.attrs.mtime_ns = s.int64(7);
    info.ctime_ns = s.int64(8);
    fn(info);
  }
}

}  // namespace itemfs::store
