// itemfs store: a content-addressed, zlib-compressed collection of JSON items
// in one SQLite database.
//
// The contract:
//  - An item is an id (UTF-8, no '/', no NUL, at most 250 bytes so that
//    "<id>.json" fits NAME_MAX) mapped to bytes that are one valid JSON document
//    (RFC 8259), plus mode, owner and times. Bytes are kept exactly as written.
//  - Content is split into chunks (one per item up to kChunkSize); each
//    distinct chunk (by SHA-256) is stored once as a blob, reference-counted by
//    the items that use it. A blob that does not shrink under zlib is kept raw.
//  - Every change goes through Store::write(), which runs one SQLite
//    transaction: either all of a batch lands or none of it. Readers (any
//    thread, any number) see the state before or after, never a mix.
//  - Every change of an item gets a sequence number in the same transaction
//    (the change feed): what is derived from the items (the search index)
//    follows the feed, outside the store's transactions (ChangeList,
//    Snapshot::changes_since, add_commit_listener, follow).
//  - Every method is thread-safe. Writers are serialised; readers never wait
//    for writers (WAL). "database is locked" never escapes: busy waits are
//    retried internally.
//  - Errors that a caller must act on are returned as Status (an errno and a
//    sentence). Unexpected SQLite or I/O failures throw StoreError.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <istream>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/sha256.h"
#include "base/status.h"

namespace itemfs::store {

inline constexpr uint64_t kChunkSize = 1 << 20;
inline constexpr int kFormatVersion = 4;

// Status, errors and SHA-256 are base's (base/status.h, base/sha256.h); the
// store's names for them stay, so callers say store::Status as before.
using Status = base::Status;
using StoreError = base::Error;
using Sha256 = base::Sha256;
using base::to_hex;

// An mtime that means "the time of the write". Not 0: the epoch is a real
// mtime (tar archives and rsync carry it) that a restore must give back.
inline constexpr int64_t kMtimeNow = std::numeric_limits<int64_t>::min();

// Attributes a writer controls.
struct Attrs {
  uint32_t mode = 0100644;  // including S_IFREG / S_IFDIR
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime_ns = kMtimeNow;
};

struct ItemInfo {
  int64_t ino = 0;  // stable for the life of the item, kept across rename
  std::string id;
  uint64_t size = 0;
  Attrs attrs;
  int64_t ctime_ns = 0;
  Sha256 sha256{};
};

// A shard directory under items/ ("" is items/ itself).
struct DirInfo {
  int64_t ino = 0;
  std::string name;
  Attrs attrs;
  int64_t ctime_ns = 0;
};

struct Stats {
  uint64_t items = 0;
  uint64_t logical_bytes = 0;  // sum of item sizes
  uint64_t unique_bytes = 0;   // sum of raw sizes of distinct blobs
  uint64_t stored_bytes = 0;   // sum of stored (compressed) blob sizes
  uint64_t blobs = 0;
  uint64_t database_bytes = 0;  // store.db + WAL on disk
  // Reads by this process that found an item's stored bytes damaged (not
  // decodable, or not the bytes its SHA-256 names) and failed with EIO.
  uint64_t damaged_reads = 0;
  // Syncs this process's sync() made to disk (callers that arrived while one
  // ran shared the next).
  uint64_t syncs = 0;
  double dedup_ratio() const { return unique_bytes ? double(logical_bytes) / double(unique_bytes) : 1.0; }
  double compression_ratio() const { return stored_bytes ? double(unique_bytes) / double(stored_bytes) : 1.0; }
};

// Shard of an id: its first two code points; "00" for one-code-point ids.
std::string shard_of(std::string_view id);
// An item's path in the mount and in backup archives and exports:
// items/<shard_of(id)>/<id>.json.
std::string item_path(std::string_view id);
// Why an id cannot name an item (EINVAL / ENAMETOOLONG), or success.
Status check_id(std::string_view id);
// Validates one JSON document read from `in`. On failure the message says
// line, column and what was expected. Memory use does not grow with nesting.
Status validate_json(std::istream& in);

// What is wrong with the access modes of the store at `dir` (a directory or
// store.db open to group or others, who could read every item from the
// database), as one sentence; "" when nothing. Stores are created 0700.
std::string permissions_warning(const std::filesystem::path& dir);

// The change feed (docs/FORMAT.md, "The change feed"): every change of an
// item gets a sequence number, 1, 2, ..., in the transaction that makes it.
enum class ChangeKind : uint8_t {
  kPut = 1,     // created or replaced (new bytes or attributes)
  kRemove = 2,  // gone (removed, or renamed over)
  kRename = 3,  // id changed (to `id` from `old_id`); bytes and attributes kept
  kAttrs = 4,   // mode, owner or mtime changed; bytes kept
};

struct Change {
  uint64_t seq = 0;
  ChangeKind kind = ChangeKind::kPut;
  int64_t ino = 0;     // the item (ItemInfo::ino), kept across rename
  std::string id;      // its id after the change
  std::string old_id;  // kRename: its id before
};

struct ChangeList {
  std::vector<Change> changes;  // oldest first
  // False when changes after the asked sequence are no longer kept (the
  // asker is not a registered follower, or fell behind what the feed
  // keeps): it must start again from the items.
  bool complete = true;
  uint64_t last_seq = 0;  // the newest sequence number in this view
};

// An item made ready to store by Store::prepare(): id and size checked,
// JSON validated, content hashed, cut into chunks and compressed, all
// outside the write transaction. Opaque:
// only the store reads its parts.
class PreparedItem {
 public:
  PreparedItem();
  ~PreparedItem();
  PreparedItem(PreparedItem&&) noexcept;
  PreparedItem& operator=(PreparedItem&&) noexcept;
  const std::string& id() const;
  uint64_t size() const;
  // Success, or why put_prepared() will refuse it (bad id, too large,
  // invalid JSON); a full disk is found only by put_prepared().
  Status status() const;
  // The dictionaries its chunks were compressed with: what
  // Store::current_dictionary_id() was then (0: none).
  int64_t dictionary_id() const;
  // Makes put_prepared() store nothing, and return EALREADY ("unchanged"),
  // when the item of this id has these bytes and these attributes already
  // (mode, owner, and the mtime unless it is kMtimeNow). Decided inside the
  // write, so an earlier put of the same batch or run counts.
  void skip_if_unchanged();
  // After put_prepared() of an item marked so: whether an item of its id
  // was there (and was replaced, or was found unchanged).
  bool replaced() const;
  struct Parts;  // defined by the store
  Parts& parts() { return *parts_; }

