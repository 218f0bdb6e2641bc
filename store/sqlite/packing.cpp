// The order that fills the blobs table's pages (first fit decreasing), and
// the size of a blobs row as SQLite stores it.

#include "store/sqlite/store_impl.h"

#include <algorithm>

namespace itemfs::store::sqlite {

namespace {

size_t varint_bytes(uint64_t value) {
  size_t n = 1;
  while (value >= 0x80 && n < 9) {
    value >>= 7;
    ++n;
  }
  return n;
}

// The bytes of an integer in an SQLite record (0 and 1 take none).
size_t int_bytes(int64_t v) {
  if (v == 0 || v == 1) return 0;
  if (v >= -128 && v <= 127) return 1;
  if (v >= -32768 && v <= 32767) return 2;
  if (v >= -8388608 && v <= 8388607) return 3;
  if (v >= -2147483648LL && v <= 2147483647LL) return 4;
  if (v >= -(1LL << 47) && v < (1LL << 47)) return 6;
  return 8;
}

}  // namespace

// The order to append rows of these payload sizes (bytes) to a table so
// that they fill its pages: SQLite appends a row to the last page if it
// fits and starts a new page if not, so rows in the order they come leave
// on average half a row free on every page, a tenth of the blobs table.
// First fit decreasing: the rows, largest first, each into the first page
// with room, pages one after the other. A row larger than a page keeps
// only part of it on the page (the rest goes to overflow pages), computed
// as SQLite does. `max_rowid`: no row's rowid is larger.
std::vector<size_t> packing_order(const std::vector<size_t>& payloads, size_t page_size, int64_t max_rowid) {
  const size_t usable = page_size;  // no reserved bytes per page
  const size_t max_local = usable - 35, min_local = (usable - 12) * 32 / 255 - 23;
  const size_t rowid_bytes = varint_bytes(uint64_t(std::max<int64_t>(max_rowid, 0)));
  auto cell = [&](size_t payload) {
    size_t local = payload;
    if (payload > max_local) {
      local = min_local + (payload - min_local) % (usable - 4);
      if (local > max_local) local = min_local;
      local += 4;  // the first overflow page's number
    }
    return varint_bytes(payload) + rowid_bytes + local + 2;  // and the cell pointer
  };
  const size_t capacity = usable - 8;  // a leaf page's header
  std::vector<size_t> by_size(payloads.size());
  for (size_t i = 0; i < by_size.size(); ++i) by_size[i] = i;
  std::stable_sort(by_size.begin(), by_size.end(), [&](size_t a, size_t b) { return payloads[a] > payloads[b]; });
  std::vector<size_t> room;
  std::vector<std::vector<size_t>> pages;
  for (size_t i : by_size) {
    size_t need = cell(payloads[i]);
    size_t page = 0;
    while (page < room.size() && room[page] < need) ++page;
    if (page == room.size()) {
      room.push_back(need > capacity ? 0 : capacity - need);
      pages.emplace_back();
    } else {
      room[page] -= need;
    }
    pages[page].push_back(i);
  }
  std::vector<size_t> order;
  order.reserve(payloads.size());
  for (const auto& page : pages) order.insert(order.end(), page.begin(), page.end());
  return order;
}

// (its size, a type per column; the data's type a varint of its length)
// and the values. `hash`: 32 bytes, or 0 when left out; `dict_id` 0: NULL.
size_t blob_payload(size_t data, size_t hash, int64_t raw_size, int64_t codec, int64_t dict_id, int64_t refs) {
  size_t header = 1 + 7 + varint_bytes(12 + 2 * uint64_t(data));
  return header + hash + int_bytes(raw_size) + int_bytes(int64_t(data)) + int_bytes(codec) +
         (dict_id ? int_bytes(dict_id) : 0) + int_bytes(refs) + data;
}

// No blob id is larger than this once `more` rows are added (AUTOINCREMENT
// ids follow the largest ever given).
int64_t max_blob_id_after(Db& db, size_t more) {
  auto s = db.cached("SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name='blobs'), 0)");
  int64_t seq = s->step() ? s->int64(0) : 0;
  return seq + int64_t(more);
}

}  // namespace itemfs::store::sqlite
