// ItemReader: an open item's bytes, read a chunk at a time, each checked
// against its hash (Store::open_item).

#include "store/sqlite/store_impl.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>

namespace itemfs::store::sqlite {

namespace {

class ItemReaderImpl final : public ItemReader {
 public:
  // A reader of the chunks of item `id`, the first one already read into
  // `first_chunk`, or found damaged (`first_damage`).
  ItemReaderImpl(StoreImpl& store, std::string id, std::vector<ReadChunk> chunks, std::string first_chunk,
                 std::string first_damage)
      : store_(store),
        id_(std::move(id)),
        chunks_(std::move(chunks)),
        cached_index_(first_damage.empty() ? 0 : SIZE_MAX),
        cached_(std::move(first_chunk)),
        first_damage_(std::move(first_damage)) {}
  // A lazy reader: nothing is read until the first pread, which checks that
  // `item` is still the stored version.
  ItemReaderImpl(StoreImpl& store, ItemInfo item) : store_(store), id_(item.id), lazy_item_(std::move(item)) {}

  // The kernel reads ahead with several requests at once on one handle.
  Status pread(uint64_t offset, uint64_t size, std::string& out) override {
    std::lock_guard lock(mutex_);
    out.clear();
    // A lazy reader finds its chunks and reads them in one read transaction:
    // blob ids can change (see recompress_older_blobs()).
    std::optional<StoreImpl::Lease> resolved;
    if (lazy_item_) {
      resolved.emplace(store_.acquire());
      Db& reader = **resolved;
      reader.exec("BEGIN");
      auto current = StoreImpl::find_item(reader, lazy_item_->id);
      bool same = current && current->ino == lazy_item_->ino && current->sha256 == lazy_item_->sha256;
      if (!same) return Status::error(ESTALE, "this version of the item is gone");
      std::string problem;
      chunks_ = chunk_list(reader, *current, &problem);
      lazy_item_.reset();
      if (!problem.empty()) {
        store_.count_damaged_read();
        first_damage_ = "item " + id_ + " is damaged: " + problem;
        chunks_.clear();
      }
    }
    if (!first_damage_.empty() && chunks_.empty()) return Status::error(EIO, first_damage_);
    uint64_t chunk_start = 0;
    for (size_t i = 0; i < chunks_.size() && out.size() < size; ++i) {
      uint64_t chunk_end = chunk_start + chunks_[i].raw_size;
      if (offset < chunk_end) {
        if (cached_index_ != i) {
          if (i == 0 && !first_damage_.empty()) return Status::error(EIO, first_damage_);
          std::optional<StoreImpl::Lease> own;
          if (!resolved) own.emplace(store_.acquire());
          std::string error;
          switch (store_.load_chunk(resolved ? **resolved : **own, chunks_[i], id_, i, chunks_.size(), cached_,
                                    &error)) {
            case ChunkRead::kOk:
              break;
            case ChunkRead::kGone:
              cached_index_ = SIZE_MAX;
              return Status::error(ESTALE, "this version of the item is gone");
            case ChunkRead::kDamaged:
              cached_index_ = SIZE_MAX;
              return Status::error(EIO, error);
          }
          cached_index_ = i;
        }
        uint64_t from = std::max(offset, chunk_start) - chunk_start;
        uint64_t take = std::min<uint64_t>(size - out.size(), cached_.size() - from);
        out.append(cached_, size_t(from), size_t(take));
        offset = chunk_start + from + take;
      }
      chunk_start = chunk_end;
    }
    return Status::success();
  }

 private:
  StoreImpl& store_;
  std::string id_;
  std::vector<ReadChunk> chunks_;
  std::mutex mutex_;
  size_t cached_index_ = SIZE_MAX;
  std::string cached_;
  std::string first_damage_;  // why the first chunk could not be read at open
  std::optional<ItemInfo> lazy_item_;
};

}  // namespace

std::unique_ptr<ItemReader> StoreImpl::open_item(const ItemInfo& item, bool lazy) {
  if (lazy) return std::make_unique<ItemReaderImpl>(*this, item);
  auto reader = acquire();
  reader->exec("BEGIN");
  auto current = find_item(*reader, item.id);
  std::vector<ReadChunk> chunks;
  std::string first, damage;
  bool same = current && current->ino == item.ino && current->sha256 == item.sha256;
  std::string problem;
  if (same) chunks = chunk_list(*reader, *current, &problem);
  // Loading the first chunk in the same read transaction means an item of one
  // chunk (nearly all of them) can be read to the end whatever writers do.
  // Damaged content opens; reading it is EIO, as a disk's bad sector is.
  ChunkRead first_read = ChunkRead::kOk;
  if (!problem.empty()) {
    count_damaged_read();
    damage = "item " + item.id + " is damaged: " + problem;
    chunks.clear();
  } else if (!chunks.empty()) {
    first_read = load_chunk(*reader, chunks[0], item.id, 0, chunks.size(), first, &damage);
  }
  reader->exec("COMMIT");
  if (!same || first_read == ChunkRead::kGone) return nullptr;
  return std::make_unique<ItemReaderImpl>(*this, item.id, std::move(chunks), std::move(first), std::move(damage));
}

}  // namespace itemfs::store::sqlite
