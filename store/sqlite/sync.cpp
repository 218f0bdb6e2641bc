// Store::sync(): committed changes made durable, one sync shared by every
// caller waiting at that moment.
//
// With synchronous=NORMAL a commit is written to the WAL but not synced; a
// checkpoint syncs the WAL before it copies pages into store.db and syncs
// store.db after. So whatever was committed is, at any moment, in the WAL
// or in a store.db that a completed checkpoint synced: syncing the WAL file
// (or store.db, when there is no WAL) makes it durable.

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "store/sqlite/store_impl.h"

namespace itemfs::store::sqlite {

namespace {

// fdatasync of the store's WAL, or of store.db when no WAL exists.
void sync_database_files(const std::filesystem::path& db) {
  int fd = ::open((db.string() + "-wal").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) fd = ::open(db.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw StoreError(errno, std::string("cannot sync the store: ") + std::strerror(errno));
  const int rc = fdatasync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw StoreError(err, std::string("cannot sync the store: ") + std::strerror(err));
}

}  // namespace

void StoreImpl::sync() {
  if (options_.read_only || options_.sync_full) return;
  sync_group_.run([this] { sync_database_files(db_path()); });
}

}  // namespace itemfs::store::sqlite