 private:
  std::unique_ptr<Parts> parts_;
};

// One write transaction. Methods returning Status leave the batch usable on
// failure (nothing of that call was applied); the batch commits when the
// callback passed to Store::write() returns.
class WriteBatch {
 public:
  virtual ~WriteBatch() = default;
  // Stores `content` as item `id` (creating or replacing it), validating it
  // first. attrs.mtime_ns == kMtimeNow means now.
  // `stored`, if given, gets the item as stored (ino, size, hash, times).
  virtual Status put(std::string_view id, std::istream& content, const Attrs& attrs,
                     ItemInfo* stored = nullptr) = 0;
  // The same for an item made by Store::prepare() (of this store): the same
  // rows, blobs and changes as put() of its bytes, with the same Status.
  // New blobs keep the compression (and dictionary id) it was prepared with.
  virtual Status put_prepared(PreparedItem& item) = 0;
  virtual Status remove(std::string_view id) = 0;                           // ENOENT
  virtual Status rename(std::string_view from, std::string_view to) = 0;  // replaces `to`
  virtual Status set_attrs(std::string_view id, const Attrs& attrs) = 0;
  virtual Status make_dir(std::string_view shard, const Attrs& attrs) = 0;  // EEXIST
  virtual Status remove_dir(std::string_view shard) = 0;                  // ENOTEMPTY
  virtual Status set_dir_attrs(std::string_view shard, const Attrs& attrs) = 0;
  // Rewrites, from `bytes` (a good copy of some content, e.g. from a backup),
  // every stored blob of that content's chunks that fails its check (does not
  // decode, or decodes to other bytes than its hash names), so that every
  // item using them reads right again. *rewritten (if not null) counts the
  // blobs rewritten; none rewritten is not an error. EINVAL if `bytes` is not
  // one valid JSON document. No item's row changes.
  virtual Status repair_blobs(std::string_view bytes, uint64_t* rewritten) = 0;
  // Ids whose content or existence changed in this batch so far.
  virtual const std::vector<std::string>& changed_ids() const = 0;

