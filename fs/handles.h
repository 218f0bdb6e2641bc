// Open files and directories of the mount: one small handle per kind of
// node, held in a variant, and the table that numbers them for the kernel
// (fuse_file_info::fh).
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "fs/file_state.h"
#include "store/store.h"

namespace itemfs::fs {

// An item opened for reading a committed version (`reader`), for writing
// (`state`, `writer`), or a pending item opened for reading (`state`).
struct ItemHandle {
  std::unique_ptr<store::ItemReader> reader;
  std::shared_ptr<FileState> state;
  bool writer = false;
  uint64_t generation = 0;  // the FileState::generation this writer writes
  uint64_t cached_reader_of = 0;  // reads through the page cache: 1 + the node's commit count at open
};

// A scratch file: its body is the file.
struct ScratchHandle {
  std::shared_ptr<FileState> state;
};

using DirEntries = std::vector<std::pair<std::string, struct stat>>;
struct DirHandle {
  DirEntries entries;  // made at opendir
  std::optional<std::string> unlisted_dir;  // an items/ directory whose listing is made at the first readdir
};

// A document made at open: stats.json, backups/status, a search file, README.
struct TextHandle {
  std::string text;
};

// MNT/log, read as it grows.
struct LogHandle {};

// backups/ctl: the command text not yet run.
struct CtlHandle {
  std::string pending_command;
  bool command_refused = false;  // a write was refused; the rest of this open fails too
};

// A file of a backup, read through the descriptor opened at open(), so a
// file replaced meanwhile (verify.json) is read whole, old or new.
struct BackupFileHandle {
  explicit BackupFileHandle(int descriptor) : fd(descriptor) {}
  BackupFileHandle(BackupFileHandle&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  BackupFileHandle& operator=(BackupFileHandle&&) = delete;
  ~BackupFileHandle();
  int fd = -1;
};

struct OpenFile {
  fuse_ino_t ino = 0;
  std::variant<ItemHandle, ScratchHandle, DirHandle, TextHandle, LogHandle, CtlHandle, BackupFileHandle> of;

  template <typename T>
  T* as() {
    return std::get_if<T>(&of);
  }
};

// Open handles by number. A request holds its handle by a shared_ptr, so
// that a release racing an interrupted read (the kernel sends it as soon as
// the caller gives up) cannot free the handle under the read.
class HandleTable {
 public:
  uint64_t add(fuse_ino_t ino, auto&& handle) {
    auto open = std::make_shared<OpenFile>(OpenFile{ino, std::forward<decltype(handle)>(handle)});
    std::lock_guard lock(mutex_);
    uint64_t id = next_++;
    handles_.emplace(id, std::move(open));
    return id;
  }
  // The handle of `fi`; throws EBADF when there is none.
  std::shared_ptr<OpenFile> get(const fuse_file_info* fi);
  // Takes the handle out of the table (release); null when there is none.
  std::shared_ptr<OpenFile> take(uint64_t id);

 private:
  std::mutex mutex_;
  uint64_t next_ = 1;
  std::unordered_map<uint64_t, std::shared_ptr<OpenFile>> handles_;
};

}  // namespace itemfs::fs
