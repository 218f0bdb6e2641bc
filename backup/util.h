// Small helpers shared by backup/*.cpp: times as backups write them, the
// job error, and durable file operations. SHA-256, hex, the clock and the
// JSON string writer are base's, named here as backup's own for brevity.
#pragma once

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "base/json_string.h"
#include "base/sha256.h"

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

using base::append_hex;
using base::append_json_string;
using base::hex;
using base::now_ns;
using base::parse_sha256_hex;
using base::Sha256Hasher;

// 2026-11-21T06:30:00.123456789Z
std::string iso_time(int64_t ns);
// 20261121T063000Z
std::string compact_time(int64_t ns);

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