  // For a writer that hands out items before it stores them (the journal of
  // accepted writes, store/accepting_store.h):
  // put() that gives a new item number `ino` (from reserve_inos()) when the
  // item is new and no item has that number. For bytes already checked to
  // be one valid JSON document: an item of one chunk is not checked again.
  virtual Status put_with_ino(std::string_view id, std::istream& content, const Attrs& attrs, int64_t ino,
                              ItemInfo* stored) = 0;
  // Reserves `n` item numbers that no item will be given but by
  // put_with_ino(); returns the first (they are consecutive).
  virtual int64_t reserve_inos(int64_t n) = 0;
  // Records, with this batch, how far the journal has been applied
  // (Store::journal_position()).
  virtual void set_journal_position(uint64_t position) = 0;
};

// A consistent read view: everything read through it is one point in time.
class Snapshot {
 public:
  virtual ~Snapshot() = default;
  virtual std::optional<ItemInfo> item(std::string_view id) = 0;
  virtual std::optional<ItemInfo> item_by_ino(int64_t ino) = 0;
  // The sequence number of the last change this view holds (0: none yet).
  virtual uint64_t seq() = 0;
  // The changes after `after` in this view, oldest first, at most `limit`.
  virtual ChangeList changes_since(uint64_t after, size_t limit) = 0;
  // The bytes change `seq` took away (a put that replaced an item's
  // content, a remove), into `out`, if the feed kept them: it does while a
  // follower is registered, for items of up to 4 MiB, until the change is
  // trimmed. For a follower that must undo what it derived from them.
  // Not checked against a hash (the caller knows the hash it expects).
  virtual bool read_replaced(uint64_t seq, std::string& out) = 0;
  // All items in storage order (which reads the store front to back, faster
  // than id order); one ItemInfo is reused from item to item.
  virtual void scan_items(const std::function<void(const ItemInfo&)>& fn) = 0;
  // All items in id order.
  virtual void for_each_item(const std::function<void(const ItemInfo&)>& fn) = 0;
  // Streams the item's bytes to `sink` in order (at most kChunkSize at a
  // time), each chunk checked against its hash before it is handed on: a
  // damaged item is a StoreError(EIO) naming it.
  virtual void read_item(const ItemInfo& item, const std::function<void(std::string_view)>& sink) = 0;
  // The start of several items, for previews (search snippets) that may not
  // need all of each: item k's bytes go to sink.piece(thread, k, bytes) in
  // pieces (kFirstPiece, then each piece twice the last) until it returns
  // false, and what comes after is never read; then sink.done(thread, k),
  // once for every item (unless an error ends the call: an unreadable item
  // is a StoreError naming it). Items are worked on by up to `threads` threads at
  // once (this one is thread 0): one item's calls never overlap and come in
  // order, and `thread` says which thread makes the call, so per-thread
  // scratch space may be used in it. Blob checksums cover whole blobs and
  // are not verified here (a preview reads part of a chunk): damage that
  // inflating does not find shows as wrong text in the preview only
  // (read_item, ItemReader and fsck find it).
  class PreviewSink {
   public:
    virtual ~PreviewSink() = default;
    virtual bool piece(size_t thread, size_t item, std::string_view bytes) = 0;
    virtual void done(size_t thread, size_t item) = 0;
  };
  virtual void read_items_until(const std::vector<ItemInfo>& items, size_t threads, PreviewSink& sink) = 0;
  // Stored bytes of items' first chunks read ahead by read_items_until: the
  // items after are read on the calling thread.
  static constexpr size_t kPreviewReadAhead = 8u << 20;
  static constexpr size_t kFirstPiece = 1024;
};

class ItemReader {
 public:
  virtual ~ItemReader() = default;
  // Replaces `out` with up to `size` bytes from `offset` (fewer at the end).
  // Safe to call from several threads at once.
  virtual Status pread(uint64_t offset, uint64_t size, std::string& out) = 0;
};

struct Options {
  uint64_t max_item_size = 64ull << 20;  // EFBIG above
  bool sync_full = false;                // PRAGMA synchronous=FULL instead of NORMAL
  bool read_only = false;
  // Train zlib dictionaries from the first few thousand items, and again
  // from more of them (see FORMAT.md): after this many blobs of up to 64 KiB.
  bool train_dictionary = true;
  int64_t train_dictionary_after = 2000, train_dictionary_again_after = 20000;
  // Training runs in the background, after the write that made it due has
  // returned (see Store::wait_idle()). For tests: called on that background
  // thread before it trains (kTrain) and before each batch of older blobs it
  // compresses again (kRecompress), to hold the work there; what it throws
  // ends that run as a failed training would (logged; the rest left to do).
  enum class TrainingStep { kTrain, kRecompress };
  std::function<void(TrainingStep)> training_hook;
  // Accept writes through accept() into a journal (STORE/journal) and commit
  // them in groups on a thread of the store (store/accepting_store.h); for
  // the mount. Every writable open applies what a journal left behind
  // (unless the process that owns it is still running).
  bool journal = false;
};

struct FsckReport {
  std::vector<std::string> problems;  // one readable line each
  uint64_t blobs_checked = 0;
  uint64_t items_checked = 0;
  uint64_t repaired = 0;
  // Ids of the items whose content failed its check (each also has a line
  // in `problems`): what a good copy, e.g. from a backup, can repair.
  std::vector<std::string> damaged_items;
  bool clean() const { return problems.empty(); }
};

class Store {
 public:
  // Opens (creating if needed) the store directory `dir` holding store.db.
  static std::unique_ptr<Store> open(const std::filesystem::path& dir, const Options& options = {});
  virtual ~Store() = default;

