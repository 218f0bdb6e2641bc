// Open files and directories of the mount (fs/handles.h).
#include "fs/handles.h"

#include <unistd.h>

#include <cerrno>

namespace itemfs::fs {

BackupFileHandle::~BackupFileHandle() {
  if (fd >= 0) ::close(fd);
}

std::shared_ptr<OpenFile> HandleTable::get(const fuse_file_info* fi) {
  std::lock_guard lock(mutex_);
  auto it = handles_.find(fi->fh);
  if (it == handles_.end()) throw store::StoreError(EBADF, "no such open file");
  return it->second;
}

std::shared_ptr<OpenFile> HandleTable::take(uint64_t id) {
  std::lock_guard lock(mutex_);
  auto it = handles_.find(id);
  if (it == handles_.end()) return nullptr;
  auto handle = std::move(it->second);
  handles_.erase(it);
  return handle;
}

}  // namespace itemfs::fs
