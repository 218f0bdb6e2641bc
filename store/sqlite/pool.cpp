// The pool of read connections: a Lease is one, given back on its death.

#include "store/sqlite/store_impl.h"

namespace itemfs::store::sqlite {

StoreImpl::Lease::~Lease() {
  if (db_) store_->release(std::move(db_));
}

StoreImpl::Lease StoreImpl::acquire() {
  {
    std::lock_guard lock(pool_mutex_);
    if (!pool_.empty()) {
      auto db = std::move(pool_.back());
      pool_.pop_back();
      return Lease(*this, std::move(db));
    }
  }
  return Lease(*this, std::make_unique<Db>(db_path(), true, options_.sync_full));
}

void StoreImpl::release(std::unique_ptr<Db> db) {
  // A connection left inside a transaction must not pin an old snapshot.
  if (!sqlite3_get_autocommit(db->handle())) sqlite3_exec(db->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
  // Idle readers kept: each holds up to 2 MB of cached pages (db.cpp),
  // and on two cores more than a few rarely read at once.
  std::lock_guard lock(pool_mutex_);
  if (pool_.size() < kIdleReaders) pool_.push_back(std::move(db));
}

}  // namespace itemfs::store::sqlite