  virtual const std::filesystem::path& dir() const = 0;
  virtual const Options& options() const = 0;

  // Does the work of WriteBatch::put() that needs no database (see
  // PreparedItem) with the dictionary current now. Thread-safe, never waits
  // for writers; for several threads to prepare while one writes.
  virtual PreparedItem prepare(std::string id, std::string bytes, const Attrs& attrs) = 0;
  // Compresses `item` again if the store's dictionaries have changed since
  // it was prepared (they are trained after the first few thousand items),
  // so that it is stored as put() would store it now. True if it did.
  virtual bool recompress_if_stale(PreparedItem& item) = 0;
  // Names the dictionaries new blobs are compressed with now (each chunk
  // with the one that fits it best): the id of the newest (0: none yet).
  virtual int64_t current_dictionary_id() const = 0;

  // Stores `content` as item `id` for a writer through the mount: like a
  // write() of one put(), with its checks and refusals (EINVAL, EFBIG,
  // ENOSPC, a bad id). A store opened with Options::journal returns once the
  // write is accepted (checked, and recorded in its journal) and commits it
  // with others a moment later: from the return on, every read of this
  // store object sees the new version, and a crash of the process loses
  // nothing (the journal is applied by whoever opens the store next).
  // `stored` gets the item as it will be stored.
  virtual Status accept(std::string_view id, std::istream& content, const Attrs& attrs, ItemInfo* stored);
  // How far this store's journal has been applied (0: never).
  virtual uint64_t journal_position() = 0;

  // Runs `fn` in one write transaction and commits it, retrying on busy.
  // If `fn` throws, nothing is applied and the exception propagates.
  // What a write makes due (training the dictionaries, compressing the
  // blobs stored before them again) is done in the background, after it.
  virtual void write(const std::function<void(WriteBatch&)>& fn) = 0;
  // Waits until the background work due so far is done (or the store is
  // closing): for a tool to wait for before it reports what it stored and
  // exits. Closing the store does not wait: it stops that work between two
  // of its transactions; the store opened next goes on compressing where it
  // stopped, and a training it dropped is due again after more writes.
  virtual void wait_idle() = 0;

