// Blob codecs. A blob is stored raw when zlib does not make it smaller.
#pragma once

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

}  // namespace itemfs::store
