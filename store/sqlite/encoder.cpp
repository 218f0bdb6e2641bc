// The item encoder: validate, chunk, hash, compress (Store::prepare), and
// compress_chunk, which picks a blob's dictionary.

#include "store/memory_stream.h"
#include "store/sqlite/store_impl.h"

#include <istream>
#include <streambuf>

namespace itemfs::store {

PreparedItem::PreparedItem() : parts_(std::make_unique<Parts>()) {}
PreparedItem::~PreparedItem() = default;
PreparedItem::PreparedItem(PreparedItem&&) noexcept = default;
PreparedItem& PreparedItem::operator=(PreparedItem&&) noexcept = default;
const std::string& PreparedItem::id() const { return parts_->id; }
uint64_t PreparedItem::size() const { return parts_->bytes.size(); }
Status PreparedItem::status() const { return parts_->early.ok() ? parts_->invalid : parts_->early; }
int64_t PreparedItem::dictionary_id() const { return parts_->dict_id; }
void PreparedItem::skip_if_unchanged() { parts_->skip_unchanged = true; }
bool PreparedItem::replaced() const { return parts_->replaced; }

}  // namespace itemfs::store

namespace itemfs::store::sqlite {


// Compresses one chunk as a new blob is stored: with the dictionary of
// `set` chosen for its bytes, raw if zlib does not shrink it. `dict_id`
// is the dictionary the stream needs (0: none, or raw).
Codec StoreImpl::compress_chunk(Compressor& compressor, const DictionarySet& set, std::string_view raw,
                                std::string& stored, int64_t& dict_id) {
  const Dictionary* dictionary = set.choose(raw);
  std::string_view data = dictionary ? std::string_view(dictionary->data) : std::string_view();
  Codec codec = compressor.compress(raw, data, stored);
  dict_id = codec == Codec::kZlib && dictionary ? dictionary->id : 0;
  return codec;
}

Status StoreImpl::check_item_size(uint64_t size) const {
  if (size <= options_.max_item_size) return Status::success();
  return Status::error(EFBIG, "item is " + std::to_string(size) + " bytes; the limit is " +
                                  std::to_string(options_.max_item_size));
}

PreparedItem StoreImpl::prepare(std::string id, std::string bytes, const Attrs& attrs) {
  PreparedItem item;
  auto& p = item.parts();
  p.id = std::move(id);
  p.bytes = std::move(bytes);
  p.attrs = attrs;
  // put()'s checks, in put()'s order.
  if (Status status = check_id(p.id); !status.ok()) {
    p.early = status;
    return item;
  }
  uint64_t size = p.bytes.size();
  if (Status status = check_item_size(size); !status.ok()) {
    p.early = status;
    return item;
  }
  if (size <= kChunkSize) {
    p.invalid = validate_json_bytes(p.bytes);
  } else {
    MemoryBuf buf(p.bytes);
    std::istream in(&buf);
    p.invalid = validate_json(in);
  }
  if (!p.invalid.ok()) return item;
  if (size <= kChunkSize) {
    p.chunks.push_back({base::sha256_of(p.bytes), 0, size, Codec::kRaw, {}});
    p.sha256 = p.chunks[0].sha256;
  } else {
    base::Sha256Hasher whole;
    for (uint64_t offset = 0; offset < size; offset += kChunkSize) {
      std::string_view piece = std::string_view(p.bytes).substr(offset, kChunkSize);
      whole.update(piece);
      p.chunks.push_back({base::sha256_of(piece), offset, piece.size(), Codec::kRaw, {}});
    }
    p.sha256 = whole.finish();
  }
  compress_prepared(p, *current_dictionaries());
  return item;
}

bool StoreImpl::recompress_if_stale(PreparedItem& item) {
  auto& p = item.parts();
  auto current = current_dictionaries();
  if (p.chunks.empty() || p.dict_id == current->generation()) return false;
  compress_prepared(p, *current);
  return true;
}

void StoreImpl::compress_prepared(PreparedItem::Parts& p, const DictionarySet& dictionaries) {
  // One deflate state per thread: allocating one costs more than
  // compressing a small item.
  thread_local Compressor compressor(6);
  for (auto& chunk : p.chunks) {
    std::string_view raw = std::string_view(p.bytes).substr(chunk.offset, chunk.size);
    chunk.codec = compress_chunk(compressor, dictionaries, raw, chunk.stored, chunk.dict_id);
    if (chunk.codec != Codec::kZlib) chunk.stored.clear();
  }
  p.dict_id = dictionaries.generation();
}

}  // namespace itemfs::store::sqlite
