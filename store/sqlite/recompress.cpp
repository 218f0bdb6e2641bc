// Compressing older blobs again: once new dictionaries are the current set,
// the blobs stored before them (meta.recompress_next .. recompress_last, by
// id) are compressed with them, on the trainer's thread, a batch at a time:
// each batch is read and compressed through a read connection with no lock
// held, then moved in one short write transaction that also moves
// meta.recompress_next past it, so writers go on between batches and a
// store closed (or stopped) in the middle goes on from there when it is
// opened next. A blob records its own dictionary, so a store part way
// through reads right throughout. The last batch drops the dictionaries no
// blob needs any more and the two meta keys.

#include "store/sqlite/store_impl.h"

#include <algorithm>
#include <array>
#include <climits>

namespace itemfs::store::sqlite {
namespace {

// A batch: at most this many blobs, or about this many bytes of them.
constexpr size_t kBatchBlobs = 512;
constexpr size_t kBatchBytes = 4u << 20;

struct Range {
  int64_t next = 0, last = 0;
  bool operator==(const Range&) const = default;
};

std::optional<Range> pending_range(Db& db) {
  auto s = db.cached(
      "SELECT (SELECT value FROM meta WHERE key='recompress_next'), "
      "(SELECT value FROM meta WHERE key='recompress_last')");
  if (!s->step() || s->is_null(0) || s->is_null(1)) return std::nullopt;
  return Range{s->int64(0), s->int64(1)};
}

// A blob of the batch: as read (its stored bytes, to find it unchanged in
// the write), and as compressed again.
struct Candidate {
  int64_t id = 0;
  int64_t old_dict_id = 0;
  int old_codec = 0;
  std::string old_data, raw, stored;
  int64_t dict_id = 0;
  Codec codec = Codec::kRaw;
};

}  // namespace

bool StoreImpl::has_recompression_pending() { return pending_range(*writer_).has_value(); }

// The blobs of items of more than one chunk are left as they are: an open
// reader of such an item may still hold their ids. One that an older
// dictionary compresses better moves too, a little larger, so that the
// older dictionary can go; one without a dictionary moves only if it
// shrinks. Each moved blob goes into a new row (so the pages the old rows
// leave are free for the rows to come, not holes in pages nothing is
// appended to again; in packing_order()) and its chunks are pointed at it.
bool StoreImpl::recompress_older_blobs(const Trainer& trainer) {
  if (trainer.stopping()) return false;
  call_training_hook(Options::TrainingStep::kRecompress);
  auto set = current_dictionaries();
  Range range;
  int64_t done_through = 0;  // the batch covers the ids up to here
  std::vector<Candidate> batch;
  {
    Lease reader = acquire();
    reader->exec("BEGIN");
    auto pending = pending_range(*reader);
    if (!pending) return false;
    range = *pending;
    if (set->empty()) return false;  // left for when the set is read again
    int64_t oldest = INT64_MAX;
    for (const auto& d : set->dictionaries()) oldest = std::min(oldest, d->id);
    Stmt s(reader->handle(),
           "SELECT id, data, raw_size, codec, dict_id FROM blobs WHERE id >= ?1 AND id <= ?2 AND "
           "(dict_id IS NULL OR dict_id < ?3) AND id NOT IN (SELECT blob FROM chunks WHERE ino IN "
           "(SELECT ino FROM chunks WHERE seq > 0)) ORDER BY id");
    s.bind(1, range.next).bind(2, range.last).bind(3, oldest);
    done_through = range.last;
    size_t bytes = 0;
    while (s.step()) {
      BlobRow row;
      row.data = std::string(s.blob(1));
      row.raw_size = uint64_t(s.int64(2));
      row.codec = int(s.int64(3));
      row.dict_id = s.is_null(4) ? 0 : s.int64(4);
      const int64_t id = s.int64(0);
      auto raw = decode(*reader, row, nullptr);
      if (raw) {  // a damaged one stays as it is: fsck reports it
        bytes += raw->size();
        batch.push_back({id, row.dict_id, row.codec, std::move(row.data), std::move(*raw), {}, 0, Codec::kRaw});
      }
      if (batch.size() >= kBatchBlobs || bytes >= kBatchBytes) {
        done_through = id;
        break;
      }
    }
  }
  // Compressing is most of the work: on two threads, with no lock held.
  Compressor compressor(6), helper_compressor(6);
  Compressor* compressors[] = {&compressor, &helper_compressor};
  run_on_threads(2, [&](size_t t) {
    for (size_t k = t; k < batch.size(); k += 2)
      batch[k].codec = compress_chunk(*compressors[t], *set, batch[k].raw, batch[k].stored, batch[k].dict_id);
  });
  std::erase_if(batch, [](const Candidate& c) {
    return c.codec != Codec::kZlib || (c.stored.size() >= c.old_data.size() && c.old_dict_id == 0);
  });
  if (trainer.stopping()) return false;

  std::lock_guard lock(write_mutex_);
  Db& db = *writer_;
  db.exec("BEGIN IMMEDIATE");
  try {
    // Changed meanwhile (another process trained): read it again next time.
    if (pending_range(db) != std::optional<Range>(range)) {
      db.exec("ROLLBACK");
      return pending_range(*writer_).has_value();
    }
    // The chunks of the batch's blobs, as they are now: a blob another
    // writer gave to an item of several chunks meanwhile stays.
    std::unordered_map<int64_t, std::vector<std::pair<int64_t, int64_t>>> users;  // blob: (ino, seq)
    if (!batch.empty()) {
      auto s = db.cached("SELECT ino, seq, blob FROM chunks WHERE blob BETWEEN ? AND ?");
      s->bind(1, batch.front().id).bind(2, batch.back().id);
      while (s->step()) users[s->int64(2)].emplace_back(s->int64(0), s->int64(1));
    }
    auto several = db.cached("SELECT 1 FROM chunks WHERE ino=? AND seq=1");
    auto of_several = [&](int64_t ino) {
      several->bind(1, ino);
      bool found = several->step();
      several->reset();
      return found;
    };
    struct Move {
      const Candidate* blob;
      std::string sha256;
      int64_t refs;
    };
    std::vector<Move> moves;
    auto row = db.cached("SELECT data, codec, dict_id, sha256, refs FROM blobs WHERE id=?");
    for (const Candidate& c : batch) {
      row->bind(1, c.id);
      bool same = row->step() && row->blob(0) == c.old_data && row->int64(1) == c.old_codec &&
                  (row->is_null(2) ? 0 : row->int64(2)) == c.old_dict_id;
      if (same) moves.push_back({&c, std::string(row->blob(3)), row->int64(4)});
      row->reset();
      if (!same) continue;
      for (const auto& [ino, seq] : users[c.id])
        if (seq > 0 || of_several(ino)) {
          moves.pop_back();
          break;
        }
    }
    std::vector<size_t> payloads;
    auto remove = db.cached("DELETE FROM blobs WHERE id=?");
    for (const Move& m : moves) {
      remove->bind(1, m.blob->id).run();
      payloads.push_back(blob_payload(m.blob->stored.size(), m.sha256.size(), int64_t(m.blob->raw.size()),
                                      int64_t(Codec::kZlib), m.blob->dict_id, m.refs));
    }
    auto insert = db.cached(
        "INSERT INTO blobs(sha256, raw_size, stored_size, codec, dict_id, refs, data) VALUES(?, ?, ?, ?, ?, ?, ?) "
        "RETURNING id");
    auto repoint = db.cached("UPDATE chunks SET blob=? WHERE ino=? AND seq=?");
    for (size_t i : packing_order(payloads, page_size_, max_blob_id_after(db, moves.size()))) {
      const Move& m = moves[i];
      const Candidate& c = *m.blob;
      insert->bind_blob(1, m.sha256.data(), m.sha256.size()).bind(2, int64_t(c.raw.size()));
      insert->bind(3, int64_t(c.stored.size())).bind(4, int64_t(Codec::kZlib)).bind(6, m.refs);
      insert->bind_blob(7, c.stored.data(), c.stored.size());
      if (c.dict_id) insert->bind(5, c.dict_id);
      else insert->bind_null(5);
      if (!insert->step()) throw StoreError(EIO, "blob insert returned no id");
      const int64_t moved = insert->int64(0);
      insert->reset();
      for (const auto& [ino, seq] : users[c.id]) repoint->bind(1, moved).bind(2, ino).bind(3, seq).run();
    }
    const bool more = done_through < range.last;
    if (more) {
      auto next = db.cached("INSERT OR REPLACE INTO meta(key, value) VALUES('recompress_next', ?)");
      next->bind(1, done_through + 1).run();
    } else {
      db.exec("DELETE FROM meta WHERE key IN ('recompress_next', 'recompress_last')");
      drop_unused_dictionaries(*set);
    }
    db.exec("COMMIT");
    give_back_space_if_low();
    return more;
  } catch (...) {
    sqlite3_exec(db.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

// The dictionaries no blob needs any more, once the blobs that used them
// are compressed again with `set`'s.
void StoreImpl::drop_unused_dictionaries(const DictionarySet& set) {
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

}  // namespace itemfs::store::sqlite
