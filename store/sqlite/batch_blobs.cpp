// The write batch's blobs: dedup by hash, the damaged blob healed from new
// content, reference counts, blobs stored without their hash, packing the
// batch's new blobs, and repair_blobs.

#include "store/sqlite/store_impl.h"

#include <algorithm>
#include <unordered_map>

namespace itemfs::store::sqlite {

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

// The one way a chunk becomes a blob: an existing blob of its content
// (checked first), or a new one, compressed as the item encoder does
// (StoreImpl::compress_chunk()).
int64_t WriteBatchImpl::store_chunk(std::string_view raw, bool whole) {
  encoded_.sha256 = base::sha256_of(raw);
  if (int64_t id = reuse_checked(encoded_.sha256, raw, whole)) return id;
  encoded_.codec =
      StoreImpl::compress_chunk(store_.compressor(), store_.dictionaries(), raw, encoded_.stored, encoded_.dict_id);
  return insert_blob(encoded_, raw, whole);
}

// store_chunk() for a chunk the item encoder compressed ahead.
int64_t WriteBatchImpl::store_prepared_chunk(const PreparedItem::Parts::Chunk& chunk, std::string_view raw,
                                             bool whole) {
  if (int64_t id = reuse_checked(chunk.sha256, raw, whole)) return id;
  return insert_blob(chunk, raw, whole);
}

// A new blob of `raw`, encoded as `chunk` says, with one reference.
int64_t WriteBatchImpl::insert_blob(const PreparedItem::Parts::Chunk& chunk, std::string_view raw, bool whole) {
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

// ---- repair -------------------------------------------------------------

Status WriteBatchImpl::repair_blobs(std::string_view bytes, uint64_t* rewritten) {
  if (rewritten) *rewritten = 0;
  if (Status invalid = validate_json_bytes(bytes); !invalid.ok()) return invalid;
  return guarded([&] {
    // Cut as put() cuts: one chunk up to kChunkSize, else kChunkSize pieces.
    const bool whole = bytes.size() <= kChunkSize;
    const Sha256 whole_digest = base::sha256_of(bytes);
    for (uint64_t offset = 0; offset == 0 || offset < bytes.size(); offset += kChunkSize) {
      std::string_view raw = bytes.substr(size_t(offset), size_t(kChunkSize));
      const Sha256 digest = base::sha256_of(raw);
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

}  // namespace itemfs::store::sqlite
