// Snapshot: one read transaction over the store (items, the change feed,
// the bytes a change replaced) and previews of many items on threads.

#include "store/sqlite/store_impl.h"

#include <atomic>
#include <cerrno>

namespace itemfs::store::sqlite {

namespace {

class SnapshotImpl final : public Snapshot {
 public:
  SnapshotImpl(StoreImpl& store, StoreImpl::Lease lease) : store_(store), lease_(std::move(lease)) {
    lease_->exec("BEGIN");
    // The snapshot starts at the first read, so read now.
    auto s = lease_->cached("SELECT count(*) FROM meta");
    s->step();
  }
  ~SnapshotImpl() override { sqlite3_exec(lease_->handle(), "COMMIT", nullptr, nullptr, nullptr); }

  std::optional<ItemInfo> item(std::string_view id) override { return StoreImpl::find_item(*lease_, id); }
  std::optional<ItemInfo> item_by_ino(int64_t ino) override {
    auto s = lease_->cached("SELECT ino, id, size, sha256, mode, uid, gid, mtime_ns, ctime_ns FROM items WHERE ino=?");
    s->bind(1, ino);
    if (!s->step()) return std::nullopt;
    return item_from(*s);
  }
  uint64_t seq() override { return feed::last_seq(*lease_); }
  bool read_replaced(uint64_t seq, std::string& out) override {
    out.clear();
    if (!store_.has_feed()) return false;
    auto parts = feed::old_parts(*lease_, seq);
    if (parts.empty()) return false;
    for (auto& part : parts) {
      BlobRow row;
      row.data = std::move(part.data);
      row.raw_size = part.raw_size;
      row.codec = part.codec;
      row.dict_id = part.dict_id;
      std::string problem;
      auto bytes = store_.decode(*lease_, row, &problem);
      if (!bytes || bytes->size() != part.raw_size) return false;
      out += *bytes;
    }
    return true;
  }
  ChangeList changes_since(uint64_t after, size_t limit) override {
    if (!store_.has_feed()) {
      ChangeList none;
      none.complete = false;
      return none;
    }
    return feed::changes_since(*lease_, after, limit);
  }

  void scan_items(const std::function<void(const ItemInfo&)>& fn) override {
    // Table (rowid) order reads the table's pages once, front to back; id
    // order would walk the id index and look each row up in the table.
    Stmt s(lease_->handle(), "SELECT ino, id, size, sha256, mode, uid, gid, mtime_ns, ctime_ns FROM items");
    ItemInfo info;  // reused: the id keeps its buffer from row to row
    while (s.step()) {
      fill_item(s, info);
      fn(info);
    }
  }

  void for_each_item(const std::function<void(const ItemInfo&)>& fn) override {
    // Its own statement: `fn` may use the cached ones (read_item) meanwhile.
    Stmt s(lease_->handle(),
           "SELECT ino, id, size, sha256, mode, uid, gid, mtime_ns, ctime_ns FROM items ORDER BY id");
    while (s.step()) fn(item_from(s));
  }

  void read_item(const ItemInfo& item, const std::function<void(std::string_view)>& sink) override {
    std::string bytes, error, problem;
    auto chunks = chunk_list(*lease_, item, &problem);
    if (!problem.empty()) {
      store_.count_damaged_read();
      throw StoreError(EIO, "item " + item.id + " is damaged: " + problem);
    }
    for (size_t i = 0; i < chunks.size(); ++i) {
      switch (store_.load_chunk(*lease_, chunks[i], item.id, i, chunks.size(), bytes, &error)) {
        case ChunkRead::kOk:
          sink(bytes);
          break;
        case ChunkRead::kGone:
          throw StoreError(EIO, "item " + item.id + ": a blob it uses is missing");
        case ChunkRead::kDamaged:
          throw StoreError(EIO, error);
      }
    }
  }