  // The change feed. last_seq(): the newest sequence number committed (by
  // any process). A commit listener is called after each commit of this
  // process that recorded changes, outside the transaction and the store's
  // locks, with the batch's last sequence number: it must be quick (wake a
  // thread). A listener may be added at any time, from any thread; it hears
  // every commit that begins after it was added. `fn` lives as long as the store.
  virtual uint64_t last_seq() = 0;
  using CommitListener = std::function<void(uint64_t seq)>;
  virtual void add_commit_listener(CommitListener fn) = 0;
  // Followers: a name and the last sequence it applied. The feed keeps every
  // change after the slowest follower's cursor and drops the rest, so a
  // store whose followers keep up holds no feed. follow() registers `name`
  // (at last_seq(), if new) and returns its cursor; advance() moves it on
  // (never back: a smaller seq is ignored); unfollow() forgets it. On a
  // read-only store nothing is recorded and follow() returns last_seq().
  virtual uint64_t follow(std::string_view name) = 0;
  virtual void advance(std::string_view name, uint64_t seq) = 0;
  virtual void unfollow(std::string_view name) = 0;
  // The cursor of follower `name`, if registered.
  virtual std::optional<uint64_t> cursor(std::string_view name) = 0;

  // Point reads, each its own read transaction.
  virtual std::optional<ItemInfo> item(std::string_view id) = 0;
  virtual std::optional<ItemInfo> item_by_ino(int64_t ino) = 0;
  virtual std::vector<ItemInfo> list_shard(std::string_view shard) = 0;
  virtual std::optional<DirInfo> dir_info(std::string_view shard) = 0;
  virtual std::vector<DirInfo> list_dirs() = 0;  // shard dirs, not ""
  // A reader of one version of an item: the chunk list is fixed when it is
  // opened, so it never mixes versions; ESTALE if that version was removed.
  // With `lazy`, nothing is read (or checked) until the first pread: for a
  // reader that will likely never read, e.g. the kernel still caches it.
  // Every chunk is checked against its hash when it is read (one chunk's
  // hash per chunk read, never the whole item's): pread of damaged content
  // is EIO with a sentence naming the item.
  virtual std::unique_ptr<ItemReader> open_item(const ItemInfo& item, bool lazy = false) = 0;
  virtual std::unique_ptr<Snapshot> snapshot() = 0;

  // ENOSPC unless `bytes` more on the store's disk (staging files, which
  // live there) would leave what the store keeps back for its log and
  // checkpoint (see FORMAT.md, "A full disk").
  virtual Status check_staging_room(uint64_t bytes) const = 0;
  // ENOSPC unless committing `bytes` more of new items would leave that
  // room too (what put() checks before it stores an item).
  virtual Status check_room(uint64_t bytes) const = 0;

  virtual Stats stats() = 0;
  // Makes every change committed before the call durable: it survives a
  // power loss as far as the disk honours flushes (a commit alone survives
  // the process being killed). Callers that arrive while a sync runs share
  // the next one, so concurrent writers that each fsync share syncs. Throws
  // StoreError with the disk's error. Nothing to do for a read-only store, or
  // where every commit is synced already (Options::sync_full).
  virtual void sync() = 0;
  // Whether another process (an `itemfs import`, a second mount) committed
  // to the store since the last call. The first call only takes note.
  virtual bool changed_by_others() = 0;
  // `progress`, if given, is called now and then with the blobs and items
  // checked so far and their total.
  using FsckProgress = std::function<void(uint64_t done, uint64_t total)>;
  virtual FsckReport fsck(bool repair, const FsckProgress& progress = {}) = 0;
  // Every item of `snap`, in no particular order (store/backup_scan.cpp).
  static void scan_items(Snapshot& snap, const std::function<void(const ItemInfo&)>& fn);
  // The version of the database library the store runs with ("3.40.1").
  static std::string engine_version();
};

}  // namespace itemfs::store
