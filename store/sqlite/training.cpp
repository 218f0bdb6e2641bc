// Dictionary training: once the store holds enough items, dictionaries are
// trained from them, away from the writers. A write only counts its changes
// (note_changes()) and wakes the trainer (trainer.h) when a check is due;
// on the trainer's thread the check and the samples are read through a
// read connection, the dictionaries trained with no lock held, and only
// storing them takes the writer, for one short transaction. The blobs
// stored before are then compressed again in batches (recompress.cpp).

#include "store/sqlite/store_impl.h"

#include <malloc.h>
#include <algorithm>

namespace itemfs::store::sqlite {

// Every 256 changes, the trainer checks whether it is time to train.
void StoreImpl::note_changes(size_t changes) {
  if (options_.read_only || !options_.train_dictionary || dictionaries_final_.load()) return;
  changes_since_check_ += changes;
  if (changes_since_check_ < 256) return;
  changes_since_check_ = 0;
  trainer_.wake();
}

// One run of the trainer: training if it is due, then what is left of
// compressing the older blobs again, a batch at a time, until the store
// closes.
void StoreImpl::train_in_background(const Trainer& trainer) {
  if (options_.train_dictionary && !dictionaries_final_.load()) maybe_train_dictionary(trainer);
  while (!trainer.stopping() && recompress_older_blobs(trainer)) {
  }
  // Training took tens of megabytes for a moment (samples, groups): give
  // them back, or they stay in the daemon's resident size for good.
  malloc_trim(0);
}

// Decoded blobs for training, read through `db`: the small ones (typical
// documents) in the order their items came (blob ids are not: see
// packing_order()), every `step`-th of them, until `max_bytes`.
std::vector<std::string> StoreImpl::training_samples(Db& db, int64_t step, size_t max_bytes) {
  std::vector<std::string> samples;
  size_t sampled_bytes = 0;
  Stmt s(db.handle(),
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
    if (auto bytes = decode(db, row, nullptr)) {
      sampled_bytes += bytes->size();
      samples.push_back(std::move(*bytes));
    }
  }
  return samples;
}

// The bytes of decoded samples the group dictionaries are trained from.
// They, and what training makes of them, are held while the import goes
// on: at 16 MiB the second training took an import of the benchmark corpus
// from about 80 to 110 MiB for the half minute it ran.
constexpr size_t kGroupSampleBytes = 8u << 20;

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
// The counts and the samples are one read transaction of a pooled reader
// connection, so no writer waits for them.
void StoreImpl::maybe_train_dictionary(const Trainer& trainer) {
  const int64_t kTrainAfterItems = options_.train_dictionary_after,
                kTrainAgainAfterItems = options_.train_dictionary_again_after;
  constexpr size_t kMaxGroupDictionaries = 127;
  const bool again = !current_dictionaries()->empty();
  int64_t small_blobs = 0;
  std::vector<std::string> general_samples, group_samples;
  {
    Lease reader = acquire();
    reader->exec("BEGIN");  // ended (rolled back) when the lease goes back
    if (again) {
      auto trained = reader->cached("SELECT value FROM meta WHERE key='dict_trained_blobs'");
      const bool once = trained->step() && trained->int64(0) < kTrainAgainAfterItems;
      trained->reset();
      if (!once) {
        dictionaries_final_ = true;
        return;
      }
      // Cheap first: the items, counted from their smallest index.
      auto items = reader->cached("SELECT count(*) FROM items");
      items->step();
      const int64_t n = items->int64(0);
      items->reset();
      if (n < kTrainAgainAfterItems) return;
    }
    auto count = reader->cached("SELECT count(*) FROM blobs WHERE raw_size <= 65536");
    count->step();
    small_blobs = count->int64(0);
    count->reset();
    if (small_blobs < (again ? kTrainAgainAfterItems : kTrainAfterItems)) return;
    if (trainer.stopping()) return;
    // The general one: samples spread evenly over what is stored.
    general_samples = training_samples(*reader, std::max<int64_t>(1, small_blobs / 200), 64u << 10);
    // The groups' samples, the most memory training holds (see
    // kGroupSampleBytes).
    group_samples = training_samples(*reader, 1, kGroupSampleBytes);
  }
  if (trainer.stopping()) return;
  call_training_hook(Options::TrainingStep::kTrain);
  std::string general = train_dictionary(general_samples);
  general_samples = {};
  if (general.size() < 1024) return;
  std::vector<std::string> groups = train_group_dictionaries(group_samples, general, kMaxGroupDictionaries);
  group_samples = {};
  // A store closing drops what it trained: the next check trains again.
  if (trainer.stopping()) return;
  store_dictionaries(general, groups, small_blobs);
}

// One short write transaction: the new dictionaries, the set that names
// them, and the range of older blobs to compress again with them
// (meta.recompress_next and recompress_last: every blob there is now);
// then new blobs choose from the new set.
void StoreImpl::store_dictionaries(const std::string& general, const std::vector<std::string>& groups,
                                   int64_t small_blobs) {
  std::lock_guard lock(write_mutex_);
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
    writer_->exec(
        "INSERT OR REPLACE INTO meta(key, value) VALUES('recompress_next', 0);"
        "INSERT OR REPLACE INTO meta(key, value) SELECT 'recompress_last', coalesce(max(id), 0) FROM blobs");
    writer_->exec("COMMIT");
    std::lock_guard current_lock(current_dict_mutex_);
    dict_set_ = std::move(set);
  } catch (...) {
    sqlite3_exec(writer_->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

}  // namespace itemfs::store::sqlite
