#include "store/store.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <streambuf>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "store/codec.h"
#include "store/dictionary.h"
#include "store/feed.h"
#include "store/hash.h"
#include "store/json_check.h"
#include "store/parallel.h"
#include "store/sqlite_db.h"

namespace itemfs::store {

void fill_item(Stmt& s, ItemInfo& info) {
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
}

// The parts of a prepared item (see Store::prepare()).
struct PreparedItem::Parts {
  struct Chunk {
    Sha256 sha256{};
    uint64_t offset = 0, size = 0;  // in bytes
    Codec codec = Codec::kRaw;
    int64_t dict_id = 0;  // the dictionary of the zlib stream (0: none)
    std::string stored;   // the zlib stream when codec is kZlib
  };
  std::string id;
  std::string bytes;
  Attrs attrs;
  Status early;    // bad id or too large: put() says so before it checks the disk
  Status invalid;  // invalid JSON: put() says so after it checks the disk
  Sha256 sha256{};
  std::vector<Chunk> chunks;
  int64_t dict_id = 0;  // the generation of the dictionary set it was compressed with
  bool skip_unchanged = false;  // skip_if_unchanged()
  bool replaced = false;        // put_prepared() found an item of this id
};

PreparedItem::PreparedItem() : parts_(std::make_unique<Parts>()) {}
PreparedItem::~PreparedItem() = default;
PreparedItem::PreparedItem(PreparedItem&&) noexcept = default;
PreparedItem& PreparedItem::operator=(PreparedItem&&) noexcept = default;
const std::string& PreparedItem::id() const { return parts_->id; }
uint64_t PreparedItem::size() const { return parts_->bytes.size(); }
Status PreparedItem::status() const { return parts_->early.ok() ? parts_->invalid : parts_->early; }
int64_t PreparedItem::dictionary_id() const { return parts_->dict_id; }
void PreparedItem::skip_if_unchanged() { parts_->skip_unchanged = true; }
bool PreparedItem::replaced() const { return parts_->replaced; }

namespace {

namespace fs = std::filesystem;

// Format version 3 schema (the tables are format 2's). docs/FORMAT.md
// describes every column.
const char* const kSchema = R"SQL(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dicts(
  id INTEGER PRIMARY KEY, created_ns INTEGER NOT NULL, data BLOB NOT NULL,
  codec INTEGER NOT NULL DEFAULT 0, raw_size INTEGER);
CREATE TABLE IF NOT EXISTS blobs(
  id INTEGER PRIMARY KEY AUTOINCREMENT, sha256 BLOB NOT NULL,
  raw_size INTEGER NOT NULL, stored_size INTEGER NOT NULL,
  codec INTEGER NOT NULL, dict_id INTEGER, refs INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS dirs(
  ino INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,
  mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS items(
  ino INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, shard TEXT NOT NULL,
  size INTEGER NOT NULL, sha256 BLOB NOT NULL,
  mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS items_in_00 ON items(id) WHERE shard='00';
CREATE TABLE IF NOT EXISTS chunks(
  ino INTEGER NOT NULL, seq INTEGER NOT NULL, blob INTEGER NOT NULL,
  PRIMARY KEY(ino, seq)) WITHOUT ROWID;
)SQL";

// How a blob is found by its SHA-256: by its first 8 bytes, in a quarter of
// the room of an index of all 32. A format 1 store has its UNIQUE(sha256)
// index instead, and keeps it (dropping it would mean copying the table); a
// store made as format 2 keeps its blobs_by_sha, which has every blob. From
// format 3 on the blob of a one-chunk item has no hash of its own (an empty
// sha256: the item's sha256 is its hash), so the index holds only the others.
const char* const kBlobsBySha =
    "CREATE INDEX IF NOT EXISTS blobs_by_sha ON blobs(substr(sha256, 1, 8)) WHERE length(sha256) = 32";
// A blob is looked up by "substr(sha256, 1, 8) = substr(?1, 1, 8) AND
// sha256 = ?1 AND length(sha256) = 32", which any of them answers.
// Format 3: a one-chunk item, and so its blob, is found by the first 4 bytes
// of its SHA-256.
const char* const kItemsBySha = "CREATE INDEX IF NOT EXISTS items_by_sha ON items(substr(sha256, 1, 4))";
// Format 4: the search index of formats 1 to 3 (its tables and its partial
// index of the items) is no longer in store.db.
const char* const kDropOldSearchIndex =
    "DROP INDEX IF EXISTS search_items_closed; DROP TABLE IF EXISTS search_vocab; DROP TABLE IF EXISTS search_fts;"
    "DROP TABLE IF EXISTS search_doc; DROP TABLE IF EXISTS search_value; DROP TABLE IF EXISTS search_dead;"
    "DROP TABLE IF EXISTS search_meta;";

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

ItemInfo item_from(Stmt& s) {
  ItemInfo info;
  fill_item(s, info);
  return info;
}

DirInfo dir_from(Stmt& s) {
  DirInfo info;
  info.ino = s.int64(0);
  info.name = std::string(s.text(1));
  info.attrs.mode = uint32_t(s.int64(2));
  info.attrs.uid = uint32_t(s.int64(3));
  info.attrs.gid = uint32_t(s.int64(4));
  info.attrs.mtime_ns = s.int64(5);
  info.ctime_ns = s.int64(6);
  return info;
}

// A seekable istream over bytes already in memory.
class MemoryBuf : public std::streambuf {
 public:
  explicit MemoryBuf(std::string_view bytes) {
    char* p = const_cast<char*>(bytes.data());
    setg(p, p, p + bytes.size());
  }

 protected:
  pos_type seekoff(off_type off, std::ios_base::seekdir dir, std::ios_base::openmode) override {
    char* target = (dir == std::ios_base::beg ? eback() : dir == std::ios_base::cur ? gptr() : egptr()) + off;
    if (target < eback() || target > egptr()) return pos_type(off_type(-1));
    setg(eback(), target, egptr());
    return pos_type(target - eback());
  }
  pos_type seekpos(pos_type pos, std::ios_base::openmode mode) override {
    return seekoff(off_type(pos), std::ios_base::beg, mode);
  }
};

struct ChunkRef {
  int64_t blob = 0;
  uint64_t raw_size = 0;
};

// A chunk of an item to read, with the hash its bytes must have: its blob's,
// or for a blob stored without one (format 3), the one-chunk item's own.
struct ReadChunk {
  int64_t blob = 0;
  uint64_t raw_size = 0;
  Sha256 digest{};
  bool has_digest = false;
};

// How reading one chunk went (StoreImpl::load_chunk()).
enum class ChunkRead { kOk, kGone, kDamaged };

// The order to append rows of these payload sizes (bytes) to a table so
// that they fill its pages: SQLite appends a row to the last page if it
// fits and starts a new page if not, so rows in the order they come leave
// on average half a row free on every page, a tenth of the blobs table.
// First fit decreasing: the rows, largest first, each into the first page
// with room, pages one after the other. A row larger than a page keeps
// only part of it on the page (the rest goes to overflow pages), computed
// as SQLite does. `max_rowid`: no row's rowid is larger.
size_t varint_bytes(uint64_t value) {
  size_t n = 1;
  while (value >= 0x80 && n < 9) {
    value >>= 7;
    ++n;
  }
  return n;
}

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

// The payload of a blobs row (its record, as SQLite stores it): the header
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

class StoreImpl;

// Everything about one blob needed to turn it back into bytes.
struct BlobRow {
  std::string data;
  uint64_t raw_size = 0;
  int codec = 0;
  int64_t dict_id = 0;
  Sha256 sha256{};
};

class WriteBatchImpl final : public WriteBatch {
 public:
  WriteBatchImpl(StoreImpl& store, Db& db) : store_(store), db_(db) {}
  Status put(std::string_view id, std::istream& content, const Attrs& attrs, ItemInfo* stored) override;
  Status put_prepared(PreparedItem& item) override;
  Status remove(std::string_view id) override;
  Status rename(std::string_view from, std::string_view to) override;
  Status set_attrs(std::string_view id, const Attrs& attrs) override;
  Status make_dir(std::string_view shard, const Attrs& attrs) override;
  Status remove_dir(std::string_view shard) override;
  Status set_dir_attrs(std::string_view shard, const Attrs& attrs) override;
  Status repair_blobs(std::string_view bytes, uint64_t* rewritten) override;
  const std::vector<std::string>& changed_ids() const override { return changed_; }
  // Stores the blobs this batch added again, in packing_order(): called once,
  // after the batch's last change.
  void pack_new_blobs();
  // Saves the feed's last sequence number (and trims it): after the last
  // change. Returns the batch's last sequence number, 0 if it made none.
  uint64_t finish_feed() { return feed_.recorded() ? feed_.finish() : 0; }

 private:
  // Runs `fn` inside a savepoint so a failed call leaves the batch as it was.
  Status guarded(const std::function<Status()>& fn);
  std::optional<ItemInfo> find(std::string_view id);
  // `whole`: the chunk is all of a one-chunk item.
  int64_t store_chunk(std::string_view raw, bool whole);
  int64_t store_prepared_chunk(const PreparedItem::Parts::Chunk& chunk, std::string_view raw, bool whole);
  // The blob of `digest`, with one reference more; 0 if there is none.
  // `whole`: the content is a one-chunk item's.
  int64_t reuse_blob(const Sha256& digest, bool whole);
  int64_t reuse_checked(const Sha256& digest, std::string_view raw, bool whole);
  bool blob_damaged(int64_t blob, std::string_view raw, const Sha256& digest);
  void rewrite_blob(int64_t blob, std::string_view raw, const Sha256& digest);
  // Gives a blob whose one-chunk items are gone its hash back (see
  // released_).
  void restore_blob_hashes();
  // Drops `item`'s chunk rows and their references (as read just before:
  // its ino, size and sha256).
  void release_chunks(const ItemInfo& item);
  void ensure_dir(const std::string& shard, const Attrs& like, int64_t now);
  void touch_dir(const std::string& shard, int64_t now);
  Status put_bytes(std::string_view id, std::string_view bytes, const Attrs& attrs);
  Status put_stream(std::string_view id, std::istream& content, uint64_t size, const Attrs& attrs);
  Status finish_put(std::string_view id, const std::vector<ChunkRef>& chunks, const Sha256& digest, uint64_t size,
                    const Attrs& attrs);

  StoreImpl& store_;
  Db& db_;
  feed::Recorder feed_{db_};
  ItemInfo* stored_ = nullptr;  // where finish_put() reports the item it stored
  std::vector<std::string> changed_;
  std::string compressed_;
  // Blobs reuse_checked() has checked in this batch: one that repeats (the
  // same chunk many times in a large item, the same page in an import) is
  // decoded and hashed once.
  std::unordered_set<int64_t> checked_blobs_;
  int64_t first_new_blob_ = 0;  // the smallest id a blob new in this batch can have (0: none yet)
  std::vector<std::pair<int64_t, int64_t>> new_chunks_;  // (ino, seq) of chunk rows naming a new blob
  // (blob, hash) of the one-chunk items whose chunks this call released:
  // a blob stored without its hash must get it back if it outlives them.
  // Only release_chunks() adds to it, and only inside guarded(), which
  // empties it before it returns or throws.
  std::vector<std::pair<int64_t, Sha256>> released_;
  // Before the first blob this batch adds.
  void note_new_blob();
};

class StoreImpl final : public Store {
 public:
  StoreImpl(fs::path dir, Options options) : dir_(std::move(dir)), options_(options), compressor_(6) {
    if (!options_.read_only) create_private(dir_, db_path());
    writer_ = std::make_unique<Db>(db_path(), options_.read_only, options_.sync_full);
    if (!options_.read_only) init_schema();
    check_version();
    {
      Stmt columns(writer_->handle(), "SELECT 1 FROM pragma_table_info('dicts') WHERE name='codec'");
      dicts_coded_ = columns.step();
      Stmt size(writer_->handle(), "PRAGMA page_size");
      if (size.step() && size.int64(0) >= 512) page_size_ = size_t(size.int64(0));
    }
    // Format 1's UNIQUE(sha256) allows one empty hash only.
    elide_blob_hashes_ = !options_.read_only && !has_unique_sha_index();
    load_dictionary_set();
    reserve_bytes_ = measure_reserve_bytes();
    if (!options_.read_only) keep_space_reserve();
  }

  // A new store is its owner's alone, as restic's repository is: the
  // directory 0700 and store.db 0600 (SQLite gives its -wal and -shm files
  // the database's mode), whatever the umask. An existing store keeps its
  // modes (permissions_warning() tells of open ones).
  static void create_private(const fs::path& dir, const fs::path& db) {
    std::error_code ec;
    if (!fs::exists(dir, ec)) {
      if (dir.has_parent_path()) fs::create_directories(dir.parent_path(), ec);
      if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        throw StoreError(errno, "cannot create store directory " + dir.string() + ": " + std::strerror(errno));
    }
    int fd = ::open(db.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      ::close(fd);
    } else if (errno != EEXIST) {
      throw StoreError(errno, "cannot create " + db.string() + ": " + std::strerror(errno));
    }
  }

  const fs::path& dir() const override { return dir_; }
  const Options& options() const override { return options_; }
  Compressor& compressor() { return compressor_; }
  bool elide_blob_hashes() const { return elide_blob_hashes_; }
  size_t page_size() const { return page_size_; }

  void write(const std::function<void(WriteBatch&)>& fn) override {
    if (options_.read_only) throw StoreError(EROFS, "the store is open read-only");
    std::unique_lock lock(write_mutex_);
    size_t puts = 0;
    uint64_t seq = 0;
    writer_->exec("BEGIN IMMEDIATE");
    try {
      WriteBatchImpl batch(*this, *writer_);
      fn(batch);
      batch.pack_new_blobs();
      puts = batch.changed_ids().size();
      seq = batch.finish_feed();
      commit_or_use_reserve();
    } catch (...) {
      sqlite3_exec(writer_->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
      // A batch refused for lack of room, or a COMMIT that ran out of disk,
      // leaves the WAL as large as it grew: give that space back now, while
      // the committed part of the WAL can still be copied into store.db.
      give_back_space_if_low();
      throw;
    }
    give_back_space_if_low();
    // The batch is committed: whatever happens to the training, the caller
    // must hear that its write succeeded.
    try {
      maybe_train_dictionary(puts);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "itemfs: training a compression dictionary failed: %s\n", e.what());
    }
    lock.unlock();
    if (seq) {
      for (const auto& listener : listeners_) listener(seq);
    }
  }

  uint64_t last_seq() override {
    auto reader = acquire();
    return feed::last_seq(*reader);
  }
  void add_commit_listener(CommitListener fn) override { listeners_.push_back(std::move(fn)); }

  // One short write transaction for a follower's cursor.
  void feed_write(const std::function<void()>& fn) {
    std::lock_guard lock(write_mutex_);
    writer_->exec("BEGIN IMMEDIATE");
    try {
      fn();
      writer_->exec("COMMIT");
    } catch (...) {
      sqlite3_exec(writer_->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }
  uint64_t follow(std::string_view name) override {
    if (options_.read_only) return last_seq();
    uint64_t at = 0;
    feed_write([&] {
      auto s = writer_->cached("SELECT seq FROM followers WHERE name=?");
      s->bind(1, name);
      if (s->step()) {
        at = uint64_t(s->int64(0));
        return;
      }
      s->reset();
      at = feed::last_seq(*writer_);
      feed::set_cursor(*writer_, name, at, true);
    });
    return at;
  }
  void advance(std::string_view name, uint64_t seq) override {
    if (options_.read_only) return;
    auto now = cursor(name);
    if (!now || *now >= seq) return;
    feed_write([&] { feed::set_cursor(*writer_, name, seq, false); });
  }
  void unfollow(std::string_view name) override {
    if (options_.read_only) return;
    feed_write([&] { feed::remove_follower(*writer_, name); });
  }
  std::optional<uint64_t> cursor(std::string_view name) override {
    if (!has_feed_) return std::nullopt;
    auto reader = acquire();
    auto s = reader->cached("SELECT seq FROM followers WHERE name=?");
    s->bind(1, name);
    if (!s->step()) return std::nullopt;
    return uint64_t(s->int64(0));
  }
  bool has_feed() const { return has_feed_; }

  // Disk full. SQLite grows store.db only at a checkpoint, by copying WAL
  // pages into it, and never shrinks the WAL file by itself. On a disk that
  // filled up completely the checkpoint cannot grow store.db, so the WAL
  // never resets and removing items frees nothing: the store is stuck. So a
  // new item is refused (ENOSPC) unless the disk keeps room for it twice
  // (WAL, then store.db, less the free pages store.db can reuse), for the
  // WAL as it is, and 256 KiB more; when the disk is low after a commit
  // (removes and failures included) the WAL is checkpointed and truncated
  // so its space goes back to the disk; and the space reserve below covers
  // what these rules cannot foresee.
  static constexpr uint64_t kSpareBytes = 256 << 10;

  uint64_t wal_bytes() const {
    std::error_code ec;
    auto size = fs::file_size(db_path().string() + "-wal", ec);
    return ec ? 0 : uint64_t(size);
  }

  std::optional<uint64_t> disk_free() const {
    struct statvfs st {};
    if (statvfs(dir_.c_str(), &st) != 0) return std::nullopt;
    return uint64_t(st.f_bavail) * uint64_t(st.f_frsize ? st.f_frsize : st.f_bsize);
  }

  Status check_room(uint64_t size) const {
    auto free = disk_free();
    if (!free) return Status::success();
    uint64_t need = 2 * size + wal_bytes() + kSpareBytes + missing_reserve();
    if (*free >= need) return Status::success();
    // Pages freed by removed items are reused at the checkpoint: store.db
    // then need not grow, and what the lent reserve keeps free is not at
    // stake (the WAL is what the reserve is for).
    uint64_t growth = size - std::min(size, free_page_bytes());
    need = size + growth + wal_bytes() + kSpareBytes + (growth ? missing_reserve() : 0);
    if (*free >= need) return Status::success();
    return Status::error(ENOSPC, "the disk holding the store is full: " + std::to_string(*free) +
                                     " bytes free, storing " + std::to_string(size) + " bytes needs " +
                                     std::to_string(need) + " (room for the log and its checkpoint)");
  }

  // Staging files grow only while the disk keeps the WAL's size and 256 KiB
  // more free: a body being written must never take the room a checkpoint
  // needs, or a store whose WAL is not yet copied back would be stuck full.
  Status check_staging_room(uint64_t bytes) const override {
    // Every growing write comes here: while half of the surplus found by the
    // last look at the disk (at most 64 MiB) lasts, no need to look again.
    for (uint64_t left = staging_allowance_.load(); left >= bytes;) {
      if (staging_allowance_.compare_exchange_weak(left, left - bytes)) return Status::success();
    }
    auto free = disk_free();
    if (!free) return Status::success();
    uint64_t need = bytes + wal_bytes() + kSpareBytes;
    if (*free >= need) {
      staging_allowance_ = std::min<uint64_t>((*free - need) / 2, 64ull << 20);
      return Status::success();
    }
    staging_allowance_ = 0;
    return Status::error(ENOSPC, "the disk holding the store is full: " + std::to_string(*free) +
                                     " bytes free, " + std::to_string(need - bytes) +
                                     " kept back for the store's log and its checkpoint");
  }

  void give_back_space_if_low() {
    uint64_t wal = wal_bytes();
    auto free = disk_free();
    if (!free) return;
    if (wal > 0 && (!reserve_held_ || *free < 2 * wal + 8 * kSpareBytes)) {
      // A single commit can write more than the rule above foresaw (the
      // search index merges its segments now and then), and a disk can be
      // filled by others. If the checkpoint cannot grow store.db, the
      // reserve file's space is what lets it finish.
      if (!checkpoint_truncate() && release_space_reserve()) checkpoint_truncate();
      free = disk_free();
    }
    if (free && !reserve_held_ && *free >= reserve_bytes() + wal_bytes() + kSpareBytes) keep_space_reserve();
    // Commits use the disk too: the staging allowance never outlasts what
    // this commit left free.
    if (free) {
      uint64_t kept = wal_bytes() + kSpareBytes;
      uint64_t cap = *free > kept ? (*free - kept) / 2 : 0;
      for (uint64_t left = staging_allowance_.load(); left > cap;)
        if (staging_allowance_.compare_exchange_weak(left, cap)) break;
    }
  }

  // COMMIT writes the transaction's pages to the WAL, and a commit may write
  // far more than its items (the search index merges segments now and then):
  // on a nearly full disk that would fail with SQLITE_FULL, and SQLite rolls
  // back. So when the disk has less free than the reserve, the reserve is
  // lent to the commit; the checkpoint after it copies the WAL into
  // store.db (reusing its free pages) and give_back_space_if_low() takes the
  // reserve again once the room is back. While it is lent, check_room()
  // keeps its size free, so new data cannot eat it.
  void commit_or_use_reserve() {
    if (reserve_held_) {
      auto free = disk_free();
      if (free && *free < reserve_bytes()) release_space_reserve();
    }
    writer_->exec("COMMIT");
  }

  // True when the whole WAL was copied into store.db and the file emptied.
  bool checkpoint_truncate() {
    // Readers may hold the WAL; wait for them a little, never for long.
    sqlite3_busy_timeout(writer_->handle(), 200);
    int log = -1, done = -1;
    int rc = sqlite3_wal_checkpoint_v2(writer_->handle(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, &log, &done);
    writer_->restore_busy_handler();
    return rc == SQLITE_OK && log == done;
  }

  // The space reserve: a file of preallocated blocks next to store.db,
  // given back to the disk when a checkpoint cannot otherwise finish and
  // taken again once the disk has room. Without it a disk that filled up
  // while the WAL held pages not yet in store.db could never be recovered
  // by removing items. An eighth of the disk, at most 8 MiB.
  fs::path reserve_path() const { return dir_ / "space-reserve"; }

  uint64_t reserve_bytes() const { return reserve_bytes_; }

  // The disk's size does not change under a mounted store: measured once.
  uint64_t measure_reserve_bytes() const {
    struct statvfs st {};
    if (statvfs(dir_.c_str(), &st) != 0) return 0;
    uint64_t total = uint64_t(st.f_blocks) * uint64_t(st.f_frsize ? st.f_frsize : st.f_bsize);
    return std::min<uint64_t>(8ull << 20, total / 8);
  }

  // Free pages inside store.db, as the writer sees them.
  uint64_t free_page_bytes() const {
    auto pages = writer_->cached("PRAGMA freelist_count");
    uint64_t count = pages->step() ? uint64_t(pages->int64(0)) : 0;
    auto size = writer_->cached("PRAGMA page_size");
    return count * (size->step() ? uint64_t(size->int64(0)) : 4096);
  }

  // While the reserve is given back, its space is not for new items.
  uint64_t missing_reserve() const { return reserve_held_ ? 0 : reserve_bytes(); }

  void keep_space_reserve() {
    uint64_t want = reserve_bytes();
    std::error_code ec;
    if (want == 0) return;
    if (fs::file_size(reserve_path(), ec) >= want && !ec) {
      reserve_held_ = true;
      return;
    }
    int fd = ::open(reserve_path().c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return;
    bool ok = posix_fallocate(fd, 0, off_t(want)) == 0;
    ::close(fd);
    if (!ok) fs::remove(reserve_path(), ec);
    reserve_held_ = ok;
  }

  bool release_space_reserve() {
    if (!reserve_held_) return false;
    std::error_code ec;
    fs::remove(reserve_path(), ec);
    reserve_held_ = false;
    std::fprintf(stderr, "itemfs: the disk holding the store is full; its space reserve was given back\n");
    return !ec;
  }

  // The dictionaries new blobs are compressed with (empty when none yet).
  // The writer's view: call with write_mutex_ held.
  const DictionarySet& dictionaries() const { return *dict_set_; }

  // The same from any thread.
  std::shared_ptr<const DictionarySet> current_dictionaries() const {
    std::lock_guard lock(current_dict_mutex_);
    return dict_set_;
  }

  // Compresses one chunk as a new blob is stored: with the dictionary of
  // `set` chosen for its bytes, raw if zlib does not shrink it. `dict_id`
  // is the dictionary the stream needs (0: none, or raw).
  static Codec compress_chunk(Compressor& compressor, const DictionarySet& set, std::string_view raw,
                              std::string& stored, int64_t& dict_id) {
    const Dictionary* dictionary = set.choose(raw);
    std::string_view data = dictionary ? std::string_view(dictionary->data) : std::string_view();
    Codec codec = compressor.compress(raw, data, stored);
    dict_id = codec == Codec::kZlib && dictionary ? dictionary->id : 0;
    return codec;
  }

  PreparedItem prepare(std::string id, std::string bytes, const Attrs& attrs) override {
    PreparedItem item;
    auto& p = item.parts();
    p.id = std::move(id);
    p.bytes = std::move(bytes);
    p.attrs = attrs;
    // put()'s checks, in put()'s order.
    if (Status status = check_id(p.id); !status.ok()) {
      p.early = status;
      return item;
    }
    uint64_t size = p.bytes.size();
    if (size > options_.max_item_size) {
      p.early = Status::error(EFBIG, "item is " + std::to_string(size) + " bytes; the limit is " +
                                         std::to_string(options_.max_item_size));
      return item;
    }
    if (size <= kChunkSize) {
      p.invalid = validate_json_bytes(p.bytes);
    } else {
      MemoryBuf buf(p.bytes);
      std::istream in(&buf);
      p.invalid = validate_json(in);
    }
    if (!p.invalid.ok()) return item;
    if (size <= kChunkSize) {
      p.chunks.push_back({sha256_of(p.bytes), 0, size, Codec::kRaw, {}});
      p.sha256 = p.chunks[0].sha256;
    } else {
      Sha256Hasher whole;
      for (uint64_t offset = 0; offset < size; offset += kChunkSize) {
        std::string_view piece = std::string_view(p.bytes).substr(offset, kChunkSize);
        whole.update(piece);
        p.chunks.push_back({sha256_of(piece), offset, piece.size(), Codec::kRaw, {}});
      }
      p.sha256 = whole.finish();
    }
    compress_prepared(p, *current_dictionaries());
    return item;
  }

  int64_t current_dictionary_id() const override { return current_dictionaries()->generation(); }

  bool recompress_if_stale(PreparedItem& item) override {
    auto& p = item.parts();
    auto current = current_dictionaries();
    if (p.chunks.empty() || p.dict_id == current->generation()) return false;
    compress_prepared(p, *current);
    return true;
  }

  static void compress_prepared(PreparedItem::Parts& p, const DictionarySet& dictionaries) {
    // One deflate state per thread: allocating one costs more than
    // compressing a small item.
    thread_local Compressor compressor(6);
    for (auto& chunk : p.chunks) {
      std::string_view raw = std::string_view(p.bytes).substr(chunk.offset, chunk.size);
      chunk.codec = compress_chunk(compressor, dictionaries, raw, chunk.stored, chunk.dict_id);
      if (chunk.codec != Codec::kZlib) chunk.stored.clear();
    }
    p.dict_id = dictionaries.generation();
  }

  std::optional<ItemInfo> item(std::string_view id) override {
    auto reader = acquire();
    return find_item(*reader, id);
  }

  std::optional<ItemInfo> item_by_ino(int64_t ino) override {
    auto reader = acquire();
    auto s = reader->cached("SELECT ino, id, size, sha256, mode, uid, gid, mtime_ns, ctime_ns FROM items WHERE ino=?");
    s->bind(1, ino);
    if (!s->step()) return std::nullopt;
    return item_from(*s);
  }

  std::vector<ItemInfo> list_shard(std::string_view shard) override {
    auto reader = acquire();
    std::vector<ItemInfo> out;
    auto s = shard_items(*reader, shard, false);
    while (s->step()) out.push_back(item_from(*s));
    return out;
  }

  // The items of a shard in id order (or, with `any`, at most one of them).
  // A shard's items are the ids that start with it, a range of the id
  // index, except in shard 00, which also has the ids of one code point
  // (items_in_00 holds its ids). No valid UTF-8 id has a byte 0xFF.
  static StmtScope shard_items(Db& db, std::string_view shard, bool any) {
    const char* sql;
    if (shard == "00")
      sql = any ? "SELECT ino FROM items WHERE shard='00' LIMIT 1"
                : "SELECT ino, id, size, sha256, mode, uid, gid, mtime_ns, ctime_ns FROM items WHERE shard='00' "
                  "ORDER BY id";
    else
      sql = any ? "SELECT ino FROM items WHERE id >= ?1 AND id < ?2 LIMIT 1"
                : "SELECT ino, id, size, sha256, mode, uid, gid, mtime_ns, ctime_ns FROM items "
                  "WHERE id >= ?1 AND id < ?2 ORDER BY id";
    Stmt& stmt = *db.cached(sql);
    if (shard != "00") stmt.bind(1, shard).bind(2, std::string(shard) + '\xff');
    return StmtScope(stmt);
  }

  std::optional<DirInfo> dir_info(std::string_view shard) override {
    auto reader = acquire();
    auto s = reader->cached("SELECT ino, name, mode, uid, gid, mtime_ns, ctime_ns FROM dirs WHERE name=?");
    s->bind(1, shard);
    if (!s->step()) return std::nullopt;
    return dir_from(*s);
  }

  std::vector<DirInfo> list_dirs() override {
    auto reader = acquire();
    auto s = reader->cached("SELECT ino, name, mode, uid, gid, mtime_ns, ctime_ns FROM dirs WHERE name<>'' ORDER BY name");
    std::vector<DirInfo> out;
    while (s->step()) out.push_back(dir_from(*s));
    return out;
  }

  std::unique_ptr<ItemReader> open_item(const ItemInfo& item, bool lazy) override;
  std::unique_ptr<Snapshot> snapshot() override;


  bool changed_by_others() override {
    std::lock_guard lock(write_mutex_);
    // data_version moves on this connection when any other connection
    // commits; all of this process's writes go through this one.
    auto s = writer_->cached("PRAGMA data_version");
    int64_t version = s->step() ? s->int64(0) : 0;
    bool changed = seen_data_version_ && *seen_data_version_ != version;
    seen_data_version_ = version;
    return changed;
  }

  Stats stats() override {
    Stats stats;
    auto reader = acquire();
    reader->exec("BEGIN");
    {
      auto s = reader->cached("SELECT count(*), coalesce(sum(size),0) FROM items");
      s->step();
      stats.items = uint64_t(s->int64(0));
      stats.logical_bytes = uint64_t(s->int64(1));
    }
    {
      auto s = reader->cached("SELECT count(*), coalesce(sum(raw_size),0), coalesce(sum(stored_size),0) FROM blobs");
      s->step();
      stats.blobs = uint64_t(s->int64(0));
      stats.unique_bytes = uint64_t(s->int64(1));
      stats.stored_bytes = uint64_t(s->int64(2));
    }
    reader->exec("COMMIT");
    stats.damaged_reads = damaged_reads_.load(std::memory_order_relaxed);
    for (const char* suffix : {"", "-wal"}) {
      std::error_code ec;
      auto size = fs::file_size(db_path().string() + suffix, ec);
      if (!ec) stats.database_bytes += size;
    }
    return stats;
  }

  FsckReport fsck(bool repair, const FsckProgress& progress) override;

  // The bytes of one chunk of item `id` (the `seq`th of `count`) into
  // `out`, decoded and checked against the hash they must have. kGone if
  // its blob is no longer there (a writer replaced the item); kDamaged,
  // with *error set to a sentence naming the item, if the bytes do not
  // decode or are not the bytes the hash names. Every damaged read is
  // counted (Stats::damaged_reads).
  ChunkRead load_chunk(Db& db, const ReadChunk& chunk, std::string_view id, size_t seq, size_t count,
                       std::string& out, std::string* error, bool count_damage = true) {
    auto row = blob_row(db, chunk.blob);
    if (!row) return ChunkRead::kGone;
    std::string problem;
    std::optional<std::string> bytes = decode(db, *row, &problem);
    if (bytes && bytes->size() != chunk.raw_size)
      problem = "it holds " + std::to_string(bytes->size()) + " bytes, not " + std::to_string(chunk.raw_size);
    else if (bytes && !chunk.has_digest)
      problem = "its blob has no SHA-256 to check it against";
    else if (bytes && sha256_of(*bytes) != chunk.digest)
      problem = "its bytes do not match its SHA-256 " + to_hex(chunk.digest);
    if (problem.empty()) {
      out = std::move(*bytes);
      return ChunkRead::kOk;
    }
    if (count_damage) damaged_reads_.fetch_add(1, std::memory_order_relaxed);
    if (error) {
      *error = "item " + std::string(id) + " is damaged: ";
      if (count > 1) *error += "chunk " + std::to_string(seq + 1) + " of " + std::to_string(count) + ": ";
      *error += problem;
    }
    return ChunkRead::kDamaged;
  }

  // Blob bytes, decompressed and checked against raw size; nullopt if gone.
  void count_damaged_read() { damaged_reads_.fetch_add(1, std::memory_order_relaxed); }

  std::optional<std::string> load_blob(Db& db, int64_t blob_id, std::string* problem = nullptr) {
    auto row = blob_row(db, blob_id);
    if (!row) return std::nullopt;
    return decode(db, *row, problem);
  }

  // The bytes of the blob in `row` (blob_from()'s columns; all NULL for a
  // blob that is gone) given to `sink` a piece at a time until it returns
  // false (decompress_pieces(), the checksum not verified): what a preview
  // that may stop early reads. False, with *problem set, if the blob is gone
  // or found damaged.
  bool stream_blob(Db& db, Stmt& row, size_t first_piece, const PieceSink& sink, std::string* problem) {
    if (row.is_null(0)) {
      *problem = "no such blob";
      return false;
    }
    const auto codec = int(row.int64(2));
    const std::string_view dictionary =
        codec == int(Codec::kZlib) ? dictionary_of(db, row.is_null(3) ? 0 : row.int64(3)) : std::string_view();
    // Inflated straight from the row: no copy of the stored bytes.
    return stream_blob_bytes(row.blob(0), uint64_t(row.int64(1)), codec, dictionary, first_piece, sink, problem);
  }

  // stream_blob() for a blob's columns already read (`dictionary`: its
  // dictionary_of()). It uses no connection, so any thread may call it.
  static bool stream_blob_bytes(std::string_view data, uint64_t raw_size, int codec, std::string_view dictionary,
                                size_t first_piece, const PieceSink& sink, std::string* problem) {
    if (std::string wrong = codec_problem(codec, data.size(), raw_size); !wrong.empty()) {
      *problem = std::move(wrong);
      return false;
    }
    if (codec == int(Codec::kRaw)) {
      sink(data);
      return true;
    }
    std::string out;
    if (!decompress_pieces(data, dictionary, raw_size, out, first_piece, false, sink)) {
      *problem = "zlib data is damaged";
      return false;
    }
    return true;
  }

  static constexpr const char* kBlobRowSql = "SELECT data, raw_size, codec, dict_id FROM blobs WHERE id=?";

  // A row of (data, raw_size, codec, dict_id), as kBlobRowSql selects.
  static BlobRow blob_from(Stmt& s) {
    BlobRow row;
    row.data = std::string(s.blob(0));
    row.raw_size = uint64_t(s.int64(1));
    row.codec = int(s.int64(2));
    row.dict_id = s.is_null(3) ? 0 : s.int64(3);
    return row;
  }

  std::optional<BlobRow> blob_row(Db& db, int64_t blob_id) {
    auto s = db.cached(kBlobRowSql);
    s->bind(1, blob_id);
    if (!s->step()) return std::nullopt;
    return blob_from(*s);
  }

  // What is wrong with a blob's codec and sizes, before its bytes are read:
  // "" when nothing.
  static std::string codec_problem(int codec, size_t stored_size, uint64_t raw_size) {
    if (codec == int(Codec::kRaw)) return stored_size == raw_size ? "" : "raw blob has the wrong size";
    if (codec != int(Codec::kZlib)) return "unknown codec " + std::to_string(codec);
    return "";
  }

  std::optional<std::string> decode(Db& db, const BlobRow& row, std::string* problem) {
    if (std::string wrong = codec_problem(row.codec, row.data.size(), row.raw_size); !wrong.empty()) {
      if (problem) *problem = std::move(wrong);
      return std::nullopt;
    }
    if (row.codec == int(Codec::kRaw)) return row.data;
    std::string out;
    if (!decompress(row.data, dictionary_of(db, row.dict_id), row.raw_size, out)) {
      if (problem) *problem = "zlib data is damaged";
      return std::nullopt;
    }
    return out;
  }

  // The dictionary dict_id of a zlib blob; empty for none (or when the
  // dictionary is missing: decompressing then finds the blob damaged). The
  // view stays valid while the store is open (dicts_ keeps every one read).
  std::string_view dictionary_of(Db& db, int64_t dict_id) {
    if (!dict_id) return {};
    return *load_dictionary(db, dict_id);
  }

  // A dictionary's bytes, read once and kept (they never change); empty if
  // there is no such dictionary.
  std::shared_ptr<const std::string> load_dictionary(Db& db, int64_t dict_id) {
    {
      std::lock_guard lock(dict_mutex_);
      if (auto it = dicts_.find(dict_id); it != dicts_.end()) return it->second;
    }
    auto data = std::make_shared<const std::string>(read_dictionary(db, dict_id).value_or(std::string()));
    std::lock_guard lock(dict_mutex_);
    return dicts_.emplace(dict_id, std::move(data)).first->second;
  }

  // A dictionary's bytes from the database (stored zlib-compressed, codec
  // 1, or as they are, codec 0); nullopt if it is missing or damaged.
  std::optional<std::string> read_dictionary(Db& db, int64_t dict_id) {
    // A format 1 store opened read-only has no codec column.
    auto s = db.cached(dicts_coded_ ? "SELECT data, codec, raw_size FROM dicts WHERE id=?"
                                    : "SELECT data, 0, NULL FROM dicts WHERE id=?");
    s->bind(1, dict_id);
    if (!s->step()) return std::nullopt;
    int64_t codec = s->int64(1);
    if (codec == int64_t(Codec::kRaw)) return std::string(s->blob(0));
    std::string out;
    if (codec != int64_t(Codec::kZlib) || s->is_null(2) || s->int64(2) < 0 ||
        !decompress(s->blob(0), std::string_view(), size_t(s->int64(2)), out))
      return std::nullopt;
    return out;
  }

  // A pooled read connection, returned to the pool when the handle dies.
  class Lease {
   public:
    Lease(StoreImpl& store, std::unique_ptr<Db> db) : store_(&store), db_(std::move(db)) {}
    Lease(Lease&& other) noexcept = default;
    ~Lease() {
      if (db_) store_->release(std::move(db_));
    }
    Db* operator->() { return db_.get(); }
    Db& operator*() { return *db_; }

   private:
    StoreImpl* store_;
    std::unique_ptr<Db> db_;
  };

  Lease acquire() {
    {
      std::lock_guard lock(pool_mutex_);
      if (!pool_.empty()) {
        auto db = std::move(pool_.back());
        pool_.pop_back();
        return Lease(*this, std::move(db));
      }
    }
    return Lease(*this, std::make_unique<Db>(db_path(), true, options_.sync_full));
  }

  void release(std::unique_ptr<Db> db) {
    // A connection left inside a transaction must not pin an old snapshot.
    if (!sqlite3_get_autocommit(db->handle())) sqlite3_exec(db->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
    // Idle readers kept: each holds up to 2 MB of cached pages (sqlite_db.cpp),
    // and on two cores more than a few rarely read at once.
    std::lock_guard lock(pool_mutex_);
    if (pool_.size() < kIdleReaders) pool_.push_back(std::move(db));
  }

  static std::optional<ItemInfo> find_item(Db& db, std::string_view id) {
    auto s = db.cached("SELECT ino, id, size, sha256, mode, uid, gid, mtime_ns, ctime_ns FROM items WHERE id=?");
    s->bind(1, id);
    if (!s->step()) return std::nullopt;
    return item_from(*s);
  }

  // Shares out the work of Snapshot::read_items_until.
  HelperThread& preview_helper() { return preview_helper_; }

 private:
  fs::path db_path() const { return dir_ / "store.db"; }

  // Creates the tables of a new store, or brings a store of format 1 or 2
  // to the current format, in one transaction. 1 to 2: items_by_shard(shard,
  // id) is dropped (a shard's items are a range of ids; items_in_00 holds
  // those of shard 00), dicts gains codec and raw_size; the store keeps its
  // one dictionary and its blobs as they are. 2 to 3: items_by_sha is made;
  // the blobs keep their hashes (format 3 allows both; only blobs stored
  // later leave theirs out). A store of a format this build does not know is
  // left alone (check_version() refuses it).
  void init_schema() {
    writer_->exec("BEGIN IMMEDIATE");
    try {
      std::optional<int64_t> found;
      {
        auto has_meta = writer_->cached("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'");
        if (has_meta->step()) {
          auto version = writer_->cached("SELECT value FROM meta WHERE key='format_version'");
          if (version->step()) found = version->int64(0);
        }
      }
      if (found == 1) {
        writer_->exec(kSchema);
        writer_->exec("DROP INDEX IF EXISTS items_by_shard");
        writer_->exec("ALTER TABLE dicts ADD COLUMN codec INTEGER NOT NULL DEFAULT 0");
        writer_->exec("ALTER TABLE dicts ADD COLUMN raw_size INTEGER");
        if (!has_unique_sha_index()) writer_->exec(kBlobsBySha);
      }
      if (found == 1 || found == 2 || found == 3) {
        writer_->exec(kSchema);
        writer_->exec(kItemsBySha);
        // 3 to 4: the search index moves to search.db (its own database).
        writer_->exec(kDropOldSearchIndex);
        feed::create_tables(*writer_);
        auto set = writer_->cached("UPDATE meta SET value=? WHERE key='format_version'");
        set->bind(1, int64_t(kFormatVersion)).run();
      } else if (found == kFormatVersion) {
        writer_->exec(kSchema);
        if (!has_unique_sha_index()) writer_->exec(kBlobsBySha);
        writer_->exec(kItemsBySha);
        feed::create_tables(*writer_);
      }
      if (!found) {
        writer_->exec(kSchema);
        feed::create_tables(*writer_);
        writer_->exec(kBlobsBySha);
        writer_->exec(kItemsBySha);
        auto set = writer_->cached("INSERT INTO meta(key, value) VALUES('format_version', ?)");
        set->bind(1, int64_t(kFormatVersion));
        set->run();
        auto root = writer_->cached(
            "INSERT OR IGNORE INTO dirs(name, mode, uid, gid, mtime_ns, ctime_ns) VALUES('', ?, ?, ?, ?, ?)");
        int64_t now = now_ns();
        root->bind(1, int64_t(S_IFDIR | 0755)).bind(2, int64_t(getuid())).bind(3, int64_t(getgid()));
        root->bind(4, now).bind(5, now).run();
      }
      writer_->exec("COMMIT");
    } catch (...) {
      sqlite3_exec(writer_->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  // Whether blobs has format 1's UNIQUE(sha256) (and so no need of
  // blobs_by_sha).
  bool has_unique_sha_index() {
    auto s = writer_->cached(
        "SELECT 1 FROM sqlite_master WHERE type='index' AND tbl_name='blobs' AND name LIKE 'sqlite_autoindex_blobs_%'");
    return s->step();
  }

  // meta.dict_set names the dictionaries new blobs choose from (ids,
  // comma-separated, in the order DictionarySet::choose() takes them: the
  // groups' from the largest group, then the general one); a store written
  // before there was more than one has meta.current_dict alone.
  void load_dictionary_set() {
    std::vector<int64_t> ids;
    {
      auto s = writer_->cached("SELECT value FROM meta WHERE key='dict_set'");
      if (s->step()) ids = parse_ids(s->text(0));
    }
    if (ids.empty()) {
      auto s = writer_->cached("SELECT value FROM meta WHERE key='current_dict'");
      if (s->step()) ids.push_back(s->int64(0));
    }
    std::vector<std::shared_ptr<const Dictionary>> dictionaries;
    for (int64_t id : ids) {
      auto data = read_dictionary(*writer_, id);
      if (!data) continue;  // fsck reports it
      dictionaries.push_back(make_dictionary(id, std::move(*data)));
    }
    std::lock_guard lock(current_dict_mutex_);
    dict_set_ = std::make_shared<const DictionarySet>(std::move(dictionaries));
  }

  static std::vector<int64_t> parse_ids(std::string_view text) {
    std::vector<int64_t> ids;
    int64_t value = 0;
    bool digits = false;
    for (char c : text) {
      if (c >= '0' && c <= '9') {
        value = value * 10 + (c - '0');
        digits = true;
      } else {
        if (digits) ids.push_back(value);
        value = 0;
        digits = false;
      }
    }
    if (digits) ids.push_back(value);
    return ids;
  }

  static std::shared_ptr<const Dictionary> make_dictionary(int64_t id, std::string data) {
    auto d = std::make_shared<Dictionary>();
    d->id = id;
    d->data = std::move(data);
    d->fingerprint.add(d->data);
    return d;
  }

  // Decoded blobs for training: the small ones (typical documents) in the
  // order their items came (blob ids are not: see packing_order()), every
  // `step`-th of them, until `max_bytes`.
  std::vector<std::string> training_samples(int64_t step, size_t max_bytes) {
    std::vector<std::string> samples;
    size_t sampled_bytes = 0;
    Stmt s(writer_->handle(),
           "SELECT b.data, b.raw_size, b.codec, b.dict_id FROM (SELECT blob, min(ino) AS first FROM chunks GROUP BY "
           "blob) f JOIN blobs b ON b.id = f.blob WHERE b.raw_size <= 8192 ORDER BY f.first, b.id");
    int64_t position = 0;
    while (sampled_bytes < max_bytes && s.step()) {
      if (++position % step != 0) continue;
      BlobRow row;
      row.data = std::string(s.blob(0));
      row.raw_size = uint64_t(s.int64(1));
      row.codec = int(s.int64(2));
      row.dict_id = s.is_null(3) ? 0 : s.int64(3);
      if (auto bytes = decode(*writer_, row, nullptr)) {
        sampled_bytes += bytes->size();
        samples.push_back(std::move(*bytes));
      }
    }
    return samples;
  }

  // Once the store holds enough items to learn from, dictionaries are
  // trained from them: a general one from a sample spread over all, and one
  // for each large enough group of alike documents (same language, same
  // site...). Every blob written after that is compressed with the one that
  // fits it best, and so are the blobs written before (see
  // recompress_older_blobs()). Trained after 2,000 items, and once more
  // after 20,000, from ten times the samples: on the benchmark corpus that
  // takes the blobs of 100k items from 88.7 to about 85.6 MB. A store whose
  // dictionaries came from an older build (no meta.dict_trained_blobs)
  // keeps them: training again would compress every blob again at once.
  void maybe_train_dictionary(size_t changes) {
    const int64_t kTrainAfterItems = options_.train_dictionary_after,
                  kTrainAgainAfterItems = options_.train_dictionary_again_after;
    constexpr size_t kMaxGroupDictionaries = 127;
    if (options_.read_only || !options_.train_dictionary || dictionaries_final_) return;
    const bool again = !dictionaries().empty();
    changes_since_check_ += changes;
    if (changes_since_check_ < 256) return;
    changes_since_check_ = 0;
    if (again) {
      auto trained = writer_->cached("SELECT value FROM meta WHERE key='dict_trained_blobs'");
      const bool once = trained->step() && trained->int64(0) < kTrainAgainAfterItems;
      trained->reset();
      if (!once) {
        dictionaries_final_ = true;
        return;
      }
      // Cheap first: the items, counted from their smallest index.
      auto items = writer_->cached("SELECT count(*) FROM items");
      items->step();
      const int64_t n = items->int64(0);
      items->reset();
      if (n < kTrainAgainAfterItems) return;
    }
    auto count = writer_->cached("SELECT count(*) FROM blobs WHERE raw_size <= 65536");
    count->step();
    int64_t small_blobs = count->int64(0);
    count->reset();
    if (small_blobs < (again ? kTrainAgainAfterItems : kTrainAfterItems)) return;
    // The general one: samples spread evenly over what is stored.
    std::string general = train_dictionary(training_samples(std::max<int64_t>(1, small_blobs / 200), 64u << 10));
    if (general.size() < 1024) return;
    std::vector<std::string> groups =
        train_group_dictionaries(training_samples(1, 16u << 20), general, kMaxGroupDictionaries);
    writer_->exec("BEGIN IMMEDIATE");
    try {
      // Stored compressed: a few dozen of them would otherwise take a
      // megabyte, much of a small store.
      Compressor compressor(9);
      std::string stored;
      auto insert = writer_->cached(
          "INSERT INTO dicts(created_ns, data, codec, raw_size) VALUES(?, ?, ?, ?) RETURNING id");
      auto add = [&](const std::string& data) {
        Codec codec = compressor.compress(data, std::string_view(), stored);
        std::string_view kept = codec == Codec::kZlib ? std::string_view(stored) : std::string_view(data);
        insert->bind(1, now_ns()).bind_blob(2, kept.data(), kept.size());
        insert->bind(3, int64_t(codec)).bind(4, int64_t(data.size()));
        insert->step();
        int64_t id = insert->int64(0);
        insert->reset();
        return make_dictionary(id, data);
      };
      std::vector<std::shared_ptr<const Dictionary>> dictionaries;
      for (const std::string& data : groups)
        if (data.size() >= 1024 && data != general) dictionaries.push_back(add(data));
      // The general one last: the newest, which meta.current_dict names for
      // a build that knows only one, and the last choice on a tie.
      dictionaries.push_back(add(general));
      std::string ids;
      for (const auto& d : dictionaries) ids += (ids.empty() ? "" : ",") + std::to_string(d->id);
      auto set = std::make_shared<const DictionarySet>(std::move(dictionaries));
      auto current = writer_->cached("INSERT OR REPLACE INTO meta(key, value) VALUES('current_dict', ?)");
      current->bind(1, set->dictionaries().back()->id).run();
      auto named = writer_->cached("INSERT OR REPLACE INTO meta(key, value) VALUES('dict_set', ?)");
      named->bind(1, ids).run();
      auto trained = writer_->cached("INSERT OR REPLACE INTO meta(key, value) VALUES('dict_trained_blobs', ?)");
      trained->bind(1, small_blobs).run();
      recompress_older_blobs(*set);
      if (again) drop_unused_dictionaries(*set);
      writer_->exec("COMMIT");
      {
        std::lock_guard lock(current_dict_mutex_);
        dict_set_ = std::move(set);
      }
      // Training took tens of megabytes for a moment (samples, groups): give
      // them back, or they stay in the daemon's resident size for good.
      malloc_trim(0);
    } catch (...) {
      sqlite3_exec(writer_->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  // The dictionaries no blob needs any more, once the blobs that used them
  // are compressed again with `set`'s.
  void drop_unused_dictionaries(const DictionarySet& set) {
    std::unordered_set<int64_t> needed;
    for (const auto& d : set.dictionaries()) needed.insert(d->id);
    {
      Stmt s(writer_->handle(), "SELECT DISTINCT dict_id FROM blobs WHERE dict_id IS NOT NULL");
      while (s.step()) needed.insert(s.int64(0));
    }
    std::vector<int64_t> unused;
    {
      Stmt s(writer_->handle(), "SELECT id FROM dicts");
      while (s.step())
        if (!needed.count(s.int64(0))) unused.push_back(s.int64(0));
    }
    auto remove = writer_->cached("DELETE FROM dicts WHERE id=?");
    for (int64_t id : unused) remove->bind(1, id).run();
  }

  // The blobs stored before the newest dictionaries are compressed again
  // with them when that makes them smaller. Each goes into a new row (so the
  // pages the old rows leave are free for the rows to come, not holes in
  // pages nothing is appended to again; in packing_order()) and its chunks
  // are pointed at it.
  // Blobs of items of more than one chunk are left as they are: an open
  // reader of such an item may still hold their ids.
  void recompress_older_blobs(const DictionarySet& set) {
    Db& db = *writer_;
    std::vector<int64_t> ids;
    {
      Stmt s(db.handle(),
             "SELECT id FROM blobs WHERE (dict_id IS NULL OR dict_id < ?) AND id NOT IN (SELECT blob FROM chunks "
             "WHERE ino IN (SELECT ino FROM chunks WHERE seq > 0)) ORDER BY id");
      int64_t oldest = INT64_MAX;
      for (const auto& d : set.dictionaries()) oldest = std::min(oldest, d->id);
      s.bind(1, oldest);
      while (s.step()) ids.push_back(s.int64(0));
    }
    struct Again {
      int64_t id;
      std::string sha256;
      int64_t raw_size, dict_id, refs;
      std::string stored;
    };
    std::vector<Again> again;
    // Read and decoded here (the writer's connection), compressed on two
    // threads: compressing is most of the work, and every write waits for it.
    // In batches, so that only a few megabytes of blobs are held at once.
    struct Read {
      int64_t id, old_dict_id, refs;
      size_t old_stored_size;
      std::string sha256, raw;
      std::string stored;
      int64_t dict_id = 0;
      Codec codec = Codec::kRaw;
    };
    constexpr size_t kRecompressBatchBytes = 4u << 20;
    Compressor helper_compressor(6);
    std::vector<Read> batch;
    auto compress_batch = [&] {
      if (batch.empty()) return;
      Compressor* compressors[] = {&compressor_, &helper_compressor};
      run_on_threads(2, [&](size_t t) {
        for (size_t k = t; k < batch.size(); k += 2)
          batch[k].codec = compress_chunk(*compressors[t], set, batch[k].raw, batch[k].stored, batch[k].dict_id);
      });
      for (Read& r : batch) {
        // One that an older dictionary compresses better moves too, a little
        // larger, so that the older dictionary can go.
        if (r.codec != Codec::kZlib || (r.stored.size() >= r.old_stored_size && r.old_dict_id == 0)) continue;
        // A copy: `stored` has room for the raw bytes, three times its size.
        again.push_back({r.id, std::move(r.sha256), int64_t(r.raw.size()), r.dict_id, r.refs, std::string(r.stored)});
      }
      batch.clear();
    };
    size_t batch_bytes = 0;
    for (int64_t id : ids) {
      auto s = db.cached("SELECT data, raw_size, codec, sha256, refs, dict_id FROM blobs WHERE id=?");
      s->bind(1, id);
      if (!s->step()) continue;
      BlobRow row;
      row.data = std::string(s->blob(0));
      row.raw_size = uint64_t(s->int64(1));
      row.codec = int(s->int64(2));
      row.dict_id = s->is_null(5) ? 0 : s->int64(5);
      std::string sha256(s->blob(3));
      int64_t refs = s->int64(4);
      s->reset();
      auto raw = decode(db, row, nullptr);
      if (!raw) continue;  // damaged: fsck reports it; keep it as it is
      batch_bytes += raw->size();
      batch.push_back({id, row.dict_id, refs, row.data.size(), std::move(sha256), std::move(*raw)});
      if (batch_bytes >= kRecompressBatchBytes) {
        compress_batch();
        batch_bytes = 0;
      }
    }
    compress_batch();
    std::vector<size_t> payloads;
    for (const Again& a : again) {
      auto remove = db.cached("DELETE FROM blobs WHERE id=?");
      remove->bind(1, a.id).run();
      payloads.push_back(
          blob_payload(a.stored.size(), a.sha256.size(), a.raw_size, int64_t(Codec::kZlib), a.dict_id, a.refs));
    }
    std::unordered_map<int64_t, int64_t> moved;
    for (size_t i : packing_order(payloads, page_size_, max_blob_id_after(db, again.size()))) {
      const Again& a = again[i];
      auto insert = db.cached(
          "INSERT INTO blobs(sha256, raw_size, stored_size, codec, dict_id, refs, data) VALUES(?, ?, ?, ?, ?, ?, ?) "
          "RETURNING id");
      insert->bind_blob(1, a.sha256.data(), a.sha256.size()).bind(2, a.raw_size);
      insert->bind(3, int64_t(a.stored.size())).bind(4, int64_t(Codec::kZlib)).bind(6, a.refs);
      insert->bind_blob(7, a.stored.data(), a.stored.size());
      if (a.dict_id) insert->bind(5, a.dict_id);
      else insert->bind_null(5);
      if (!insert->step()) throw StoreError(EIO, "blob insert returned no id");
      moved[a.id] = insert->int64(0);
    }
    if (moved.empty()) return;
    std::vector<std::array<int64_t, 3>> repoint;  // ino, seq, new blob
    {
      Stmt s(db.handle(), "SELECT ino, seq, blob FROM chunks");
      while (s.step())
        if (auto it = moved.find(s.int64(2)); it != moved.end())
          repoint.push_back({s.int64(0), s.int64(1), it->second});
    }
    auto update = db.cached("UPDATE chunks SET blob=? WHERE ino=? AND seq=?");
    for (const auto& [ino, seq, blob] : repoint) update->bind(1, blob).bind(2, ino).bind(3, seq).run();
  }

  void check_version() {
    auto s = writer_->cached("SELECT value FROM meta WHERE key='format_version'");
    if (!s->step()) throw StoreError(EINVAL, dir_.string() + " is not an itemfs store (no format_version)");
    int64_t version = s->int64(0);
    // A read-only store of format 1 to 3 is read as it is (see init_schema()),
    // with no change feed.
    has_feed_ = version == kFormatVersion;
    if (version != kFormatVersion && !(version >= 1 && version <= 3 && options_.read_only))
      throw StoreError(EINVAL, "store format " + std::to_string(version) + " is not supported (this build reads " +
                                   std::to_string(kFormatVersion) + ")");
  }

  uint64_t reserve_bytes_ = 0;
  mutable std::atomic<uint64_t> staging_allowance_ = 0;  // see check_staging_room()
  std::atomic<bool> reserve_held_ = false;  // changed under write_mutex_ (or construction)
  fs::path dir_;
  Options options_;
  std::vector<CommitListener> listeners_;
  bool has_feed_ = true;  // false: a read-only store of format 1 to 3
  std::mutex write_mutex_;
  std::unique_ptr<Db> writer_;
  Compressor compressor_;
  static constexpr size_t kIdleReaders = 6;
  std::mutex pool_mutex_;
  std::vector<std::unique_ptr<Db>> pool_;
  std::mutex dict_mutex_;
  std::unordered_map<int64_t, std::shared_ptr<const std::string>> dicts_;  // under dict_mutex_
  // The current dictionaries: changed by the writer (under write_mutex_ and
  // current_dict_mutex_), read by the writer or under current_dict_mutex_.
  mutable std::mutex current_dict_mutex_;
  std::shared_ptr<const DictionarySet> dict_set_ = std::make_shared<const DictionarySet>();
  size_t changes_since_check_ = 0;
  bool dictionaries_final_ = false;  // no training to come (writer only)
  bool dicts_coded_ = true;  // dicts has codec and raw_size (not in format 1)
  bool elide_blob_hashes_ = false;  // a one-chunk item's new blob is stored without its hash
  std::atomic<uint64_t> damaged_reads_{0};
  size_t page_size_ = 4096;  // of store.db
  std::optional<int64_t> seen_data_version_;  // under write_mutex_
  HelperThread preview_helper_;  // last: its thread ends before the rest goes
};

// ---- WriteBatch ----------------------------------------------------------

Status WriteBatchImpl::guarded(const std::function<Status()>& fn) {
  db_.cached("SAVEPOINT call")->run();
  try {
    Status status = fn();
    if (status.ok()) {
      restore_blob_hashes();
    } else {
      released_.clear();
      checked_blobs_.clear();  // a blob rewritten in this call is as it was
      db_.cached("ROLLBACK TO call")->run();
    }
    db_.cached("RELEASE call")->run();
    return status;
  } catch (...) {
    released_.clear();
    checked_blobs_.clear();
    sqlite3_exec(db_.handle(), "ROLLBACK TO call; RELEASE call", nullptr, nullptr, nullptr);
    throw;
  }
}

std::optional<ItemInfo> WriteBatchImpl::find(std::string_view id) { return StoreImpl::find_item(db_, id); }

int64_t WriteBatchImpl::reuse_blob(const Sha256& digest, bool whole) {
  {
    auto s = db_.cached(
        "UPDATE blobs SET refs=refs+1 WHERE substr(sha256, 1, 8) = substr(?1, 1, 8) AND sha256 = ?1 AND "
        "length(sha256) = 32 RETURNING id");
    s->bind_blob(1, digest.data(), digest.size());
    if (s->step()) return s->int64(0);
  }
  if (!store_.elide_blob_hashes()) return 0;
  // A blob stored without its hash: the one chunk of an item of that hash.
  // Shared by a chunk of a larger item, it gets its hash back, since that
  // item's readers check each chunk by its blob's hash (format 3 allows a
  // one-chunk item's blob to have one).
  auto s = db_.cached(
      "UPDATE blobs SET refs=refs+1, sha256 = CASE WHEN ?3 THEN sha256 ELSE ?1 END WHERE length(sha256) = 0 AND "
      "id = (SELECT c.blob FROM items i JOIN chunks c ON c.ino = i.ino AND c.seq = 0 WHERE substr(i.sha256, 1, 4) "
      "= substr(?1, 1, 4) AND i.sha256 = ?1 AND i.size <= ?2 LIMIT 1) RETURNING id");
  s->bind_blob(1, digest.data(), digest.size()).bind(2, int64_t(kChunkSize)).bind(3, int64_t(whole ? 1 : 0));
  if (s->step()) return s->int64(0);
  return 0;
}

// Rewrites blob `blob` from `raw`, the bytes it must hold (its hash column
// too, unless it is stored without one).
void WriteBatchImpl::rewrite_blob(int64_t blob, std::string_view raw, const Sha256& digest) {
  int64_t dict_id = 0;
  Codec codec = StoreImpl::compress_chunk(store_.compressor(), store_.dictionaries(), raw, compressed_, dict_id);
  std::string_view stored = codec == Codec::kRaw ? raw : std::string_view(compressed_);
  auto u = db_.cached(
      "UPDATE blobs SET raw_size=?1, stored_size=?2, codec=?3, dict_id=?4, data=?5, sha256 = CASE WHEN "
      "length(sha256) = 0 THEN sha256 ELSE ?7 END WHERE id=?6");
  u->bind(1, int64_t(raw.size())).bind(2, int64_t(stored.size())).bind(3, int64_t(codec));
  if (dict_id) u->bind(4, dict_id);
  else u->bind_null(4);
  u->bind_blob(5, stored.data(), stored.size()).bind(6, blob);
  u->bind_blob(7, digest.data(), digest.size()).run();
}

// Whether blob `blob` fails its check for content `raw` (a probe, not
// counted as a damaged read).
bool WriteBatchImpl::blob_damaged(int64_t blob, std::string_view raw, const Sha256& digest) {
  std::string held;
  ReadChunk chunk{blob, raw.size(), digest, true};
  return store_.load_chunk(db_, chunk, "", 0, 1, held, nullptr, false) == ChunkRead::kDamaged;
}

// A blob found for new content is checked before it is shared: damaged, it
// is rewritten from the content at hand, so writing good bytes over a
// damaged item (or another item of the same content) heals it instead of
// sharing the damage.
int64_t WriteBatchImpl::reuse_checked(const Sha256& digest, std::string_view raw, bool whole) {
  int64_t id = reuse_blob(digest, whole);
  if (id && checked_blobs_.insert(id).second && blob_damaged(id, raw, digest)) rewrite_blob(id, raw, digest);
  return id;
}

int64_t WriteBatchImpl::store_chunk(std::string_view raw, bool whole) {
  Sha256 digest = sha256_of(raw);
  if (int64_t id = reuse_checked(digest, raw, whole)) return id;
  int64_t dict_id = 0;
  Codec codec = StoreImpl::compress_chunk(store_.compressor(), store_.dictionaries(), raw, compressed_, dict_id);
  std::string_view stored = codec == Codec::kRaw ? raw : std::string_view(compressed_);
  note_new_blob();
  auto s = db_.cached(
      "INSERT INTO blobs(sha256, raw_size, stored_size, codec, dict_id, refs, data) VALUES(?, ?, ?, ?, ?, 1, ?) "
      "RETURNING id");
  bool elide = whole && store_.elide_blob_hashes();
  s->bind_blob(1, digest.data(), elide ? 0 : digest.size()).bind(2, int64_t(raw.size()));
  s->bind(3, int64_t(stored.size()));
  s->bind(4, int64_t(codec)).bind_blob(6, stored.data(), stored.size());
  if (dict_id) s->bind(5, dict_id);
  else s->bind_null(5);
  if (!s->step()) throw StoreError(EIO, "blob insert returned no id");
  return s->int64(0);
}

// store_chunk() for a chunk compressed ahead.
int64_t WriteBatchImpl::store_prepared_chunk(const PreparedItem::Parts::Chunk& chunk, std::string_view raw,
                                             bool whole) {
  if (int64_t id = reuse_checked(chunk.sha256, raw, whole)) return id;
  std::string_view stored = chunk.codec == Codec::kRaw ? raw : std::string_view(chunk.stored);
  note_new_blob();
  auto s = db_.cached(
      "INSERT INTO blobs(sha256, raw_size, stored_size, codec, dict_id, refs, data) VALUES(?, ?, ?, ?, ?, 1, ?) "
      "RETURNING id");
  bool elide = whole && store_.elide_blob_hashes();
  s->bind_blob(1, chunk.sha256.data(), elide ? 0 : chunk.sha256.size()).bind(2, int64_t(raw.size()));
  s->bind(3, int64_t(stored.size())).bind(4, int64_t(chunk.codec)).bind_blob(6, stored.data(), stored.size());
  if (chunk.codec == Codec::kZlib && chunk.dict_id) s->bind(5, chunk.dict_id);
  else s->bind_null(5);
  if (!s->step()) throw StoreError(EIO, "blob insert returned no id");
  return s->int64(0);
}

void WriteBatchImpl::note_new_blob() {
  if (first_new_blob_) return;
  // Blob ids only grow (AUTOINCREMENT): every blob of this batch is above
  // the largest there is before its first.
  auto s = db_.cached("SELECT coalesce(max(id), 0) + 1 FROM blobs");
  s->step();
  first_new_blob_ = s->int64(0);
}

// A blob stored without its hash keeps it in the items whose one chunk it
// is. Once the last of them is gone (removed, renamed over, given other
// content), a blob that other items still use as one of their chunks gets
// its hash back, so that it can be found and checked by it. Done at the end
// of the call that released it, inside its savepoint: a later call of the
// same batch storing that content must find the blob by its hash, since no
// one-chunk item leads to it any more. (A one-chunk item that then shares
// it leaves it its hash: format 3 allows both.)
void WriteBatchImpl::restore_blob_hashes() {
  for (const auto& [blob, digest] : released_) {
    auto s = db_.cached(
        "UPDATE blobs SET sha256 = ?1 WHERE id = ?2 AND length(sha256) = 0 AND NOT EXISTS (SELECT 1 FROM items "
        "WHERE substr(sha256, 1, 4) = substr(?1, 1, 4) AND sha256 = ?1 AND size <= ?3)");
    s->bind_blob(1, digest.data(), digest.size()).bind(2, blob).bind(3, int64_t(kChunkSize)).run();
  }
  released_.clear();
}

void WriteBatchImpl::pack_new_blobs() {
  if (!first_new_blob_ || new_chunks_.size() < 2) return;
  struct Row {
    int64_t id;
    std::string sha256;
    int64_t raw_size, codec, dict_id, refs;
    std::string data;
  };
  std::vector<Row> rows;
  {
    Stmt s(db_.handle(),
           "SELECT id, sha256, raw_size, codec, dict_id, refs, data FROM blobs WHERE id >= ? ORDER BY id");
    s.bind(1, first_new_blob_);
    while (s.step())
      rows.push_back({s.int64(0), std::string(s.blob(1)), s.int64(2), s.int64(3), s.is_null(4) ? 0 : s.int64(4),
                      s.int64(5), std::string(s.blob(6))});
  }
  if (rows.size() < 2) return;
  std::vector<size_t> payloads;
  for (const Row& row : rows)
    payloads.push_back(
        blob_payload(row.data.size(), row.sha256.size(), row.raw_size, row.codec, row.dict_id, row.refs));
  std::vector<size_t> order = packing_order(payloads, store_.page_size(), max_blob_id_after(db_, rows.size()));
  bool in_order = true;
  for (size_t i = 0; i < order.size() && in_order; ++i) in_order = order[i] == i;
  if (in_order) return;
  {
    auto s = db_.cached("DELETE FROM blobs WHERE id >= ?");
    s->bind(1, first_new_blob_).run();
  }
  std::unordered_map<int64_t, int64_t> moved;
  auto insert = db_.cached(
      "INSERT INTO blobs(sha256, raw_size, stored_size, codec, dict_id, refs, data) VALUES(?, ?, ?, ?, ?, ?, ?) "
      "RETURNING id");
  for (size_t i : order) {
    const Row& row = rows[i];
    insert->bind_blob(1, row.sha256.data(), row.sha256.size()).bind(2, row.raw_size);
    insert->bind(3, int64_t(row.data.size())).bind(4, row.codec).bind(6, row.refs);
    insert->bind_blob(7, row.data.data(), row.data.size());
    if (row.dict_id) insert->bind(5, row.dict_id);
    else insert->bind_null(5);
    if (!insert->step()) throw StoreError(EIO, "blob insert returned no id");
    moved[row.id] = insert->int64(0);
    insert->reset();
  }
  // The chunk rows this batch wrote that name them (some may be gone again).
  std::sort(new_chunks_.begin(), new_chunks_.end());
  new_chunks_.erase(std::unique(new_chunks_.begin(), new_chunks_.end()), new_chunks_.end());
  for (const auto& [ino, seq] : new_chunks_) {
    auto find = db_.cached("SELECT blob FROM chunks WHERE ino=? AND seq=?");
    find->bind(1, ino).bind(2, seq);
    if (!find->step()) continue;
    auto it = moved.find(find->int64(0));
    find->reset();
    if (it == moved.end()) continue;
    auto update = db_.cached("UPDATE chunks SET blob=? WHERE ino=? AND seq=?");
    update->bind(1, it->second).bind(2, ino).bind(3, seq).run();
  }
}

void WriteBatchImpl::release_chunks(const ItemInfo& item) {
  const int64_t ino = item.ino;
  // A one-chunk item's blob (its only chunk, so the one blob this returns)
  // may have been stored without its hash: noted for restore_blob_hashes().
  // Not when the row's sha256 is not 32 bytes (fill_item() zeroes it): a
  // damaged row has no hash to give back.
  const bool one_chunk = store_.elide_blob_hashes() && item.size <= kChunkSize && item.sha256 != Sha256{};
  {
    auto s = db_.cached("UPDATE blobs SET refs=refs-1 WHERE id IN (SELECT blob FROM chunks WHERE ino=?) RETURNING id");
    s->bind(1, ino);
    while (s->step())
      if (one_chunk) released_.emplace_back(s->int64(0), item.sha256);
  }
  // A blob used twice by one item loses one reference per use.
  {
    auto s = db_.cached(
        "UPDATE blobs SET refs=refs-(SELECT count(*)-1 FROM chunks WHERE chunks.ino=?1 AND chunks.blob=blobs.id) "
        "WHERE id IN (SELECT blob FROM chunks WHERE ino=?1 GROUP BY blob HAVING count(*)>1)");
    s->bind(1, ino).run();
  }
  {
    auto s = db_.cached("DELETE FROM blobs WHERE refs<=0 AND id IN (SELECT blob FROM chunks WHERE ino=?)");
    s->bind(1, ino).run();
  }
  auto s = db_.cached("DELETE FROM chunks WHERE ino=?");
  s->bind(1, ino).run();
}

void WriteBatchImpl::ensure_dir(const std::string& shard, const Attrs& like, int64_t now) {
  auto s = db_.cached(
      "INSERT OR IGNORE INTO dirs(name, mode, uid, gid, mtime_ns, ctime_ns) VALUES(?, ?, ?, ?, ?, ?)");
  s->bind(1, shard).bind(2, int64_t(S_IFDIR | 0755)).bind(3, int64_t(like.uid)).bind(4, int64_t(like.gid));
  s->bind(5, now).bind(6, now).run();
}

void WriteBatchImpl::touch_dir(const std::string& shard, int64_t now) {
  auto s = db_.cached("UPDATE dirs SET mtime_ns=?1, ctime_ns=?1 WHERE name=?2");
  s->bind(1, now).bind(2, shard).run();
}

Status WriteBatchImpl::put(std::string_view id, std::istream& content, const Attrs& attrs, ItemInfo* stored) {
  stored_ = stored;
  struct Clear {
    ItemInfo*& p;
    ~Clear() { p = nullptr; }
  } clear{stored_};
  if (Status status = check_id(id); !status.ok()) return status;
  content.clear();
  content.seekg(0, std::ios::end);
  auto end = content.tellg();
  content.seekg(0, std::ios::beg);
  if (end < 0 || !content) return Status::error(EIO, "cannot read the content to store");
  uint64_t size = uint64_t(end);
  if (size > store_.options().max_item_size)
    return Status::error(EFBIG, "item is " + std::to_string(size) + " bytes; the limit is " +
                                    std::to_string(store_.options().max_item_size));
  if (Status room = store_.check_room(size); !room.ok()) return room;
  if (size <= kChunkSize) {
    std::string bytes(size, '\0');
    if (!content.read(bytes.data(), std::streamsize(size))) return Status::error(EIO, "short read of the content");
    return put_bytes(id, bytes, attrs);
  }
  return put_stream(id, content, size, attrs);
}

Status WriteBatchImpl::put_bytes(std::string_view id, std::string_view bytes, const Attrs& attrs) {
  if (Status status = validate_json_bytes(bytes); !status.ok()) return status;
  return guarded([&] {
    std::vector<ChunkRef> chunks{{store_chunk(bytes, true), bytes.size()}};
    return finish_put(id, chunks, sha256_of(bytes), bytes.size(), attrs);
  });
}

Status WriteBatchImpl::put_prepared(PreparedItem& item) {
  auto& p = item.parts();
  if (!p.early.ok()) return p.early;
  if (Status room = store_.check_room(p.bytes.size()); !room.ok()) return room;
  if (!p.invalid.ok()) return p.invalid;
  if (p.skip_unchanged) {
    auto existing = find(p.id);
    p.replaced = existing.has_value();
    const Attrs& a = existing ? existing->attrs : p.attrs;
    if (existing && existing->size == p.bytes.size() && existing->sha256 == p.sha256 && a.mode == p.attrs.mode &&
        a.uid == p.attrs.uid && a.gid == p.attrs.gid && (p.attrs.mtime_ns == kMtimeNow || a.mtime_ns == p.attrs.mtime_ns))
      return Status::error(EALREADY, "unchanged");
  }
  return guarded([&] {
    std::vector<ChunkRef> chunks;
    for (const auto& chunk : p.chunks) {
      std::string_view raw = std::string_view(p.bytes).substr(chunk.offset, chunk.size);
      chunks.push_back({store_prepared_chunk(chunk, raw, p.chunks.size() == 1), raw.size()});
    }
    return finish_put(p.id, chunks, p.sha256, p.bytes.size(), p.attrs);
  });
}

Status WriteBatchImpl::put_stream(std::string_view id, std::istream& content, uint64_t size, const Attrs& attrs) {
  if (size == 0) return Status::error(EINVAL, "invalid JSON: the file is empty");
  if (Status status = validate_json(content); !status.ok()) return status;
  return guarded([&] {
    content.clear();
    content.seekg(0);
    Sha256Hasher whole;
    std::vector<ChunkRef> chunks;
    std::string buffer(kChunkSize, '\0');
    uint64_t total = 0;
    while (total < size) {
      auto want = std::streamsize(std::min<uint64_t>(kChunkSize, size - total));
      content.read(buffer.data(), want);
      if (content.gcount() != want) throw StoreError(EIO, "the content changed while it was stored");
      std::string_view piece(buffer.data(), size_t(want));
      whole.update(piece);
      chunks.push_back({store_chunk(piece, false), piece.size()});
      total += uint64_t(want);
    }
    return finish_put(id, chunks, whole.finish(), size, attrs);
  });
}

Status WriteBatchImpl::finish_put(std::string_view id, const std::vector<ChunkRef>& chunks, const Sha256& digest,
                                  uint64_t size, const Attrs& attrs) {
  int64_t now = now_ns();
  int64_t mtime = attrs.mtime_ns == kMtimeNow ? now : attrs.mtime_ns;
  std::string shard = shard_of(id);
  auto existing = find(id);
  int64_t ino;
  if (existing) {
    ino = existing->ino;
    if (existing->sha256 != digest) feed_.keep_old(*existing);
    release_chunks(*existing);
    auto s = db_.cached(
        "UPDATE items SET size=?, sha256=?, mode=?, uid=?, gid=?, mtime_ns=?, ctime_ns=? WHERE ino=?");
    s->bind(1, int64_t(size)).bind_blob(2, digest.data(), digest.size()).bind(3, int64_t(attrs.mode));
    s->bind(4, int64_t(attrs.uid)).bind(5, int64_t(attrs.gid)).bind(6, mtime).bind(7, now).bind(8, ino).run();
  } else {
    ensure_dir(shard, attrs, now);
    auto s = db_.cached(
        "INSERT INTO items(id, shard, size, sha256, mode, uid, gid, mtime_ns, ctime_ns) "
        "VALUES(?,?,?,?,?,?,?,?,?) RETURNING ino");
    s->bind(1, id).bind(2, shard).bind(3, int64_t(size)).bind_blob(4, digest.data(), digest.size());
    s->bind(5, int64_t(attrs.mode)).bind(6, int64_t(attrs.uid)).bind(7, int64_t(attrs.gid)).bind(8, mtime);
    s->bind(9, now);
    if (!s->step()) throw StoreError(EIO, "item insert returned no ino");
    ino = s->int64(0);
    s->reset();
    touch_dir(shard, now);
  }
  {
    auto s = db_.cached("INSERT INTO chunks(ino, seq, blob) VALUES(?, ?, ?)");
    for (size_t i = 0; i < chunks.size(); ++i) {
      s->bind(1, ino).bind(2, int64_t(i)).bind(3, chunks[i].blob).run();
      if (first_new_blob_ && chunks[i].blob >= first_new_blob_) new_chunks_.emplace_back(ino, int64_t(i));
    }
  }
  ItemInfo info;
  info.ino = ino;
  info.id = std::string(id);
  info.size = size;
  info.attrs = attrs;
  info.attrs.mtime_ns = mtime;
  info.ctime_ns = now;
  info.sha256 = digest;
  feed_.record(ChangeKind::kPut, ino, id);
  if (stored_) *stored_ = info;
  changed_.emplace_back(id);
  return Status::success();
}

Status WriteBatchImpl::remove(std::string_view id) {
  return guarded([&] {
    auto existing = find(id);
    if (!existing) return Status::error(ENOENT, "no item " + std::string(id));
    feed_.keep_old(*existing);
    release_chunks(*existing);
    auto s = db_.cached("DELETE FROM items WHERE ino=?");
    s->bind(1, existing->ino).run();
    feed_.record(ChangeKind::kRemove, existing->ino, id);
    touch_dir(shard_of(id), now_ns());
    changed_.emplace_back(id);
    return Status::success();
  });
}

Status WriteBatchImpl::rename(std::string_view from, std::string_view to) {
  if (Status status = check_id(to); !status.ok()) return status;
  return guarded([&] {
    auto source = find(from);
    if (!source) return Status::error(ENOENT, "no item " + std::string(from));
    if (from == to) return Status::success();
    if (auto target = find(to)) {
      feed_.keep_old(*target);
      release_chunks(*target);
      auto s = db_.cached("DELETE FROM items WHERE ino=?");
      s->bind(1, target->ino).run();
      feed_.record(ChangeKind::kRemove, target->ino, to);
    }
    int64_t now = now_ns();
    std::string shard = shard_of(to);
    ensure_dir(shard, source->attrs, now);
    auto s = db_.cached("UPDATE items SET id=?, shard=?, ctime_ns=? WHERE ino=?");
    s->bind(1, to).bind(2, shard).bind(3, now).bind(4, source->ino).run();
    feed_.record(ChangeKind::kRename, source->ino, to, from);
    touch_dir(shard_of(from), now);
    touch_dir(shard, now);
    changed_.emplace_back(from);
    changed_.emplace_back(to);
    return Status::success();
  });
}

Status WriteBatchImpl::set_attrs(std::string_view id, const Attrs& attrs) {
  return guarded([&] {
    auto s = db_.cached("UPDATE items SET mode=?, uid=?, gid=?, mtime_ns=?, ctime_ns=? WHERE id=? RETURNING ino");
    s->bind(1, int64_t(attrs.mode)).bind(2, int64_t(attrs.uid)).bind(3, int64_t(attrs.gid));
    int64_t now = now_ns();
    s->bind(4, attrs.mtime_ns == kMtimeNow ? now : attrs.mtime_ns).bind(5, now).bind(6, id);
    if (!s->step()) return Status::error(ENOENT, "no item " + std::string(id));
    const int64_t ino = s->int64(0);
    s->reset();
    feed_.record(ChangeKind::kAttrs, ino, id);
    return Status::success();
  });
}

bool valid_shard_name(std::string_view shard) { return !shard.empty() && shard_of(shard) == shard && check_id(shard).ok(); }

Status WriteBatchImpl::make_dir(std::string_view shard, const Attrs& attrs) {
  if (!valid_shard_name(shard))
    return Status::error(EINVAL, "a directory under items/ is a shard: the first two characters of its ids");
  return guarded([&] {
    int64_t now = now_ns();
    auto s = db_.cached("INSERT OR IGNORE INTO dirs(name, mode, uid, gid, mtime_ns, ctime_ns) VALUES(?,?,?,?,?,?)");
    s->bind(1, shard).bind(2, int64_t(attrs.mode)).bind(3, int64_t(attrs.uid)).bind(4, int64_t(attrs.gid));
    s->bind(5, attrs.mtime_ns == kMtimeNow ? now : attrs.mtime_ns).bind(6, now).run();
    if (sqlite3_changes(db_.handle()) == 0) return Status::error(EEXIST, "shard exists");
    touch_dir("", now);
    return Status::success();
  });
}

Status WriteBatchImpl::remove_dir(std::string_view shard) {
  if (shard.empty()) return Status::error(EBUSY, "items/ itself cannot be removed");
  return guarded([&] {
    {
      auto used = StoreImpl::shard_items(db_, shard, true);
      if (used->step()) return Status::error(ENOTEMPTY, "shard is not empty");
    }
    auto s = db_.cached("DELETE FROM dirs WHERE name=?");
    s->bind(1, shard).run();
    if (sqlite3_changes(db_.handle()) == 0) return Status::error(ENOENT, "no shard " + std::string(shard));
    touch_dir("", now_ns());
    return Status::success();
  });
}

Status WriteBatchImpl::set_dir_attrs(std::string_view shard, const Attrs& attrs) {
  return guarded([&] {
    auto s = db_.cached("UPDATE dirs SET mode=?, uid=?, gid=?, mtime_ns=?, ctime_ns=? WHERE name=?");
    s->bind(1, int64_t(attrs.mode)).bind(2, int64_t(attrs.uid)).bind(3, int64_t(attrs.gid));
    int64_t now = now_ns();
    s->bind(4, attrs.mtime_ns == kMtimeNow ? now : attrs.mtime_ns).bind(5, now).bind(6, shard).run();
    if (sqlite3_changes(db_.handle()) == 0) return Status::error(ENOENT, "no shard " + std::string(shard));
    return Status::success();
  });
}

// ---- repair -------------------------------------------------------------

Status WriteBatchImpl::repair_blobs(std::string_view bytes, uint64_t* rewritten) {
  if (rewritten) *rewritten = 0;
  if (Status invalid = validate_json_bytes(bytes); !invalid.ok()) return invalid;
  return guarded([&] {
    // Cut as put() cuts: one chunk up to kChunkSize, else kChunkSize pieces.
    const bool whole = bytes.size() <= kChunkSize;
    const Sha256 whole_digest = sha256_of(bytes);
    for (uint64_t offset = 0; offset == 0 || offset < bytes.size(); offset += kChunkSize) {
      std::string_view raw = bytes.substr(size_t(offset), size_t(kChunkSize));
      const Sha256 digest = sha256_of(raw);
      // The blobs that claim this content: by their hash, and (one chunk)
      // those stored without one, by the hash of the items they are.
      std::vector<int64_t> blobs;
      {
        auto s = db_.cached(
            "SELECT id FROM blobs WHERE substr(sha256, 1, 8) = substr(?1, 1, 8) AND sha256 = ?1 AND "
            "length(sha256) = 32");
        s->bind_blob(1, digest.data(), digest.size());
        while (s->step()) blobs.push_back(s->int64(0));
      }
      if (whole) {
        auto s = db_.cached(
            "SELECT DISTINCT c.blob FROM items i JOIN chunks c ON c.ino = i.ino AND c.seq = 0 JOIN blobs b ON "
            "b.id = c.blob WHERE substr(i.sha256, 1, 4) = substr(?1, 1, 4) AND i.sha256 = ?1 AND i.size <= ?2 "
            "AND length(b.sha256) = 0");
        s->bind_blob(1, digest.data(), digest.size()).bind(2, int64_t(kChunkSize));
        while (s->step()) blobs.push_back(s->int64(0));
      }
      // And whatever blob stands at this place in the items of this content,
      // whatever its own hash column says (damage may have reached it).
      {
        auto s = db_.cached(
            "SELECT DISTINCT c.blob FROM items i JOIN chunks c ON c.ino = i.ino AND c.seq = ?3 WHERE "
            "substr(i.sha256, 1, 4) = substr(?1, 1, 4) AND i.sha256 = ?1 AND i.size = ?2");
        s->bind_blob(1, whole_digest.data(), whole_digest.size()).bind(2, int64_t(bytes.size()));
        s->bind(3, int64_t(offset / kChunkSize));
        while (s->step()) blobs.push_back(s->int64(0));
      }
      std::sort(blobs.begin(), blobs.end());
      blobs.erase(std::unique(blobs.begin(), blobs.end()), blobs.end());
      for (int64_t blob : blobs) {
        if (!blob_damaged(blob, raw, digest)) continue;
        rewrite_blob(blob, raw, digest);
        if (rewritten) ++*rewritten;
      }
      if (whole) break;
    }
    return Status::success();
  });
}

// ---- reading -------------------------------------------------------------

// The chunks of the item whose ino is `item.ino`, each with the hash its
// bytes must have (the item's own row is read here, so a caller's ItemInfo
// need hold no more than the ino). The list itself is checked: a chunk
// whose blob is missing, or chunks that do not add up to the item's size,
// make *problem a sentence (the item is damaged). A one-chunk item's chunk
// must hash to the item's SHA-256, so a chunk row that points at another
// blob is found too.
std::vector<ReadChunk> chunk_list(Db& db, const ItemInfo& item, std::string* problem) {
  auto s = db.cached(
      "SELECT c.blob, b.raw_size, b.sha256, i.sha256, i.size, b.id IS NULL FROM chunks c JOIN items i ON "
      "i.ino = c.ino LEFT JOIN blobs b ON b.id = c.blob WHERE c.ino = ? ORDER BY c.seq");
  s->bind(1, item.ino);
  std::vector<ReadChunk> chunks;
  Sha256 item_digest{};
  uint64_t item_size = 0, total = 0;
  bool missing = false;
  while (s->step()) {
    if (s->int64(5)) {
      missing = true;
      continue;
    }
    ReadChunk chunk{s->int64(0), uint64_t(s->int64(1))};
    std::string_view digest = s->blob(2);
    if (digest.size() == chunk.digest.size()) {
      std::copy(digest.begin(), digest.end(), chunk.digest.begin());
      chunk.has_digest = true;
    }
    if (chunks.empty()) {
      std::string_view whole = s->blob(3);
      if (whole.size() == item_digest.size()) std::copy(whole.begin(), whole.end(), item_digest.begin());
      item_size = uint64_t(s->int64(4));
    }
    total += chunk.raw_size;
    chunks.push_back(chunk);
  }
  if (missing) {
    *problem = "a blob it uses is missing";
  } else if (total != item_size) {
    *problem = "chunks hold " + std::to_string(total) + " bytes, size says " + std::to_string(item_size);
  } else if (chunks.size() == 1 && item_size <= kChunkSize) {
    // One chunk: its bytes are the item's.
    chunks[0].digest = item_digest;
    chunks[0].has_digest = true;
  } else {
    // A chunk of a larger item may share the blob of a one-chunk item that
    // was stored without its hash (stores written before such blobs were
    // given theirs): the hash is that item's.
    for (ReadChunk& chunk : chunks) {
      if (chunk.has_digest) continue;
      auto h = db.cached(
          "SELECT i.sha256 FROM chunks c JOIN items i ON i.ino = c.ino WHERE c.blob = ? AND c.seq = 0 AND "
          "i.size <= ? AND length(i.sha256) = 32 AND NOT EXISTS (SELECT 1 FROM chunks d WHERE d.ino = c.ino AND "
          "d.seq = 1) LIMIT 1");
      h->bind(1, chunk.blob).bind(2, int64_t(kChunkSize));
      if (h->step()) {
        std::string_view d = h->blob(0);
        std::copy(d.begin(), d.end(), chunk.digest.begin());
        chunk.has_digest = true;
      }
      h->reset();
    }
  }
  return chunks;
}

class ItemReaderImpl final : public ItemReader {
 public:
  // A reader of the chunks of item `id`, the first one already read into
  // `first_chunk`, or found damaged (`first_damage`).
  ItemReaderImpl(StoreImpl& store, std::string id, std::vector<ReadChunk> chunks, std::string first_chunk,
                 std::string first_damage)
      : store_(store),
        id_(std::move(id)),
        chunks_(std::move(chunks)),
        cached_index_(first_damage.empty() ? 0 : SIZE_MAX),
        cached_(std::move(first_chunk)),
        first_damage_(std::move(first_damage)) {}
  // A lazy reader: nothing is read until the first pread, which checks that
  // `item` is still the stored version.
  ItemReaderImpl(StoreImpl& store, ItemInfo item) : store_(store), id_(item.id), lazy_item_(std::move(item)) {}

  // The kernel reads ahead with several requests at once on one handle.
  Status pread(uint64_t offset, uint64_t size, std::string& out) override {
    std::lock_guard lock(mutex_);
    out.clear();
    // A lazy reader finds its chunks and reads them in one read transaction:
    // blob ids can change (see recompress_older_blobs()).
    std::optional<StoreImpl::Lease> resolved;
    if (lazy_item_) {
      resolved.emplace(store_.acquire());
      Db& reader = **resolved;
      reader.exec("BEGIN");
      auto current = StoreImpl::find_item(reader, lazy_item_->id);
      bool same = current && current->ino == lazy_item_->ino && current->sha256 == lazy_item_->sha256;
      if (!same) return Status::error(ESTALE, "this version of the item is gone");
      std::string problem;
      chunks_ = chunk_list(reader, *current, &problem);
      lazy_item_.reset();
      if (!problem.empty()) {
        store_.count_damaged_read();
        first_damage_ = "item " + id_ + " is damaged: " + problem;
        chunks_.clear();
      }
    }
    if (!first_damage_.empty() && chunks_.empty()) return Status::error(EIO, first_damage_);
    uint64_t chunk_start = 0;
    for (size_t i = 0; i < chunks_.size() && out.size() < size; ++i) {
      uint64_t chunk_end = chunk_start + chunks_[i].raw_size;
      if (offset < chunk_end) {
        if (cached_index_ != i) {
          if (i == 0 && !first_damage_.empty()) return Status::error(EIO, first_damage_);
          std::optional<StoreImpl::Lease> own;
          if (!resolved) own.emplace(store_.acquire());
          std::string error;
          switch (store_.load_chunk(resolved ? **resolved : **own, chunks_[i], id_, i, chunks_.size(), cached_,
                                    &error)) {
            case ChunkRead::kOk:
              break;
            case ChunkRead::kGone:
              cached_index_ = SIZE_MAX;
              return Status::error(ESTALE, "this version of the item is gone");
            case ChunkRead::kDamaged:
              cached_index_ = SIZE_MAX;
              return Status::error(EIO, error);
          }
          cached_index_ = i;
        }
        uint64_t from = std::max(offset, chunk_start) - chunk_start;
        uint64_t take = std::min<uint64_t>(size - out.size(), cached_.size() - from);
        out.append(cached_, size_t(from), size_t(take));
        offset = chunk_start + from + take;
      }
      chunk_start = chunk_end;
    }
    return Status::success();
  }

 private:
  StoreImpl& store_;
  std::string id_;
  std::vector<ReadChunk> chunks_;
  std::mutex mutex_;
  size_t cached_index_ = SIZE_MAX;
  std::string cached_;
  std::string first_damage_;  // why the first chunk could not be read at open
  std::optional<ItemInfo> lazy_item_;
};

std::unique_ptr<ItemReader> StoreImpl::open_item(const ItemInfo& item, bool lazy) {
  if (lazy) return std::make_unique<ItemReaderImpl>(*this, item);
  auto reader = acquire();
  reader->exec("BEGIN");
  auto current = find_item(*reader, item.id);
  std::vector<ReadChunk> chunks;
  std::string first, damage;
  bool same = current && current->ino == item.ino && current->sha256 == item.sha256;
  std::string problem;
  if (same) chunks = chunk_list(*reader, *current, &problem);
  // Loading the first chunk in the same read transaction means an item of one
  // chunk (nearly all of them) can be read to the end whatever writers do.
  // Damaged content opens; reading it is EIO, as a disk's bad sector is.
  ChunkRead first_read = ChunkRead::kOk;
  if (!problem.empty()) {
    count_damaged_read();
    damage = "item " + item.id + " is damaged: " + problem;
    chunks.clear();
  } else if (!chunks.empty()) {
    first_read = load_chunk(*reader, chunks[0], item.id, 0, chunks.size(), first, &damage);
  }
  reader->exec("COMMIT");
  if (!same || first_read == ChunkRead::kGone) return nullptr;
  return std::make_unique<ItemReaderImpl>(*this, item.id, std::move(chunks), std::move(first), std::move(damage));
}

class SnapshotImpl final : public Snapshot {
 public:
  SnapshotImpl(StoreImpl& store, StoreImpl::Lease lease) : store_(store), lease_(std::move(lease)) {
    lease_->exec("BEGIN");
    // The snapshot starts at the first read, so read now.
    auto s = lease_->cached("SELECT count(*) FROM meta");
    s->step();
  }
  ~SnapshotImpl() override { sqlite3_exec(lease_->handle(), "COMMIT", nullptr, nullptr, nullptr); }

  std::optional<ItemInfo> item(std::string_view id) override { return StoreImpl::find_item(*lease_, id); }
  std::optional<ItemInfo> item_by_ino(int64_t ino) override {
    auto s = lease_->cached("SELECT ino, id, size, sha256, mode, uid, gid, mtime_ns, ctime_ns FROM items WHERE ino=?");
    s->bind(1, ino);
    if (!s->step()) return std::nullopt;
    return item_from(*s);
  }
  uint64_t seq() override { return feed::last_seq(*lease_); }
  bool read_replaced(uint64_t seq, std::string& out) override {
    out.clear();
    if (!store_.has_feed()) return false;
    auto parts = feed::old_parts(*lease_, seq);
    if (parts.empty()) return false;
    for (auto& part : parts) {
      BlobRow row;
      row.data = std::move(part.data);
      row.raw_size = part.raw_size;
      row.codec = part.codec;
      row.dict_id = part.dict_id;
      std::string problem;
      auto bytes = store_.decode(*lease_, row, &problem);
      if (!bytes || bytes->size() != part.raw_size) return false;
      out += *bytes;
    }
    return true;
  }
  ChangeList changes_since(uint64_t after, size_t limit) override {
    if (!store_.has_feed()) {
      ChangeList none;
      none.complete = false;
      return none;
    }
    return feed::changes_since(*lease_, after, limit);
  }

  void scan_items(const std::function<void(const ItemInfo&)>& fn) override {
    // Table (rowid) order reads the table's pages once, front to back; id
    // order would walk the id index and look each row up in the table.
    Stmt s(lease_->handle(), "SELECT ino, id, size, sha256, mode, uid, gid, mtime_ns, ctime_ns FROM items");
    ItemInfo info;  // reused: the id keeps its buffer from row to row
    while (s.step()) {
      fill_item(s, info);
      fn(info);
    }
  }

  void for_each_item(const std::function<void(const ItemInfo&)>& fn) override {
    // Its own statement: `fn` may use the cached ones (read_item) meanwhile.
    Stmt s(lease_->handle(),
           "SELECT ino, id, size, sha256, mode, uid, gid, mtime_ns, ctime_ns FROM items ORDER BY id");
    while (s.step()) fn(item_from(s));
  }

  void read_item(const ItemInfo& item, const std::function<void(std::string_view)>& sink) override {
    std::string bytes, error, problem;
    auto chunks = chunk_list(*lease_, item, &problem);
    if (!problem.empty()) {
      store_.count_damaged_read();
      throw StoreError(EIO, "item " + item.id + " is damaged: " + problem);
    }
    for (size_t i = 0; i < chunks.size(); ++i) {
      switch (store_.load_chunk(*lease_, chunks[i], item.id, i, chunks.size(), bytes, &error)) {
        case ChunkRead::kOk:
          sink(bytes);
          break;
        case ChunkRead::kGone:
          throw StoreError(EIO, "item " + item.id + ": a blob it uses is missing");
        case ChunkRead::kDamaged:
          throw StoreError(EIO, error);
      }
    }
  }

  void read_items_until(const std::vector<ItemInfo>& items, size_t threads, PreviewSink& sink) override {
    // One connection is for one thread at a time, so the blob row of every
    // item of one chunk is read here, then inflated and handed to the sink
    // on `threads` threads (inflating and what the sink does with the bytes
    // are most of the time). Items of several chunks are read here
    // afterwards, one at a time: a sink may hold much of an item's text
    // until its end.
    struct Start {
      BlobRow row;
      std::string_view dictionary;
      bool read = false;   // its row is in `row` (an item of no chunks has none)
      bool later = false;  // it is read afterwards
      std::string problem;
    };
    std::vector<Start> starts(items.size());
    // The rows are copies, kPreviewReadAhead of them at most (a hundred
    // items of a chunk each would be 100 MB); the items after are read
    // afterwards.
    size_t copied = 0;
    {
      auto s = lease_->cached(
          "SELECT b.data, b.raw_size, b.codec, b.dict_id FROM chunks c LEFT JOIN blobs b ON b.id = c.blob "
          "WHERE c.ino = ? ORDER BY c.seq LIMIT 2");
      for (size_t k = 0; k < items.size(); ++k) {
        if (copied >= kPreviewReadAhead || items[k].size > kChunkSize) {
          starts[k].later = true;
          continue;
        }
        s->bind(1, items[k].ino);
        if (s->step()) {
          Start& start = starts[k];
          start.read = true;
          if (s->is_null(0)) {
            start.problem = "no such blob";
          } else {
            start.row = StoreImpl::blob_from(*s);
            copied += start.row.data.size();
            if (start.row.codec == int(Codec::kZlib)) start.dictionary = store_.dictionary_of(*lease_, start.row.dict_id);
          }
          if (s->step()) start = Start{.later = true};  // several chunks after all
        }
        s->reset();
      }
    }
    std::atomic<size_t> next{0};
    const std::function<void(size_t)> work = [&](size_t thread) {
      for (size_t k = next++; k < items.size(); k = next++) {
        Start& start = starts[k];
        if (start.later) continue;
        if (start.read) {
          auto piece = [&](std::string_view bytes) { return sink.piece(thread, k, bytes); };
          StoreImpl::stream_blob_bytes(start.row.data, start.row.raw_size, start.row.codec, start.dictionary,
                                       kFirstPiece, piece, &start.problem);
          start.row.data = std::string();
        }
        if (start.problem.empty()) sink.done(thread, k);
      }
    };
    if (threads > 1 && items.size() > 1) {
      store_.preview_helper().share(work);
    } else {
      work(0);
    }
    for (size_t k = 0; k < items.size(); ++k) {
      const Start& start = starts[k];
      if (!start.problem.empty()) throw StoreError(EIO, "item " + items[k].id + ": blob unreadable: " + start.problem);
      if (!start.later) continue;
      read_chunks(items[k], [&](std::string_view bytes) { return sink.piece(0, k, bytes); });
      sink.done(0, k);
    }
  }

 private:
  // The item's chunks, to `sink` until it returns false.
  void read_chunks(const ItemInfo& item, const std::function<bool(std::string_view)>& sink) {
    // Each chunk's blob row with it: one statement per item, not two.
    auto s = lease_->cached(
        "SELECT b.data, b.raw_size, b.codec, b.dict_id FROM chunks c LEFT JOIN blobs b ON b.id = c.blob "
        "WHERE c.ino = ? ORDER BY c.seq");
    s->bind(1, item.ino);
    while (s->step()) {
      std::string problem;
      bool more = true;
      if (!store_.stream_blob(*lease_, *s, kFirstPiece, [&](std::string_view piece) { return more = sink(piece); },
                              &problem)) {
        throw StoreError(EIO, "item " + item.id + ": blob unreadable: " + problem);
      }
      if (!more) return;
    }
  }

  StoreImpl& store_;
  StoreImpl::Lease lease_;
};

std::unique_ptr<Snapshot> StoreImpl::snapshot() { return std::make_unique<SnapshotImpl>(*this, acquire()); }

// ---- fsck ----------------------------------------------------------------

FsckReport StoreImpl::fsck(bool repair, const FsckProgress& progress) {
  FsckReport report;
  auto reader = acquire();
  auto& db = *reader;
  uint64_t total = 0;
  auto checked = [&] {
    const uint64_t done = report.blobs_checked + report.items_checked;
    if (progress && done % 1024 == 0) progress(done, total);
  };
  {
    Stmt s(db.handle(), "PRAGMA quick_check");
    while (s.step())
      if (s.text(0) != "ok") report.problems.push_back("sqlite: " + std::string(s.text(0)));
  }
  db.exec("BEGIN");
  if (progress) {
    Stmt s(db.handle(), "SELECT (SELECT count(*) FROM blobs) + (SELECT count(*) FROM items)");
    if (s.step()) total = uint64_t(s.int64(0));
    progress(0, total);
  }
  // The dictionaries new blobs are compressed with exist.
  {
    Stmt s(db.handle(), "SELECT key, value FROM meta WHERE key IN ('current_dict', 'dict_set')");
    while (s.step()) {
      for (int64_t id : parse_ids(s.text(1))) {
        Stmt d(db.handle(), "SELECT 1 FROM dicts WHERE id=?");
        d.bind(1, id);
        if (!d.step())
          report.problems.push_back("meta." + std::string(s.text(0)) + " names dictionary #" + std::to_string(id) +
                                    ", which is missing");
      }
    }
    // And every dictionary decodes.
    Stmt d(db.handle(), "SELECT id FROM dicts");
    while (d.step())
      if (!read_dictionary(db, d.int64(0)))
        report.problems.push_back("dictionary #" + std::to_string(d.int64(0)) + " is damaged");
  }
  // The hashes of the blobs stored without one (format 3): those of the
  // one-chunk items that use them.
  std::unordered_map<int64_t, std::string> held_hashes;
  {
    Stmt s(db.handle(),
           "SELECT c.blob, i.sha256 FROM items i JOIN chunks c ON c.ino = i.ino AND c.seq = 0 JOIN blobs b ON "
           "b.id = c.blob WHERE i.size <= ? AND length(b.sha256) = 0");
    s.bind(1, int64_t(kChunkSize));
    while (s.step()) held_hashes.emplace(s.int64(0), std::string(s.blob(1)));
  }
  // Every blob: decodes, has its raw size and hashes to its name.
  std::set<int64_t> bad_blobs;
  std::unordered_map<int64_t, int64_t> recorded_refs;
  std::unordered_map<std::string, int64_t> stored_times;  // blobs of each content
  {
    Stmt s(db.handle(), "SELECT id, sha256, raw_size, codec, dict_id, refs, data, stored_size FROM blobs");
    while (s.step()) {
      ++report.blobs_checked;
      checked();
      int64_t id = s.int64(0);
      BlobRow row;
      std::string digest(s.blob(1));
      bool unknown = false;  // no hash to check it against (the items check their content)
      if (digest.empty()) {
        if (auto it = held_hashes.find(id); it != held_hashes.end()) {
          digest = it->second;
        } else {
          report.problems.push_back("blob #" + std::to_string(id) +
                                    ": stored without its SHA-256, and no one-chunk item uses it");
          unknown = true;
        }
      }
      std::string name = unknown ? "#" + std::to_string(id)
                         : digest.size() == 32 ? to_hex([&] {
                             Sha256 d{};
                             std::copy(digest.begin(), digest.end(), d.begin());
                             return d;
                           }())
                                               : "(bad sha256 column)";
      if (!unknown) ++stored_times[digest];
      row.raw_size = uint64_t(s.int64(2));
      row.codec = int(s.int64(3));
      row.dict_id = s.is_null(4) ? 0 : s.int64(4);
      recorded_refs[id] = s.int64(5);
      row.data = std::string(s.blob(6));
      if (uint64_t(s.int64(7)) != row.data.size())
        report.problems.push_back("blob " + name + ": stored_size does not match its data");
      std::string problem;
      auto bytes = decode(db, row, &problem);
      if (!bytes) {
        report.problems.push_back("blob " + name + ": " + problem);
        bad_blobs.insert(id);
      } else if (!unknown && to_hex(sha256_of(*bytes)) != name) {
        report.problems.push_back("blob " + name + ": content does not match its SHA-256");
        bad_blobs.insert(id);
      }
    }
  }
  // One blob for each content (the store keeps it so; no index enforces it).
  for (const auto& [digest, times] : stored_times) {
    if (times < 2) continue;
    Sha256 d{};
    if (digest.size() == d.size()) std::copy(digest.begin(), digest.end(), d.begin());
    report.problems.push_back("blob " + to_hex(d) + ": stored " + std::to_string(times) + " times");
  }
  // Reference counts equal the chunk rows that use each blob.
  std::unordered_map<int64_t, int64_t> actual_refs;
  {
    Stmt s(db.handle(), "SELECT blob, count(*) FROM chunks GROUP BY blob");
    while (s.step()) actual_refs[s.int64(0)] = s.int64(1);
  }
  std::vector<std::pair<int64_t, int64_t>> ref_fixes;
  for (auto [id, refs] : recorded_refs) {
    int64_t actual = actual_refs.count(id) ? actual_refs[id] : 0;
    if (actual != refs) {
      report.problems.push_back("blob #" + std::to_string(id) + ": reference count " + std::to_string(refs) +
                                ", used " + std::to_string(actual) + " times");
      ref_fixes.emplace_back(id, actual);
    }
  }
  for (auto [id, count] : actual_refs)
    if (!recorded_refs.count(id))
      report.problems.push_back("chunk refers to missing blob #" + std::to_string(id));
  // Every item: its chunks add up to its size and hash to its sha256.
  std::vector<std::string> missing_dirs;
  {
    std::set<std::string> dirs;
    Stmt d(db.handle(), "SELECT name FROM dirs");
    while (d.step()) dirs.emplace(d.text(0));
    Stmt s(db.handle(), "SELECT ino, id, size, sha256, mode, uid, gid, mtime_ns, ctime_ns, shard FROM items");
    while (s.step()) {
      ++report.items_checked;
      checked();
      ItemInfo item = item_from(s);
      std::string shard(s.text(9));
      if (shard != shard_of(item.id)) report.problems.push_back("item " + item.id + ": recorded in the wrong shard");
      if (!dirs.count(shard)) {
        report.problems.push_back("item " + item.id + ": shard directory " + shard + " is missing");
        missing_dirs.push_back(shard);
        dirs.insert(shard);
      }
      Sha256Hasher hasher;
      uint64_t size = 0;
      bool readable = true;
      std::string list_problem;
      const std::vector<ReadChunk> chunks = chunk_list(db, item, &list_problem);
      if (!list_problem.empty()) {
        report.problems.push_back("item " + item.id + ": " + list_problem);
        report.damaged_items.push_back(item.id);
        continue;
      }
      for (const ReadChunk& chunk : chunks) {
        if (bad_blobs.count(chunk.blob)) {
          readable = false;
          continue;
        }
        auto bytes = load_blob(db, chunk.blob);
        if (!bytes) {
          readable = false;
          continue;
        }
        hasher.update(*bytes);
        size += bytes->size();
      }
      if (!readable) {
        report.problems.push_back("item " + item.id + ": content damaged (a blob it uses failed its check)");
        report.damaged_items.push_back(item.id);
      } else if (size != item.size) {
        report.problems.push_back("item " + item.id + ": chunks hold " + std::to_string(size) + " bytes, size says " +
                                  std::to_string(item.size));
        report.damaged_items.push_back(item.id);
      } else if (hasher.finish() != item.sha256) {
        report.problems.push_back("item " + item.id + ": content does not match its SHA-256");
        report.damaged_items.push_back(item.id);
      }
    }
  }
  db.exec("COMMIT");
  if (progress) progress(report.blobs_checked + report.items_checked, total);
  if (repair && (!ref_fixes.empty() || !missing_dirs.empty())) {
    // Counted again inside the write transaction: the mount may have
    // committed since the read above, and a blob it now uses must not go.
    write([&](WriteBatch&) {
      Db& w = *writer_;
      w.exec(
          "UPDATE blobs SET refs=(SELECT count(*) FROM chunks WHERE chunks.blob=blobs.id) "
          "WHERE refs<>(SELECT count(*) FROM chunks WHERE chunks.blob=blobs.id)");
      report.repaired += uint64_t(sqlite3_changes(w.handle()));
      w.exec("DELETE FROM blobs WHERE refs=0");
      int64_t now = now_ns();
      for (const auto& shard : missing_dirs) {
        auto s = w.cached("INSERT OR IGNORE INTO dirs(name, mode, uid, gid, mtime_ns, ctime_ns) VALUES(?,?,0,0,?,?)");
        s->bind(1, shard).bind(2, int64_t(S_IFDIR | 0755)).bind(3, now).bind(4, now).run();
        report.repaired += uint64_t(sqlite3_changes(w.handle()));
      }
    });
  }
  return report;
}

}  // namespace

std::string permissions_warning(const std::filesystem::path& dir) {
  std::string warning;
  for (const fs::path& path : {dir, dir / "store.db"}) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || (st.st_mode & 0077) == 0) continue;
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", unsigned(st.st_mode & 07777));
    if (!warning.empty()) warning += "; ";
    warning += path.string() + " is open to other users (mode " + mode + ")";
  }
  if (warning.empty()) return warning;
  return warning + ": any local user who can read it can read every item, private ones included, from the "
                   "database (chmod 700 " + dir.string() + " to keep them out)";
}

std::string Store::engine_version() { return std::string("SQLite ") + sqlite3_libversion(); }

std::unique_ptr<Store> Store::open(const std::filesystem::path& dir, const Options& options) {
  return std::make_unique<StoreImpl>(dir, options);
}

}  // namespace itemfs::store
