// Byte streams under the archives: files (hashed as they pass, for the
// .sha256 sidecar), AES-256-GCM chunked encryption, and libarchive tar.gz
// writer/reader wrappers. Everything streams in bounded buffers and reports
// failures by throwing JobError.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "backup/util.h"

struct archive;
struct archive_entry;
struct evp_cipher_ctx_st;
struct z_stream_s;

namespace itemfs::backup {

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual void write(const void* data, size_t size) = 0;
  virtual void finish() = 0;  // flush; after this no more writes
};

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Up to `cap` bytes; 0 only at the end.
  virtual size_t read(void* buf, size_t cap) = 0;
};

// Writes to a new file, hashing everything written. finish() fsyncs.
class FileSink : public ByteSink {
 public:
  explicit FileSink(const std::filesystem::path& path);
  ~FileSink() override;
  void write(const void* data, size_t size) override;
  void finish() override;
  base::Sha256 sha256() const { return digest_; }
  uint64_t bytes() const { return bytes_; }

 private:
  void flush_buffer();
  std::filesystem::path path_;
  int fd_ = -1;
  std::vector<char> buf_;
  Sha256Hasher hasher_;
  base::Sha256 digest_{};
  uint64_t bytes_ = 0;
};

// Reads a regular file (anything else is refused: see open_regular),
// hashing every byte read (unless `hash` is false). drain() reads (and
// hashes) the rest. It reads no more than the file's size when it was
// opened, and each read throws JobError(ECANCELED) once `*cancel` is set:
// whatever reads through it ends.
class FileSource : public ByteSource {
 public:
  explicit FileSource(const std::filesystem::path& path, bool hash = true,
                      const std::atomic<bool>* cancel = nullptr);
  ~FileSource() override;
  size_t read(void* buf, size_t cap) override;
  void drain();
  base::Sha256 sha256();  // after drain()
  uint64_t bytes() const { return bytes_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  bool hash_ = true;
  const std::atomic<bool>* cancel_ = nullptr;
  Sha256Hasher hasher_;
  uint64_t bytes_ = 0;
  uint64_t size_ = 0;  // at open: the most read() gives
};

// --- encryption (format in docs/FORMAT.md §3) ---

inline constexpr size_t kEncChunk = 64 * 1024;
inline constexpr size_t kEncTag = 16;
inline constexpr size_t kEncHeader = 36;

struct Key {
  std::array<uint8_t, 32> bytes{};
  std::array<uint8_t, 8> id{};  // first 8 bytes of SHA-256("itemfs backup key id\0" || key)
  ~Key();
};
// 32 raw bytes, or 64 hex digits (surrounding whitespace ignored). EINVAL/EIO.
std::unique_ptr<Key> load_key(const std::filesystem::path& key_file);

class EncryptSink : public ByteSink {
 public:
  EncryptSink(ByteSink& next, const Key& key);
  ~EncryptSink() override;
  void write(const void* data, size_t size) override;
  void finish() override;

 private:
  void seal(bool final);
  ByteSink& next_;
  const Key& key_;
  evp_cipher_ctx_st* ctx_;
  std::array<uint8_t, kEncHeader> header_{};
  std::vector<uint8_t> plain_, cipher_;
  uint64_t counter_ = 0;
  bool finished_ = false;
};

class DecryptSource : public ByteSource {
 public:
  // Reads and checks the header (EACCES for another key, EIO for garbage).
  DecryptSource(ByteSource& raw, const Key& key, std::string name);
  ~DecryptSource() override;
  size_t read(void* buf, size_t cap) override;

 private:
  void open_chunk();
  ByteSource& raw_;
  const Key& key_;
  std::string name_;
  evp_cipher_ctx_st* ctx_;
  std::array<uint8_t, kEncHeader> header_{};
  size_t chunk_size_ = kEncChunk;
  std::vector<uint8_t> raw_buf_, plain_;
  size_t pos_ = 0;
  uint64_t counter_ = 0;
  bool done_ = false;
};

// Reads the encrypted header of a file only: is it one of ours?
bool looks_encrypted(const std::filesystem::path& path);
// The key id (hex) in the header of an encrypted archive; "" if it has none
// (not one of ours, unreadable, not a regular file).
std::string archive_key_id(const std::filesystem::path& path);

// --- gzip ---

// Bytes kept in memory up to `memory_max`, the rest in an unnamed file in
// `dir` (gone when this is).
class SpoolSink : public ByteSink {
 public:
  SpoolSink(const std::filesystem::path& dir, size_t memory_max);
  ~SpoolSink() override;
  SpoolSink(const SpoolSink&) = delete;
  SpoolSink& operator=(const SpoolSink&) = delete;
  void write(const void* data, size_t size) override;
  void finish() override {}
  // Writes everything written so far to `out`, in order.
  void copy_to(ByteSink& out);

