// The body and attributes of a file that is being written (an item between
// open and commit) or that lives only while mounted (a scratch file). The
// bytes are in a staging file (fs/staging.h); the fields say what they are.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <memory>
#include <mutex>

#include "fs/staging.h"
#include "store/store.h"

namespace itemfs::fs {

struct FileState {
  // `body` is held while the staging file is written, truncated or read for
  // a commit, so a commit never takes a half-written body; `mutex` guards the
  // fields below and is only ever held briefly, so that lookups and listings
  // (which hold the inode table lock while they read them) never wait for a
  // long commit. Order: body, then the inode table, then mutex.
  std::mutex body;
  std::mutex mutex;
  int fd = -1;
  uint64_t size = 0;
  store::Attrs attrs;
  int64_t ctime_ns = 0;
  bool dirty = false;
  int writers = 0;
  // A refused body is not offered again until it changes: release after a
  // failed flush must not log the same refusal twice.
  uint64_t version = 0;
  // Emptied by open(O_TRUNC) and not written since: a shell's `> file`
  // closes one copy of the descriptor before anything is written.
  bool emptied_by_open = false;
  uint64_t refused_version = UINT64_MAX;
  int refused_error = 0;
  // Bumped by every open(O_TRUNC) of an item for writing: that open starts
  // a new version, and writers that opened before it may no longer write
  // into the body (see ItemHandle::generation).
  uint64_t generation = 0;
  std::shared_ptr<StagingPool> pool;  // where fd goes back to

  FileState() = default;
  FileState(const FileState&) = delete;
  FileState& operator=(const FileState&) = delete;
  ~FileState() {
    if (fd >= 0) pool ? pool->give(fd) : void(::close(fd));
  }
};

}  // namespace itemfs::fs
