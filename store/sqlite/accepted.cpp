// What the SQLite backend does for a writer that accepts items before it
// stores them (store/accepting_store.h): items given reserved numbers, the
// reservation itself, and how far the journal has been applied, recorded
// in the same transaction as what it applied (meta.journal_applied).

#include <cerrno>

#include "store/sqlite/store_impl.h"

namespace itemfs::store::sqlite {

Status WriteBatchImpl::put_with_ino(std::string_view id, std::istream& content, const Attrs& attrs, int64_t ino,
                                    ItemInfo* stored) {
  wanted_ino_ = ino;
  struct Clear {
    int64_t& wanted;
    ~Clear() { wanted = 0; }
  } clear{wanted_ino_};
  return put(id, content, attrs, stored);
}

// The items table numbers its rows AUTOINCREMENT: SQLite gives a new row
// one more than the largest number sqlite_sequence has seen, so raising it
// keeps the numbers below for put_with_ino(), in this process or another.
int64_t WriteBatchImpl::reserve_inos(int64_t n) {
  if (n <= 0) throw StoreError(EINVAL, "reserve_inos: nothing to reserve");
  auto top = db_.cached(
      "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name='items'), 0),"
      " coalesce((SELECT max(ino) FROM items), 0))");
  if (!top->step()) throw StoreError(EIO, "reserve_inos: no largest item number");
  const int64_t first = top->int64(0) + 1;
  top->reset();
  auto update = db_.cached("UPDATE sqlite_sequence SET seq=? WHERE name='items'");
  update->bind(1, first + n - 1).run();
  if (sqlite3_changes(db_.handle()) == 0) {
    auto insert = db_.cached("INSERT INTO sqlite_sequence(name, seq) VALUES('items', ?)");
    insert->bind(1, first + n - 1).run();
  }
  return first;
}

void WriteBatchImpl::set_journal_position(uint64_t position) {
  auto s = db_.cached("INSERT OR REPLACE INTO meta(key, value) VALUES('journal_applied', ?)");
  s->bind(1, int64_t(position)).run();
}

uint64_t StoreImpl::journal_position() {
  auto reader = acquire();
  auto s = reader->cached("SELECT value FROM meta WHERE key='journal_applied'");
  return s->step() ? uint64_t(s->int64(0)) : 0;
}

}  // namespace itemfs::store::sqlite
