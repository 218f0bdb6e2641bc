// The SQLite implementation of the store (store/store.h): the classes behind
// Store and WriteBatch, shared by the files of store/sqlite/ and seen by no
// one else.
//
// The contract: StoreImpl is a Store over STORE/store.db (format
// kFormatVersion, docs/FORMAT.md) with one writer connection (every write
// batch, under write_mutex_) and a pool of read connections; WriteBatchImpl
// is one call of Store::write(), inside the writer's transaction, each of
// its calls in a savepoint so a refused call changes nothing. Each group of
// members below is defined in the file named above it:
//   store.cpp       opening, closing, write(), the feed's cursors, item and
//                   dir lookups
//   schema.cpp      tables, migrations from formats 1 to 3, the version check
//   space.cpp       the disk-full rules and the space reserve
//   pool.cpp        the pool of read connections (Lease)
//   encoder.cpp     the item encoder: validate, chunk, hash, compress (and
//                   compress_chunk, which picks a blob's dictionary)
//   dictionaries.cpp  reading dictionaries, the current DictionarySet
//   training.cpp    when training is due, and training dictionaries (on
//                   the trainer's thread, trainer.h)
//   recompress.cpp  compressing older blobs again with new dictionaries
//   packing.cpp     the order that fills the blobs table's pages
//   blobs.cpp       reading and checking blobs and an item's chunk list
//   write_batch.cpp put, remove, rename, attributes, directories
//   batch_blobs.cpp dedup, reference counts, blob packing, repair_blobs
//   reader.cpp      ItemReader; snapshot.cpp Snapshot and previews
//   fsck.cpp        fsck; stats.cpp stats
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/sha256.h"
#include "base/shared_sync.h"
#include "store/codec.h"
#include "store/dictionary.h"
#include "store/json_check.h"
#include "store/parallel.h"
#include "store/sqlite/db.h"
#include "store/sqlite/feed.h"
#include "store/sqlite/trainer.h"
#include "store/store.h"

namespace itemfs::store {

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

namespace sqlite {

namespace fs = std::filesystem;

// Rows of the items and dirs tables ("ino, id, size, sha256, mode, uid, gid,
// mtime_ns, ctime_ns"; "ino, name, mode, uid, gid, mtime_ns, ctime_ns"), as
// read by the statements of this backend (store.cpp).
ItemInfo item_from(Stmt& s);
DirInfo dir_from(Stmt& s);

// A chunk of an item as the write batch stores it.
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

// Everything about one blob needed to turn it back into bytes.
struct BlobRow {
  std::string data;
  uint64_t raw_size = 0;
  int codec = 0;
  int64_t dict_id = 0;
  Sha256 sha256{};
};

// packing.cpp: the order to append rows of these payload sizes (bytes) to
// a table so that they fill its pages (`max_rowid`: no row's rowid is
// larger); the payload of a blobs row; the largest blob id once `more` rows
// are added.
std::vector<size_t> packing_order(const std::vector<size_t>& payloads, size_t page_size, int64_t max_rowid);
size_t blob_payload(size_t data, size_t hash, int64_t raw_size, int64_t codec, int64_t dict_id, int64_t refs);
int64_t max_blob_id_after(Db& db, size_t more);

// blobs.cpp: the chunks of item `item.ino`, each with the hash its bytes
// must have; *problem says why the list itself is damaged.
std::vector<ReadChunk> chunk_list(Db& db, const ItemInfo& item, std::string* problem);

class StoreImpl;

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
  Status put_with_ino(std::string_view id, std::istream& content, const Attrs& attrs, int64_t ino,
                      ItemInfo* stored) override;
  int64_t reserve_inos(int64_t n) override;
  void set_journal_position(uint64_t position) override;
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
  int64_t insert_blob(const PreparedItem::Parts::Chunk& chunk, std::string_view raw, bool whole);
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
  int64_t wanted_ino_ = 0;      // put_with_ino()'s number for a new item
  std::vector<std::string> changed_;
  std::string compressed_;            // rewrite_blob()'s
  PreparedItem::Parts::Chunk encoded_;  // store_chunk()'s
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
  // store.cpp: opens (creating and migrating unless read-only) the store in
  // `dir`.
  StoreImpl(std::filesystem::path dir, Options options);
  // Stops the trainer (between two of its transactions) before the rest
  // goes.
  ~StoreImpl() override;

  const std::filesystem::path& dir() const override { return dir_; }
  const Options& options() const override { return options_; }
  Compressor& compressor() { return compressor_; }
  bool elide_blob_hashes() const { return elide_blob_hashes_; }
  size_t page_size() const { return page_size_; }
  bool has_feed() const { return has_feed_; }

