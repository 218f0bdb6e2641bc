#include "store/codec.h"

#include <zlib.h>

#include <cerrno>

#include "store/store.h"

namespace itemfs::store {

Compressor::Compressor(int level) : stream_(new z_stream{}) {
  if (deflateInit(stream_, level) != Z_OK) {
    delete stream_;
    throw StoreError(ENOMEM, "zlib deflateInit failed");
  }
}

Compressor::~Compressor() {
  deflateEnd(stream_);
  delete stream_;
}

Codec Compressor::compress(std::string_view raw, std::string_view dictionary, std::string& out) {
  if (deflateReset(stream_) != Z_OK) throw StoreError(EIO, "zlib deflateReset failed");
  if (!dictionary.empty() &&
      deflateSetDictionary(stream_, reinterpret_cast<const Bytef*>(dictionary.data()), uInt(dictionary.size())) != Z_OK)
    throw StoreError(EIO, "zlib deflateSetDictionary failed");
  // Only worth keeping if it shrinks: never let the output reach raw size.
  if (raw.size() < 16) return Codec::kRaw;
  out.resize(raw.size() - 1);
  stream_->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  stream_->avail_in = uInt(raw.size());
  stream_->next_out = reinterpret_cast<Bytef*>(out.data());
  stream_->avail_out = uInt(out.size());
  int rc = deflate(stream_, Z_FINISH);
  if (rc != Z_STREAM_END) return Codec::kRaw;  // ran out of room: incompressible
  out.resize(out.size() - stream_->avail_out);
  return Codec::kZlib;
}

bool decompress(std::string_view stored, std::string_view dictionary, size_t raw_size, std::string& out) {
  z_stream stream{};
  if (inflateInit(&stream) != Z_OK) throw StoreError(ENOMEM, "zlib inflateInit failed");
  out.resize(raw_size);
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(stored.data()));
  stream.avail_in = uInt(stored.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = uInt(out.size());
  int rc = inflate(&stream, Z_FINISH);
  if (rc == Z_NEED_DICT && !dictionary.empty()) {
    if (inflateSetDictionary(&stream, reinterpret_cast<const Bytef*>(dictionary.data()), uInt(dictionary.size())) ==
        Z_OK)
      rc = inflate(&stream, Z_FINISH);
  }
  bool ok = rc == Z_STREAM_END && stream.avail_out == 0 && stream.avail_in == 0;
  inflateEnd(&stream);
  return ok;
}

}  // namespace itemfs::store
