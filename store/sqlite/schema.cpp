// The store.db schema (format kFormatVersion; docs/FORMAT.md describes
// every column), the migrations from formats 1 to 3, the version check, and
// a new store's private modes.

#include "store/sqlite/store_impl.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>

namespace itemfs::store::sqlite {

namespace {

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

}  // namespace

// A new store is its owner's alone, as restic's repository is: the
// directory 0700 and store.db 0600 (SQLite gives its -wal and -shm files
// the database's mode), whatever the umask. An existing store keeps its
// modes (permissions_warning() tells of open ones).
void StoreImpl::create_private(const fs::path& dir, const fs::path& db) {
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

// Creates the tables of a new store, or brings a store of format 1 or 2
// to the current format, in one transaction. 1 to 2: items_by_shard(shard,
// id) is dropped (a shard's items are a range of ids; items_in_00 holds
// those of shard 00), dicts gains codec and raw_size; the store keeps its
// one dictionary and its blobs as they are. 2 to 3: items_by_sha is made;
// the blobs keep their hashes (format 3 allows both; only blobs stored
// later leave theirs out). A store of a format this build does not know is
// left alone (check_version() refuses it).
void StoreImpl::init_schema() {
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
      int64_t now = base::now_ns();
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
bool StoreImpl::has_unique_sha_index() {
  auto s = writer_->cached(
      "SELECT 1 FROM sqlite_master WHERE type='index' AND tbl_name='blobs' AND name LIKE 'sqlite_autoindex_blobs_%'");
  return s->step();
}

void StoreImpl::check_version() {
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

}  // namespace itemfs::store::sqlite
