// Who may read what (see access.h), and Reader::may.

#include "search/access.h"

#include <algorithm>
#include <string>

#include "base/sqlite_stmt.h"

namespace itemfs::search {

namespace detail {

namespace {

// Who may read what (Reader, search.h). An item some non-root reader may not
// read has a read bit missing: (mode & 0444) != 0444. The index keeps those
// items' modes and owners (search_closed, from the change feed), so finding
// them costs in proportion to their number, and next to nothing when every
// item is readable by everyone.
constexpr int kAllRead = 0444;
constexpr const char* kClosedItems =
    "SELECT d.gen, c.mode, c.uid, c.gid FROM search_closed c CROSS JOIN search_doc d ON d.ino = c.ino";

// Reading an item also takes search (x) permission on items/ and on its
// shard, as the kernel checks on the way to it: the directories with an x
// bit missing (a handful, if any; read from the store as they are now) are
// looked at, and the items of those `who` may not enter are closed to it
// as well.
constexpr const char* kAllEntries = "SELECT gen FROM search_doc";
constexpr uint32_t kAllSearch = 0111;

// The generations of the indexed items `who` may not read, sorted and
// distinct: empty for root and when every item and directory is readable
// and searchable by all.
}  // namespace

bool closed_mode(uint32_t mode) { return (mode & kAllRead) != kAllRead; }

std::vector<int64_t> unreadable_gens(sqlite3* db, store::Store& store, const Reader& who) {
  std::vector<int64_t> out;
  if (who.root()) return out;
  {
    std::vector<store::DirInfo> dirs = store.list_dirs();
    if (auto top = store.dir_info("")) dirs.insert(dirs.begin(), *top);
    std::vector<std::string> shut;
    for (const auto& dir : dirs) {
      const store::Attrs& a = dir.attrs;
      if ((a.mode & kAllSearch) == kAllSearch || who.may_search(a.mode, a.uid, a.gid)) continue;
      if (dir.name.empty()) {  // items/ itself: nothing is readable
        base::Stmt all(db, kAllEntries);
        while (all.step()) out.push_back(all.int64(0));
        return out;  // in gen order (the table's rowid)
      }
      shut.push_back(dir.name);
    }
    base::Stmt by_ino(db, "SELECT gen FROM search_doc WHERE ino=?");
    for (const auto& shard : shut) {
      for (const auto& item : store.list_shard(shard)) {
        base::StmtScope r(by_ino);
        if (by_ino.bind(1, item.ino).step()) out.push_back(by_ino.int64(0));
      }
    }
  }
  base::Stmt s(db, kClosedItems);
  while (s.step()) {
    if (!who.may_read(uint32_t(s.int64(1)), uint32_t(s.int64(2)), uint32_t(s.int64(3)))) out.push_back(s.int64(0));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace detail

bool Reader::may(uint32_t mode, uint32_t owner, uint32_t group, uint32_t bit) const {
  if (root()) return true;
  if (uid == owner) return mode & (bit << 6);
  if (gid == group || std::find(groups.begin(), groups.end(), group) != groups.end()) return mode & (bit << 3);
  return mode & bit;
}

}  // namespace itemfs::search