  // store.cpp: writing, the feed's followers, lookups.
  void write(const std::function<void(WriteBatch&)>& fn) override;
  void wait_idle() override { trainer_.wait_idle(); }
  uint64_t last_seq() override;
  uint64_t journal_position() override;
  void add_commit_listener(CommitListener fn) override;
  uint64_t follow(std::string_view name) override;
  void advance(std::string_view name, uint64_t seq) override;
  void unfollow(std::string_view name) override;
  std::optional<uint64_t> cursor(std::string_view name) override;
  std::optional<ItemInfo> item(std::string_view id) override;
  std::optional<ItemInfo> item_by_ino(int64_t ino) override;
  std::vector<ItemInfo> list_shard(std::string_view shard) override;
  std::optional<DirInfo> dir_info(std::string_view shard) override;
  std::vector<DirInfo> list_dirs() override;
  bool changed_by_others() override;
  // The items of a shard in id order (or, with `any`, at most one of them).
  static StmtScope shard_items(Db& db, std::string_view shard, bool any);
  static std::optional<ItemInfo> find_item(Db& db, std::string_view id);

  // space.cpp: the disk-full rules. A new item of `size` bytes is refused
  // (ENOSPC) unless the disk keeps room for it twice, the WAL and
  // kSpareBytes more.
  static constexpr uint64_t kSpareBytes = 256 << 10;
  // check_room() may be called from any thread at any time (a mount asks it
  // when it accepts a write): it counts the free pages store.db had after
  // the last commit. check_room_in_batch(), inside a write transaction,
  // asks the writer connection for them as they are now.
  Status check_room(uint64_t size) const override;
  Status check_room_in_batch(uint64_t size) const;
  Status check_staging_room(uint64_t bytes) const override;
  // After every commit: checkpoints and truncates the WAL when the disk is
  // low, takes the reserve back when there is room.
  void give_back_space_if_low();
  // COMMIT, lending the space reserve to it when the disk is nearly full.
  void commit_or_use_reserve();

  // encoder.cpp: the item encoder, and the choice of a chunk's dictionary.
  // Compresses one chunk as a new blob is stored: with the dictionary of
  // `set` chosen for its bytes, raw if zlib does not shrink it. `dict_id`
  // is the dictionary the stream needs (0: none, or raw).
  static Codec compress_chunk(Compressor& compressor, const DictionarySet& set, std::string_view raw,
                              std::string& stored, int64_t& dict_id);
  PreparedItem prepare(std::string id, std::string bytes, const Attrs& attrs) override;
  // EFBIG for an item over Options::max_item_size (put and prepare alike).
  Status check_item_size(uint64_t size) const;
  int64_t current_dictionary_id() const override { return current_dictionaries()->generation(); }
  bool recompress_if_stale(PreparedItem& item) override;
  static void compress_prepared(PreparedItem::Parts& p, const DictionarySet& dictionaries);

  // dictionaries.cpp.
  // The dictionaries new blobs are compressed with (empty when none yet).
  // The writer's view: call with write_mutex_ held.
  const DictionarySet& dictionaries() const { return *dict_set_; }
  // The same from any thread.
  std::shared_ptr<const DictionarySet> current_dictionaries() const;
  // The dictionary dict_id of a zlib blob; empty for none or a missing one.
  // The view stays valid while the store is open.
  std::string_view dictionary_of(Db& db, int64_t dict_id);
  std::shared_ptr<const std::string> load_dictionary(Db& db, int64_t dict_id);
  // A dictionary's bytes from the database; nullopt if missing or damaged.
  std::optional<std::string> read_dictionary(Db& db, int64_t dict_id);
  // The ids in a comma-separated list (meta.dict_set).
  static std::vector<int64_t> parse_ids(std::string_view text);

  // blobs.cpp: reading blobs.
  // The bytes of one chunk of item `id` (the `seq`th of `count`) into
  // `out`, decoded and checked against the hash they must have.
  ChunkRead load_chunk(Db& db, const ReadChunk& chunk, std::string_view id, size_t seq, size_t count,
                       std::string& out, std::string* error, bool count_damage = true);
  void count_damaged_read() { damaged_reads_.fetch_add(1, std::memory_order_relaxed); }
  // Blob bytes, decompressed and checked against raw size; nullopt if gone.
  std::optional<std::string> load_blob(Db& db, int64_t blob_id, std::string* problem = nullptr);
  bool stream_blob(Db& db, Stmt& row, size_t first_piece, const PieceSink& sink, std::string* problem);
  static bool stream_blob_bytes(std::string_view data, uint64_t raw_size, int codec, std::string_view dictionary,
                                size_t first_piece, const PieceSink& sink, std::string* problem);
  static constexpr const char* kBlobRowSql = "SELECT data, raw_size, codec, dict_id FROM blobs WHERE id=?";
  static BlobRow blob_from(Stmt& s);
  std::optional<BlobRow> blob_row(Db& db, int64_t blob_id);
  static std::string codec_problem(int codec, size_t stored_size, uint64_t raw_size);
  std::optional<std::string> decode(Db& db, const BlobRow& row, std::string* problem);