  void read_items_until(const std::vector<ItemInfo>& items, size_t threads, PreviewSink& sink) override {
    // One connection is for one thread at a time, so the blob row of every
    // item of one chunk is read here, then inflated and handed to the sink
    // on `threads` threads (inflating and what the sink does with the bytes
    // are most of the time). Items of several chunks are read here
    // afterwards, one at a time: a sink may hold much of an item's text
    // until its end.
    struct Start {
      BlobRow row;
      std::string_view dictionary;
      bool read = false;   // its row is in `row` (an item of no chunks has none)
      bool later = false;  // it is read afterwards
      std::string problem;
    };
    std::vector<Start> starts(items.size());
    // The rows are copies, kPreviewReadAhead of them at most (a hundred
    // items of a chunk each would be 100 MB); the items after are read
    // afterwards.
    size_t copied = 0;
    {
      auto s = lease_->cached(
          "SELECT b.data, b.raw_size, b.codec, b.dict_id FROM chunks c LEFT JOIN blobs b ON b.id = c.blob "
          "WHERE c.ino = ? ORDER BY c.seq LIMIT 2");
      for (size_t k = 0; k < items.size(); ++k) {
        if (copied >= kPreviewReadAhead || items[k].size > kChunkSize) {
          starts[k].later = true;
          continue;
        }
        s->bind(1, items[k].ino);
        if (s->step()) {
          Start& start = starts[k];
          start.read = true;
          if (s->is_null(0)) {
            start.problem = "no such blob";
          } else {
            start.row = StoreImpl::blob_from(*s);
            copied += start.row.data.size();
            if (start.row.codec == int(Codec::kZlib)) start.dictionary = store_.dictionary_of(*lease_, start.row.dict_id);
          }
          if (s->step()) start = Start{.later = true};  // several chunks after all
        }
        s->reset();
      }
    }
    std::atomic<size_t> next{0};
    const std::function<void(size_t)> work = [&](size_t thread) {
      for (size_t k = next++; k < items.size(); k = next++) {
        Start& start = starts[k];
        if (start.later) continue;
        if (start.read) {
          auto piece = [&](std::string_view bytes) { return sink.piece(thread, k, bytes); };
          StoreImpl::stream_blob_bytes(start.row.data, start.row.raw_size, start.row.codec, start.dictionary,
                                       kFirstPiece, piece, &start.problem);
          start.row.data = std::string();
        }
        if (start.problem.empty()) sink.done(thread, k);
      }
    };
    if (threads > 1 && items.size() > 1) {
      store_.preview_helper().share(work);
    } else {
      work(0);
    }
    for (size_t k = 0; k < items.size(); ++k) {
      const Start& start = starts[k];
      if (!start.problem.empty()) throw StoreError(EIO, "item " + items[k].id + ": blob unreadable: " + start.problem);
      if (!start.later) continue;
      read_chunks(items[k], [&](std::string_view bytes) { return sink.piece(0, k, bytes); });
      sink.done(0, k);
    }
  }

 private:
  // The item's chunks, to `sink` until it returns false.
  void read_chunks(const ItemInfo& item, const std::function<bool(std::string_view)>& sink) {
    // Each chunk's blob row with it: one statement per item, not two.
    auto s = lease_->cached(
        "SELECT b.data, b.raw_size, b.codec, b.dict_id FROM chunks c LEFT JOIN blobs b ON b.id = c.blob "
        "WHERE c.ino = ? ORDER BY c.seq");
    s->bind(1, item.ino);
    while (s->step()) {
      std::string problem;
      bool more = true;
      if (!store_.stream_blob(*lease_, *s, kFirstPiece, [&](std::string_view piece) { return more = sink(piece); },
                              &problem)) {
        throw StoreError(EIO, "item " + item.id + ": blob unreadable: " + problem);
      }
      if (!more) return;
    }
  }

  StoreImpl& store_;
  StoreImpl::Lease lease_;
};

}  // namespace

std::unique_ptr<Snapshot> StoreImpl::snapshot() { return std::make_unique<SnapshotImpl>(*this, acquire()); }

}  // namespace itemfs::store::sqlite
