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

}  // namespace itemfs::backup
