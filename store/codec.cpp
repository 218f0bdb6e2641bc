#include "store/codec.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <unordered_map>

#include "base/status.h"

namespace itemfs::store {

Compressor::Compressor(int level) : stream_(new z_stream{}) {
  if (deflateInit(stream_, level) != Z_OK) {
    delete stream_;
    throw base::Error(ENOMEM, "zlib deflateInit failed");
  }
}

Compressor::~Compressor() {
  deflateEnd(stream_);
  delete stream_;
}

Codec Compressor::compress(std::string_view raw, std::string_view dictionary, std::string& out) {
  if (deflateReset(stream_) != Z_OK) throw base::Error(EIO, "zlib deflateReset failed");
  if (!dictionary.empty() &&
      deflateSetDictionary(stream_, reinterpret_cast<const Bytef*>(dictionary.data()), uInt(dictionary.size())) != Z_OK)
    throw base::Error(EIO, "zlib deflateSetDictionary failed");
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

namespace {

// A raw inflate state per thread, reset for every blob: inflateInit's
// allocations cost more than inflating a small item.
class Inflater {
 public:
  Inflater() {
    if (inflateInit2(&z_, -15) != Z_OK) throw base::Error(ENOMEM, "zlib inflateInit failed");
  }
  ~Inflater() { inflateEnd(&z_); }
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;
  z_stream& z() { return z_; }

  // adler32 of a dictionary: what a zlib stream made with it names it by.
  // zlib would compute it (32 KiB) for every blob; this thread keeps it by
  // the dictionary's address and size (a store keeps its dictionaries'
  // bytes for its life). `fresh` computes it from the bytes again: what a
  // caller does before taking a mismatch for damage, since the address may
  // now hold another dictionary.
  uLong dictionary_id(std::string_view dictionary, bool fresh) {
    if (ids_.size() >= kMaxIds) ids_.clear();  // only after many stores have come and gone
    Known& k = ids_[dictionary.data()];
    if (fresh || k.size != dictionary.size() || !k.known) {
      k.size = dictionary.size();
      k.adler = adler32(adler32(0, nullptr, 0), reinterpret_cast<const Bytef*>(dictionary.data()),
                        uInt(dictionary.size()));
      k.known = true;
    }
    return k.adler;
  }

 private:
  static constexpr size_t kMaxIds = 4096;
  struct Known {
    size_t size = 0;
    uLong adler = 0;
    bool known = false;
  };
  std::unordered_map<const char*, Known> ids_;
  z_stream z_{};
};

uLong be32(const unsigned char* p) { return uLong(p[0]) << 24 | uLong(p[1]) << 16 | uLong(p[2]) << 8 | uLong(p[3]); }

}  // namespace

bool decompress(std::string_view stored, std::string_view dictionary, size_t raw_size, std::string& out) {
  return decompress_pieces(stored, dictionary, raw_size, out, raw_size, true, nullptr);
}

bool decompress_pieces(std::string_view stored, std::string_view dictionary, size_t raw_size, std::string& out,
                       size_t first_piece, bool verify, const PieceSink& sink) {
  // The zlib stream's framing is read here and its body inflated raw (RFC
  // 1950): the same checks as inflate() with a zlib header makes, but the
  // dictionary's adler32 is not computed again for every blob.
  const auto* in = reinterpret_cast<const unsigned char*>(stored.data());
  size_t n = stored.size();
  if (n < 2 + 4) return false;
  const unsigned cmf = in[0], flg = in[1];
  if ((cmf & 0x0f) != Z_DEFLATED || (cmf >> 4) > 7 || (cmf << 8 | flg) % 31 != 0) return false;
  size_t header = 2;
  const bool fdict = (flg & 0x20) != 0;
  thread_local Inflater inflater;
  if (fdict) {
    if (dictionary.empty() || n < 2 + 4 + 4) return false;
    const uLong id = be32(in + 2);
    if (id != inflater.dictionary_id(dictionary, false) && id != inflater.dictionary_id(dictionary, true)) return false;
    header += 4;
  }
  z_stream& z = inflater.z();
  if (inflateReset(&z) != Z_OK) throw base::Error(EIO, "zlib inflateReset failed");
  if (fdict && inflateSetDictionary(&z, reinterpret_cast<const Bytef*>(dictionary.data()), uInt(dictionary.size())) !=
                   Z_OK)
    return false;
  out.resize(raw_size);
  auto* raw = reinterpret_cast<Bytef*>(out.data());
  z.next_in = const_cast<Bytef*>(in + header);
  z.avail_in = uInt(n - header - 4);
  z.next_out = raw;
  size_t done = 0;
  size_t piece = std::max<size_t>(first_piece, 1);
  for (;;) {
    const size_t want = std::min(piece, raw_size - done);
    const bool last = done + want == raw_size;
    z.avail_out = uInt(want);
    const int rc = inflate(&z, last ? Z_FINISH : Z_NO_FLUSH);
    if (last ? rc != Z_STREAM_END || z.avail_out != 0 || z.avail_in != 0 : rc != Z_OK || z.avail_out != 0) {
      return false;  // damaged, or it ends before raw_size or after
    }
    if (last) break;
    if (sink && !sink(std::string_view(out.data() + done, want))) return true;
    done += want;
    piece = std::min(piece, raw_size) * 2;
  }
  if (verify && be32(in + n - 4) != adler32(adler32(0, nullptr, 0), raw, uInt(raw_size))) return false;
  if (sink) sink(std::string_view(out.data() + done, raw_size - done));
  return true;
}

}  // namespace itemfs::store
