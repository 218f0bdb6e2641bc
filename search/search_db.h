// search.db: the search index's own SQLite database, STORE/search.db, beside
// the store's (docs/FORMAT.md, "The search index").
//
// The contract:
//  - A new search.db is created 0600 whatever the umask (it holds words of
//    every item), in WAL mode, so that queries read while the index writes.
//  - One writer connection, used by one thread at a time (the index's
//    follower, a reindex); read views from a small pool, any thread.
//  - A read view is one read transaction: everything read through it is one
//    committed state of the index.
//  - Opened read-only, nothing is created or written; a missing file then
//    leaves exists() false and every read view empty-handed (db() null).
//  - SQLite failures throw base::Error ("search: ..."; the errno is
//    base::sqlite_errno's: ENOSPC for a full disk, EIO for I/O errors).
#pragma once

#include <sqlite3.h>

#include <filesystem>
#include <memory>
#include <mutex>
#include <vector>

namespace itemfs::search {

class SearchDb {
 public:
  SearchDb(const std::filesystem::path& file, bool read_only);
  ~SearchDb();
  SearchDb(const SearchDb&) = delete;
  SearchDb& operator=(const SearchDb&) = delete;

  bool exists() const { return writer_ != nullptr; }
  bool read_only() const { return read_only_; }
  const std::filesystem::path& file() const { return file_; }
  // The writer connection (null when read-only or missing).
  sqlite3* writer() { return read_only_ ? nullptr : writer_; }

  class View {
   public:
    View(SearchDb& owner, sqlite3* db);
    View(View&& other) noexcept;
    ~View();
    sqlite3* db() const { return db_; }

   private:
    SearchDb* owner_;
    sqlite3* db_;
  };
  // A read transaction on a pooled connection.
  View read();

 private:
  sqlite3* open_connection(bool read_only);
  void give_back(sqlite3* db);

  std::filesystem::path file_;
  bool read_only_;
  sqlite3* writer_ = nullptr;
  std::mutex pool_mutex_;
  std::vector<sqlite3*> pool_;
};

// Runs `sql` on `db` (one or more statements); throws base::Error
// ("search: SQL failed: " and SQLite's message).
void exec_sql(sqlite3* db, const char* sql);

}  // namespace itemfs::search
