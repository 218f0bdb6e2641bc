// base/status: how every part of itemfs reports failure.
//
// The contract:
//  - A Status is an errno value and a sentence a user can act on; ok() when
//    the code is 0. Functions return a Status for failures the caller is
//    expected to handle (bad input, a full disk, a missing item), and the
//    sentence is what reaches the user (a log line, a command's message).
//  - An Error is thrown for failures nobody can handle on the spot (an I/O
//    error, a SQLite failure, damaged content): it carries an errno too, so
//    that whoever catches it (a FUSE reply, a command's exit) can still give
//    the right error.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace itemfs::base {

// An errno plus a human sentence. ok() when code == 0.
struct Status {
  int code = 0;
  std::string message;
  bool ok() const { return code == 0; }
  static Status success() { return {}; }
  static Status error(int code, std::string message) { return {code, std::move(message)}; }
};

// An unexpected failure: an errno value (EIO, ENOSPC, ...) and what failed.
class Error : public std::runtime_error {
 public:
  Error(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

}  // namespace itemfs::base