 private:
  std::filesystem::path dir_;
  size_t memory_max_;
  std::string memory_;
  int fd_ = -1;
  uint64_t file_bytes_ = 0;
};

// Compresses everything written into one gzip stream (zlib) for `next`. The
// level can change between writes: what follows is compressed at the new
// level, in the same stream (0 stores deflate blocks uncompressed).
//
// A kSegment sink writes deflate blocks only (no gzip header or trailer),
// ending byte-aligned and not final: a part that a kGzip stream can take in
// with splice(), after the part before it, made meanwhile on another thread.
class GzipSink : public ByteSink {
 public:
  enum class Mode { kGzip, kSegment };
  GzipSink(ByteSink& next, int level, Mode mode = Mode::kGzip);
  ~GzipSink() override;
  GzipSink(const GzipSink&) = delete;
  GzipSink& operator=(const GzipSink&) = delete;
  void set_level(int level);
  void write(const void* data, size_t size) override;
  void finish() override;  // gzip trailer (kSegment: the closing flush), then next.finish()
  // Appends a finished kSegment stream whose deflate blocks are `blocks`.
  // What this stream holds is fully flushed first, and the segment refers to
  // nothing before it, so every later block still decodes.
  void splice(const GzipSink& segment, SpoolSink& blocks);

 private:
  void deflate_all(int flush);
  ByteSink& next_;
  std::unique_ptr<z_stream_s> z_;
  std::vector<unsigned char> out_;
  int level_;
  Mode mode_;
  unsigned long crc_ = 0;  // crc32 and length of the uncompressed bytes
  uint64_t size_ = 0;
  bool finished_ = false;
};

// Inflates a gzip file (one member or several, as gzip(1) reads them) on a
// thread of its own: reading, hashing and decrypting the archive and
// inflating it then run beside what the caller does with the tar bytes, so
// verify and restore take the time of the slower half instead of the sum.
// Bytes after the last member that are not another member are damage.
class GunzipSource : public ByteSource {
 public:
  explicit GunzipSource(ByteSource& raw);
  // Stops the thread; `raw` may be read again afterwards.
  ~GunzipSource() override;
  GunzipSource(const GunzipSource&) = delete;
  GunzipSource& operator=(const GunzipSource&) = delete;
  // Throws (JobError, EIO) what the inflating thread met, once the bytes
  // before the damage have been read.
  size_t read(void* buf, size_t cap) override;
  // Reads and drops the rest of the stream: a reader that stops at the tar
  // end-of-archive marker still has the gzip trailers (CRC and length)
  // checked. Throws like read().
  void finish();

 private:
  struct Shared;
  void inflate_all();
  ByteSource& raw_;
  std::unique_ptr<Shared> shared_;
  std::vector<char> current_;
  size_t pos_ = 0;
};

// --- tar through libarchive, gzip through GzipSink ---

class TarWriter {
 public:
  // kSegment: entries only, for splice() into another TarWriter's archive;
  // close() then writes no end-of-archive marker.
  TarWriter(ByteSink& sink, int gzip_level, GzipSink::Mode mode = GzipSink::Mode::kGzip);
  // The gzip level of what is written from now on (between entries).
  void set_level(int gzip_level);
  ~TarWriter();
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;
  void begin(const std::string& path, uint64_t size, uint32_t mode, uint32_t uid, uint32_t gid, int64_t mtime_ns);
  void data(const void* p, size_t n);
  void end();
  void close();  // writes the end-of-archive marker and gzip trailer, then sink.finish()
  // Between entries: the entries of a closed kSegment writer, whose
  // compressed bytes are in `blocks`.
  void splice(const TarWriter& segment, SpoolSink& blocks);

 private:
  friend struct TarCallbacks;
  void check(int rc, const std::string& what);
  GzipSink gzip_;
  struct archive* a_;
  struct archive_entry* entry_;
  std::exception_ptr error_;
  std::string path_;
  uint64_t declared_ = 0, written_ = 0;
  bool segment_ = false;
  bool discard_ = false;  // writes are dropped (a segment's close)
  bool closed_ = false;
};

struct TarEntry {
  std::string path;
  bool regular = false;
  uint64_t size = 0;
  uint32_t mode = 0;  // including file type bits
  uint32_t uid = 0, gid = 0;
  int64_t mtime_ns = 0;
};

class TarReader {
 public:
  // kPlainTar: `source` gives the tar bytes themselves (a GunzipSource).
  enum class Input { kGzip, kPlainTar };
  explicit TarReader(ByteSource& source, Input input = Input::kGzip);
  ~TarReader();
  TarReader(const TarReader&) = delete;
  TarReader& operator=(const TarReader&) = delete;
  // Next entry header; false at the end of the archive. Throws on damage.
  bool next(TarEntry& out);
  // Data of the current entry; 0 at its end.
  size_t read(void* buf, size_t cap);
  // The path of the last entry read, for error messages.
  const std::string& last_path() const { return last_; }

 private:
  friend struct TarCallbacks;
  [[noreturn]] void fail(const std::string& what);
  ByteSource& source_;
  struct archive* a_;
  std::exception_ptr error_;
  std::vector<char> buf_;
  std::string last_;
};

}  // namespace itemfs::backup
