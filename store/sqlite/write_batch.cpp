// WriteBatch: put (a stream, bytes or a prepared item), remove, rename,
// attributes and shard directories, each in its own savepoint, each change
// recorded in the feed.

#include "store/sqlite/store_impl.h"

#include <sys/stat.h>
#include <cerrno>
#include <istream>

namespace itemfs::store::sqlite {

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
  if (Status status = store_.check_item_size(size); !status.ok()) return status;
  if (Status room = store_.check_room_in_batch(size); !room.ok()) return room;
  if (size <= kChunkSize) {
    std::string bytes(size, '\0');
    if (!content.read(bytes.data(), std::streamsize(size))) return Status::error(EIO, "short read of the content");
    return put_bytes(id, bytes, attrs);
  }
  return put_stream(id, content, size, attrs);
}

Status WriteBatchImpl::put_bytes(std::string_view id, std::string_view bytes, const Attrs& attrs) {
  // put_with_ino()'s bytes were checked when they were accepted.
  if (!wanted_ino_) {
    if (Status status = validate_json_bytes(bytes); !status.ok()) return status;
  }
  return guarded([&] {
    std::vector<ChunkRef> chunks{{store_chunk(bytes, true), bytes.size()}};
    return finish_put(id, chunks, base::sha256_of(bytes), bytes.size(), attrs);
  });
}

Status WriteBatchImpl::put_prepared(PreparedItem& item) {
  auto& p = item.parts();
  if (!p.early.ok()) return p.early;
  if (Status room = store_.check_room_in_batch(p.bytes.size()); !room.ok()) return room;
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
    base::Sha256Hasher whole;
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
  int64_t now = base::now_ns();
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
    // put_with_ino()'s reserved number, unless another item has it.
    int64_t given = 0;
    if (wanted_ino_) {
      auto taken = db_.cached("SELECT 1 FROM items WHERE ino=?");
      if (!taken->bind(1, wanted_ino_).step()) given = wanted_ino_;
    }
    auto s = db_.cached(
        "INSERT INTO items(id, shard, size, sha256, mode, uid, gid, mtime_ns, ctime_ns, ino) "
        "VALUES(?,?,?,?,?,?,?,?,?,?) RETURNING ino");
    if (given) s->bind(10, given);
    else s->bind_null(10);
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
    touch_dir(shard_of(id), base::now_ns());
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
    int64_t now = base::now_ns();
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
    int64_t now = base::now_ns();
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
    int64_t now = base::now_ns();
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
    touch_dir("", base::now_ns());
    return Status::success();
  });
}

Status WriteBatchImpl::set_dir_attrs(std::string_view shard, const Attrs& attrs) {
  return guarded([&] {
    auto s = db_.cached("UPDATE dirs SET mode=?, uid=?, gid=?, mtime_ns=?, ctime_ns=? WHERE name=?");
    s->bind(1, int64_t(attrs.mode)).bind(2, int64_t(attrs.uid)).bind(3, int64_t(attrs.gid));
    int64_t now = base::now_ns();
    s->bind(4, attrs.mtime_ns == kMtimeNow ? now : attrs.mtime_ns).bind(5, now).bind(6, shard).run();
    if (sqlite3_changes(db_.handle()) == 0) return Status::error(ENOENT, "no shard " + std::string(shard));
    return Status::success();
  });
}

}  // namespace itemfs::store::sqlite
