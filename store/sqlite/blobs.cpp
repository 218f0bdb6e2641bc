// Reading blobs: a blob's row decoded (codec, dictionary) and checked, one
// chunk of an item checked against its hash, and an item's chunk list.

#include "store/sqlite/store_impl.h"

#include <algorithm>

namespace itemfs::store::sqlite {

// The bytes of one chunk of item `id` (the `seq`th of `count`) into
// `out`, decoded and checked against the hash they must have. kGone if
// its blob is no longer there (a writer replaced the item); kDamaged,
// with *error set to a sentence naming the item, if the bytes do not
// decode or are not the bytes the hash names. Every damaged read is
// counted (Stats::damaged_reads).
ChunkRead StoreImpl::load_chunk(Db& db, const ReadChunk& chunk, std::string_view id, size_t seq, size_t count,
                               std::string& out, std::string* error, bool count_damage) {
  auto row = blob_row(db, chunk.blob);
  if (!row) return ChunkRead::kGone;
  std::string problem;
  std::optional<std::string> bytes = decode(db, *row, &problem);
  if (bytes && bytes->size() != chunk.raw_size)
    problem = "it holds " + std::to_string(bytes->size()) + " bytes, not " + std::to_string(chunk.raw_size);
  else if (bytes && !chunk.has_digest)
    problem = "its blob has no SHA-256 to check it against";
  else if (bytes && base::sha256_of(*bytes) != chunk.digest)
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

std::optional<std::string> StoreImpl::load_blob(Db& db, int64_t blob_id, std::string* problem) {
  auto row = blob_row(db, blob_id);
  if (!row) return std::nullopt;
  return decode(db, *row, problem);
}

// The bytes of the blob in `row` (blob_from()'s columns; all NULL for a
// blob that is gone) given to `sink` a piece at a time until it returns
// false (decompress_pieces(), the checksum not verified): what a preview
// that may stop early reads. False, with *problem set, if the blob is gone
// or found damaged.
bool StoreImpl::stream_blob(Db& db, Stmt& row, size_t first_piece, const PieceSink& sink, std::string* problem) {
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
bool StoreImpl::stream_blob_bytes(std::string_view data, uint64_t raw_size, int codec, std::string_view dictionary,
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

// A row of (data, raw_size, codec, dict_id), as kBlobRowSql selects.
BlobRow StoreImpl::blob_from(Stmt& s) {
  BlobRow row;
  row.data = std::string(s.blob(0));
  row.raw_size = uint64_t(s.int64(1));
  row.codec = int(s.int64(2));
  row.dict_id = s.is_null(3) ? 0 : s.int64(3);
  return row;
}

std::optional<BlobRow> StoreImpl::blob_row(Db& db, int64_t blob_id) {
  auto s = db.cached(kBlobRowSql);
  s->bind(1, blob_id);
  if (!s->step()) return std::nullopt;
  return blob_from(*s);
}

// What is wrong with a blob's codec and sizes, before its bytes are read:
// "" when nothing.
std::string StoreImpl::codec_problem(int codec, size_t stored_size, uint64_t raw_size) {
  if (codec == int(Codec::kRaw)) return stored_size == raw_size ? "" : "raw blob has the wrong size";
  if (codec != int(Codec::kZlib)) return "unknown codec " + std::to_string(codec);
  return "";
}

std::optional<std::string> StoreImpl::decode(Db& db, const BlobRow& row, std::string* problem) {
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

}  // namespace itemfs::store::sqlite
