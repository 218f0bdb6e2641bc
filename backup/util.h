// Small helpers shared by backup/*.cpp: SHA-256 through OpenSSL EVP, hex,
// times, JSON string escaping and durable file operations.
#pragma once

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

#include "store/hash.h"
#include "store/store.h"


namespace itemfs::backup {

// A failure inside a job: an errno plus a sentence. Jobs throw it; run()
// turns it into a Status.
class JobError : public std::runtime_error {
 public:
  JobError(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

// SHA-256 is the store's own (store/hash.h).
using Sha256Hasher = store::Sha256Hasher;

std::string hex(const uint8_t* data, size_t size);
// The same, appended: the manifest writer encodes a digest per item.
void append_hex(std::string& out, const uint8_t* data, size_t size);
// Parses exactly 64 hex digits.
bool parse_sha256_hex(std::string_view text, store::Sha256& out);

int64_t now_ns();
// 2026-11-21T06:30:00.123456789Z
std::string iso_time(int64_t ns);
// 20261121T063000Z
std::string compact_time(int64_t ns);

// Appends `s` as a JSON string literal (quotes included).
void append_json_string(std::string& out, std::string_view s);

// Throws JobError(EIO or the errno) with "what: path: strerror".
[[noreturn]] void throw_errno(const std::string& what, const std::filesystem::path& path, int err);
void fsync_path(const std::filesystem::path& path);  // file or directory
// Writes `content` to `path` via a temp file + fsync + rename.
// Writes all `size` bytes to fd, again after EINTR and short writes: 0, or
// the errno of the write that failed.
int write_all(int fd, const void* data, size_t size);
void write_file_atomic(const std::filesystem::path& path, std::string_view content);
std::string read_small_file(const std::filesystem::path& path, size_t limit = 1 << 20);
// Opens `path` for reading if it is a regular file, and nothing else: not
// through a symbolic link (O_NOFOLLOW), and never blocking on a FIFO or a
// device (opened O_NONBLOCK, checked with fstat, then made blocking again).
// A backup directory is ordinary files; anything else there (a link to
// /dev/zero, a FIFO) would make a reader spin or wait for ever. Throws
// JobError(EIO) naming the path; *size (if not null) is the size at open.
int open_regular(const std::filesystem::path& path, uint64_t* size = nullptr);
// Modes of what backups write to disk: the archives hold every item,
// private ones included, so only the owner may read them.
inline constexpr unsigned kPrivateFileMode = 0600;
inline constexpr unsigned kPrivateDirMode = 0700;

}  // namespace itemfs::backup
