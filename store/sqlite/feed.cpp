// The change feed's rows (see feed.h and docs/FORMAT.md, "The change feed").

#include "store/sqlite/feed.h"

#include <cerrno>

namespace itemfs::store::feed {

namespace {

uint64_t meta_number(Db& db, const char* key) {
  auto s = db.cached("SELECT value FROM meta WHERE key=?");
  s->bind(1, std::string_view(key));
  return s->step() ? uint64_t(s->int64(0)) : 0;
}

void set_meta_number(Db& db, const char* key, uint64_t value) {
  auto s = db.cached("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)");
  s->bind(1, std::string_view(key)).bind(2, int64_t(value)).run();
}

}  // namespace

void create_tables(Db& db) {
  db.exec(
      "CREATE TABLE IF NOT EXISTS changes(seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL, ino INTEGER NOT NULL,"
      " id TEXT NOT NULL, old_id TEXT);"
      "CREATE TABLE IF NOT EXISTS followers(name TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;"
      "CREATE TABLE IF NOT EXISTS changes_old(seq INTEGER NOT NULL, part INTEGER NOT NULL, codec INTEGER NOT NULL,"
      " dict_id INTEGER, raw_size INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY(seq, part));"
      "INSERT OR IGNORE INTO meta(key, value) VALUES('last_seq', 0);"
      "INSERT OR IGNORE INTO meta(key, value) VALUES('feed_trimmed', 0);");
}

uint64_t Recorder::record(ChangeKind kind, int64_t ino, std::string_view id, std::string_view old_id) {
  if (next_ == 0) next_ = last_seq(db_) + 1;
  auto s = db_.cached("INSERT INTO changes(seq, kind, ino, id, old_id) VALUES(?, ?, ?, ?, ?)");
  s->bind(1, int64_t(next_)).bind(2, int64_t(kind)).bind(3, ino).bind(4, id);
  if (kind == ChangeKind::kRename) s->bind(5, old_id);
  else s->bind_null(5);
  s->run();
  return next_++;
}

void Recorder::keep_old(const ItemInfo& old) {
  if (old.size > kKeepOldBytes) return;
  if (followed_ < 0) {
    auto s = db_.cached("SELECT 1 FROM followers LIMIT 1");
    followed_ = s->step() ? 1 : 0;
  }
  if (!followed_) return;
  if (next_ == 0) next_ = last_seq(db_) + 1;
  auto copy = db_.cached(
      "INSERT INTO changes_old(seq, part, codec, dict_id, raw_size, data) "
      "SELECT ?1, c.seq, b.codec, b.dict_id, b.raw_size, b.data FROM chunks c JOIN blobs b ON b.id = c.blob "
      "WHERE c.ino = ?2");
  copy->bind(1, int64_t(next_)).bind(2, old.ino).run();
}

std::vector<OldPart> old_parts(Db& db, uint64_t seq) {
  std::vector<OldPart> out;
  auto s = db.cached("SELECT codec, dict_id, raw_size, data FROM changes_old WHERE seq=? ORDER BY part");
  s->bind(1, int64_t(seq));
  while (s->step()) {
    OldPart p;
    p.codec = int(s->int64(0));
    p.dict_id = s->is_null(1) ? 0 : s->int64(1);
    p.raw_size = uint64_t(s->int64(2));
    p.data = std::string(s->blob(3));
    out.push_back(std::move(p));
  }
  return out;
}

uint64_t Recorder::finish() {
  if (next_ == 0) return last_seq(db_);
  set_meta_number(db_, "last_seq", next_ - 1);
  trim(db_);
  return next_ - 1;
}

uint64_t last_seq(Db& db) { return meta_number(db, "last_seq"); }

ChangeList changes_since(Db& db, uint64_t after, size_t limit) {
  ChangeList out;
  out.last_seq = last_seq(db);
  out.complete = after >= meta_number(db, "feed_trimmed");
  if (!out.complete) return out;
  auto s = db.cached("SELECT seq, kind, ino, id, old_id FROM changes WHERE seq > ? ORDER BY seq LIMIT ?");
  s->bind(1, int64_t(after)).bind(2, int64_t(limit));
  while (s->step()) {
    Change c;
    c.seq = uint64_t(s->int64(0));
    c.kind = ChangeKind(s->int64(1));
    c.ino = s->int64(2);
    c.id = std::string(s->text(3));
    if (!s->is_null(4)) c.old_id = std::string(s->text(4));
    out.changes.push_back(std::move(c));
  }
  return out;
}

void set_cursor(Db& db, std::string_view name, uint64_t seq, bool add) {
  auto s = db.cached(add ? "INSERT OR REPLACE INTO followers(name, seq) VALUES(?, ?)"
                         : "UPDATE followers SET seq=?2 WHERE name=?1 AND seq<?2");  // never back
  s->bind(1, name).bind(2, int64_t(seq)).run();
  trim(db);
}

void remove_follower(Db& db, std::string_view name) {
  auto s = db.cached("DELETE FROM followers WHERE name=?");
  s->bind(1, name).run();
  trim(db);
}

void trim(Db& db) {
  uint64_t upto = last_seq(db);
  {
    auto s = db.cached("SELECT min(seq) FROM followers");
    if (s->step() && !s->is_null(0)) upto = std::min(upto, uint64_t(s->int64(0)));
  }
  if (upto <= meta_number(db, "feed_trimmed")) return;
  auto s = db.cached("DELETE FROM changes WHERE seq <= ?");
  s->bind(1, int64_t(upto)).run();
  auto old = db.cached("DELETE FROM changes_old WHERE seq <= ?");
  old->bind(1, int64_t(upto)).run();
  set_meta_number(db, "feed_trimmed", upto);
}

}  // namespace itemfs::store::feed
