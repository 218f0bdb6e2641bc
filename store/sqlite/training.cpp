// Dictionary training: once the store holds enough items, dictionaries are
// trained from them and the older blobs are compressed again with them.

#include "store/sqlite/store_impl.h"

#include <malloc.h>
#include <algorithm>
#include <array>
#include <climits>
#include <cstdio>

namespace itemfs::store::sqlite {

// Decoded blobs for training: the small ones (typical documents) in the
// order their items came (blob ids are not: see packing_order()), every
// `step`-th of them, until `max_bytes`.
std::vector<std::string> StoreImpl::training_samples(int64_t step, size_t max_bytes) {
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
void StoreImpl::maybe_train_dictionary(size_t changes) {
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
      insert->bind(1, base::now_ns()).bind_blob(2, kept.data(), kept.size());
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

// The blobs stored before the newest dictionaries are compressed again
// with them when that makes them smaller. Each goes into a new row (so the
// pages the old rows leave are free for the rows to come, not holes in
// pages nothing is appended to again; in packing_order()) and its chunks
// are pointed at it.
// Blobs of items of more than one chunk are left as they are: an open
// reader of such an item may still hold their ids.
void StoreImpl::recompress_older_blobs(const DictionarySet& set) {
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

}  // namespace itemfs::store::sqlite