  // reader.cpp, snapshot.cpp, fsck.cpp, stats.cpp.
  std::unique_ptr<ItemReader> open_item(const ItemInfo& item, bool lazy) override;
  std::unique_ptr<Snapshot> snapshot() override;
  FsckReport fsck(bool repair, const FsckProgress& progress) override;
  Stats stats() override;
  void sync() override;

  // pool.cpp: a pooled read connection, returned to the pool when the
  // handle dies.
  class Lease {
   public:
    Lease(StoreImpl& store, std::unique_ptr<Db> db) : store_(&store), db_(std::move(db)) {}
    Lease(Lease&& other) noexcept = default;
    ~Lease();
    Db* operator->() { return db_.get(); }
    Db& operator*() { return *db_; }

   private:
    StoreImpl* store_;
    std::unique_ptr<Db> db_;
  };
  Lease acquire();
  void release(std::unique_ptr<Db> db);

  // Shares out the work of Snapshot::read_items_until.
  HelperThread& preview_helper() { return preview_helper_; }

 private:
  std::filesystem::path db_path() const { return dir_ / "store.db"; }
  // store.cpp: one short write transaction for a follower's cursor.
  void feed_write(const std::function<void()>& fn);

  // schema.cpp.
  static void create_private(const std::filesystem::path& dir, const std::filesystem::path& db);
  void init_schema();
  bool has_unique_sha_index();
  void check_version();

  // space.cpp.
  uint64_t wal_bytes() const;
  std::optional<uint64_t> disk_free() const;
  bool checkpoint_truncate();
  std::filesystem::path reserve_path() const { return dir_ / "space-reserve"; }
  uint64_t reserve_bytes() const { return reserve_bytes_; }
  uint64_t measure_reserve_bytes() const;
  uint64_t free_page_bytes() const;  // on the writer connection: under write_mutex_
  Status room_for(uint64_t size, uint64_t free_pages) const;
  // While the reserve is given back, its space is not for new items.
  uint64_t missing_reserve() const { return reserve_held_ ? 0 : reserve_bytes(); }
  void keep_space_reserve();
  bool release_space_reserve();

  // dictionaries.cpp.
  void load_dictionary_set();
  static std::shared_ptr<const Dictionary> make_dictionary(int64_t id, std::string data);

  // training.cpp. note_changes(): write()'s share, under write_mutex_:
  // counts the changes and wakes the trainer when a check is due. The rest
  // runs on the trainer's thread (train_in_background()).
  void note_changes(size_t changes);
  void train_in_background(const Trainer& trainer);
  void maybe_train_dictionary(const Trainer& trainer);
  std::vector<std::string> training_samples(Db& db, int64_t step, size_t max_bytes);
  void store_dictionaries(const std::string& general, const std::vector<std::string>& groups, int64_t small_blobs);
  void call_training_hook(Options::TrainingStep step) const {
    if (options_.training_hook) options_.training_hook(step);
  }

  // recompress.cpp (on the trainer's thread). One batch of the older blobs
  // still to compress again (meta.recompress_next .. recompress_last), in
  // a short write transaction; false once none is left.
  bool recompress_older_blobs(const Trainer& trainer);
  bool has_recompression_pending();
  void drop_unused_dictionaries(const DictionarySet& set);

  uint64_t reserve_bytes_ = 0;
  mutable std::atomic<uint64_t> staging_allowance_ = 0;  // see check_staging_room()
  std::atomic<bool> reserve_held_ = false;  // changed under write_mutex_ (or construction)
  std::atomic<uint64_t> free_pages_after_commit_ = 0;  // free_page_bytes(), set under write_mutex_
  std::filesystem::path dir_;
  Options options_;
  // Replaced whole when one is added, so that a commit calls the list it
  // took under listeners_mutex_ without holding it.
  std::mutex listeners_mutex_;
  std::shared_ptr<const std::vector<CommitListener>> listeners_ = std::make_shared<std::vector<CommitListener>>();
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
  size_t changes_since_check_ = 0;  // under write_mutex_
  std::atomic<bool> dictionaries_final_ = false;  // no training to come (set by the trainer)
  bool dicts_coded_ = true;  // dicts has codec and raw_size (not in format 1)
  bool elide_blob_hashes_ = false;  // a one-chunk item's new blob is stored without its hash
  std::atomic<uint64_t> damaged_reads_{0};
  base::SharedSync sync_group_;  // sync(): one sync for every caller waiting
  size_t page_size_ = 4096;  // of store.db
  std::optional<int64_t> seen_data_version_;  // under write_mutex_
  HelperThread preview_helper_;  // its thread ends before the rest goes
  // Last: stopped (by ~StoreImpl) before anything it uses goes.
  Trainer trainer_{[this](const Trainer& trainer) { train_in_background(trainer); }};
};



}  // namespace sqlite
}  // namespace itemfs::store
