// The search index's tables (see schema.h).

#include "search/schema.h"

#include <string>

#include "base/sqlite_stmt.h"

namespace itemfs::search::detail {

const char* const kSchema =
    "CREATE TABLE IF NOT EXISTS search_meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS search_doc("
    " gen INTEGER PRIMARY KEY,"      // rowid in search_fts
    " ino INTEGER NOT NULL UNIQUE,"  // the item (items.ino)
    " sha INTEGER NOT NULL,"  // first 8 bytes of the item's SHA-256: which version is indexed
    " date INTEGER,"          // published_at, else crawled_at, unix seconds
    " len INTEGER NOT NULL,"  // length class of the text, as its length token in search_fts
    " host INTEGER, author INTEGER, lang INTEGER,"  // search_value ids
    " tags INTEGER);"  // search_value id of the item's tags joined by U+001F
    // Facet values and tag lists, each kept once (items share them), found
    // by a hash of the value: an index of the values would be as large as
    // they are. Values no item uses any more are swept now and then (see
    // Impl::sweep_values).
    "CREATE TABLE IF NOT EXISTS search_value(id INTEGER PRIMARY KEY, hash INTEGER NOT NULL, value TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS search_value_by_hash ON search_value(hash);"
    // Full-text rows that belong to no item (yet): queries skip them.
    "CREATE TABLE IF NOT EXISTS search_dead(gen INTEGER PRIMARY KEY);"
    "CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5(text, content='', detail=none, columnsize=0,"
    " tokenize='unicode61 remove_diacritics 2');"
    "CREATE VIRTUAL TABLE IF NOT EXISTS search_vocab USING fts5vocab(search_fts, 'row');"
    // The items some non-root reader may not read (a read bit missing), as
    // the feed last said: who may read them is decided from these.
    "CREATE TABLE IF NOT EXISTS search_closed(ino INTEGER PRIMARY KEY, mode INTEGER NOT NULL, uid INTEGER NOT NULL,"
    " gid INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO search_meta(key, value) VALUES('next_seq', 1);"
    // The last sequence number of the store's change feed applied.
    "INSERT OR IGNORE INTO search_meta(key, value) VALUES('applied', 0);";

const char* const kDrop =
    "DROP TABLE IF EXISTS search_vocab; DROP TABLE IF EXISTS search_fts; DROP TABLE IF EXISTS search_doc;"
    "DROP TABLE IF EXISTS search_value; DROP TABLE IF EXISTS search_dead; DROP TABLE IF EXISTS search_closed;"
    "DROP TABLE IF EXISTS search_meta;";

bool table_exists(sqlite3* db, const char* name) {
  base::Stmt s(db, "SELECT 1 FROM sqlite_master WHERE name=?");
  s.bind(1, name);
  return s.step();
}

// table_exists() for a snapshot's connection, from its copy of the schema
// (a query of sqlite_master took 60 µs, 1% of a common word's query). That
// copy is current only once a read of the snapshot has checked the schema's
// version, as the snapshot's first read does.
bool snapshot_has_table(sqlite3* db, const char* name) {
  const int rc =
      sqlite3_table_column_metadata(db, "main", name, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
  if (rc == SQLITE_OK) return true;
  if (rc == SQLITE_ERROR) return false;  // no such table
  base::throw_sqlite(db, rc, std::string("search: cannot read the schema for ") + name);
}

std::optional<int64_t> meta_value(sqlite3* db, const char* key) {
  base::Stmt s(db, "SELECT value FROM search_meta WHERE key=?");
  s.bind(1, key);
  if (!s.step()) return std::nullopt;
  return s.int64(0);
}

}  // namespace itemfs::search::detail
