// Blob codecs. A blob is stored raw when zlib does not make it smaller.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

typedef struct z_stream_s z_stream;

namespace itemfs::store {

enum class Codec : int { kRaw = 0, kZlib = 1 };

// Reuses one deflate state across blobs (allocating it costs more than
// compressing a small item). Not thread-safe: one per writer.
class Compressor {
 public:
  explicit Compressor(int level = 6);
  ~Compressor();
  Compressor(const Compressor&) = delete;
  Compressor& operator=(const Compressor&) = delete;
  // Returns the codec chosen; `out` holds the stored bytes for kZlib.
  // `dictionary` empty means none.
  Codec compress(std::string_view raw, std::string_view dictionary, std::string& out);

 private:
  z_stream* stream_;
};

// Inflates `stored` (codec kZlib) into `out`, which must come to `raw_size`
// bytes; false when the data is damaged.
bool decompress(std::string_view stored, std::string_view dictionary, size_t raw_size, std::string& out);

// Receives inflated bytes as they come; returns false to stop inflating.
using PieceSink = std::function<bool(std::string_view)>;

// decompress() for a reader that may not need all of a blob, such as a
// preview: `out` fills up a piece at a time (`first_piece` bytes, then each
// piece twice the last), and `sink` sees each piece as soon as it is
// inflated. If `sink` stops it, the rest is not inflated. The checksum
// covers the whole blob, so it is verified only when `verify` is set and
// all of it was inflated, after `sink` has seen all but the last piece.
// False when damage was found.
bool decompress_pieces(std::string_view stored, std::string_view dictionary, size_t raw_size, std::string& out,
                       size_t first_piece, bool verify, const PieceSink& sink);

}  // namespace itemfs::store
