// The SQLite store: opening and closing it, Store::write() (one transaction
// per batch, the disk rules after it, then waking the trainer when a check
// of the dictionaries is due, then the commit listeners), the change feed's followers, and the lookups of items and
// shard directories. Also open_sqlite (for Store::open), Store::engine_version,
// permissions_warning and the row readers item_from, dir_from, fill_item.

#include "store/sqlite/store_impl.h"

#include <sys/stat.h>
#include <cerrno>
#include <cstdio>
#include <utility>

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


std::string permissions_warning(const std::filesystem::path& dir) {
  std::string warning;
  for (const std::filesystem::path& path : {dir, dir / "store.db"}) {
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


}  // namespace itemfs::store

namespace itemfs::store::sqlite {

std::unique_ptr<Store> open_sqlite(const std::filesystem::path& dir, const Options& options) {
  return std::make_unique<StoreImpl>(dir, options);
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

StoreImpl::StoreImpl(fs::path dir, Options options) : dir_(std::move(dir)), options_(options), compressor_(6) {
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
  free_pages_after_commit_ = free_page_bytes();
  reserve_bytes_ = measure_reserve_bytes();
  if (!options_.read_only) keep_space_reserve();
  // Older blobs left to compress again by a store closed (or stopped)
  // before it was done: the trainer goes on with them.
  if (!options_.read_only && has_recompression_pending()) trainer_.wake();
}

StoreImpl::~StoreImpl() { trainer_.stop(); }

void StoreImpl::write(const std::function<void(WriteBatch&)>& fn) {
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
  note_changes(puts);
  lock.unlock();
  if (seq) {
    std::shared_ptr<const std::vector<CommitListener>> listeners;
    {
      std::lock_guard guard(listeners_mutex_);
      listeners = listeners_;
    }
    for (const auto& listener : *listeners) listener(seq);
  }
}

void StoreImpl::add_commit_listener(CommitListener fn) {
  std::lock_guard guard(listeners_mutex_);
  auto more = std::make_shared<std::vector<CommitListener>>(*listeners_);
  more->push_back(std::move(fn));
  listeners_ = std::move(more);
}

uint64_t StoreImpl::last_seq() {
  auto reader = acquire();
  return feed::last_seq(*reader);
}

// One short write transaction for a follower's cursor.
void StoreImpl::feed_write(const std::function<void()>& fn) {
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

uint64_t StoreImpl::follow(std::string_view name) {
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

void StoreImpl::advance(std::string_view name, uint64_t seq) {
  if (options_.read_only) return;
  auto now = cursor(name);
  if (!now || *now >= seq) return;
  feed_write([&] { feed::set_cursor(*writer_, name, seq, false); });
}

void StoreImpl::unfollow(std::string_view name) {
  if (options_.read_only) return;
  feed_write([&] { feed::remove_follower(*writer_, name); });
}

std::optional<uint64_t> StoreImpl::cursor(std::string_view name) {
  if (!has_feed_) return std::nullopt;
  auto reader = acquire();
  auto s = reader->cached("SELECT seq FROM followers WHERE name=?");
  s->bind(1, name);
  if (!s->step()) return std::nullopt;
  return uint64_t(s->int64(0));
}

std::optional<ItemInfo> StoreImpl::item(std::string_view id) {
  auto reader = acquire();
  return find_item(*reader, id);
}

std::optional<ItemInfo> StoreImpl::item_by_ino(int64_t ino) {
  auto reader = acquire();
  auto s = reader->cached("SELECT ino, id, size, sha256, mode, uid, gid, mtime_ns, ctime_ns FROM items WHERE ino=?");
  s->bind(1, ino);
  if (!s->step()) return std::nullopt;
  return item_from(*s);
}

std::vector<ItemInfo> StoreImpl::list_shard(std::string_view shard) {
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
StmtScope StoreImpl::shard_items(Db& db, std::string_view shard, bool any) {
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

std::optional<DirInfo> StoreImpl::dir_info(std::string_view shard) {
  auto reader = acquire();
  auto s = reader->cached("SELECT ino, name, mode, uid, gid, mtime_ns, ctime_ns FROM dirs WHERE name=?");
  s->bind(1, shard);
  if (!s->step()) return std::nullopt;
  return dir_from(*s);
}

std::vector<DirInfo> StoreImpl::list_dirs() {
  auto reader = acquire();
  auto s = reader->cached("SELECT ino, name, mode, uid, gid, mtime_ns, ctime_ns FROM dirs WHERE name<>'' ORDER BY name");
  std::vector<DirInfo> out;
  while (s->step()) out.push_back(dir_from(*s));
  return out;
}

bool StoreImpl::changed_by_others() {
  std::lock_guard lock(write_mutex_);
  // data_version moves on this connection when any other connection
  // commits; all of this process's writes go through this one.
  auto s = writer_->cached("PRAGMA data_version");
  int64_t version = s->step() ? s->int64(0) : 0;
  bool changed = seen_data_version_ && *seen_data_version_ != version;
  seen_data_version_ = version;
  return changed;
}

std::optional<ItemInfo> StoreImpl::find_item(Db& db, std::string_view id) {
  auto s = db.cached("SELECT ino, id, size, sha256, mode, uid, gid, mtime_ns, ctime_ns FROM items WHERE id=?");
  s->bind(1, id);
  if (!s->step()) return std::nullopt;
  return item_from(*s);
}

}  // namespace itemfs::store::sqlite
