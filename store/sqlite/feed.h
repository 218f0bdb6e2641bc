// The change feed's rows in store.db (format 4): how a write batch records
// each change with its sequence number, how a snapshot reads them back, and
// how the feed is trimmed below the slowest follower's cursor.
//
// The contract:
//  - Every put, remove, rename and attribute change of an item is one row of
//    `changes`, numbered by meta.last_seq + 1, in the transaction that makes
//    the change: the feed and the items never disagree.
//  - A follower (a name and the last sequence it applied, in `followers`)
//    keeps the changes after its cursor. Changes at or below every
//    follower's cursor (all of them when no follower is registered) are
//    deleted at the end of the batch that passes them, so a store whose
//    followers keep up holds no feed at rest. meta.feed_trimmed says up to
//    which sequence rows may be gone.
//  - While a follower is registered, a put that replaces an item's content
//    and a remove keep the bytes they take away (the old blobs' stored
//    bytes, copied into `changes_old` under the change's sequence number,
//    for items up to kKeepOldBytes), so that a follower can undo what it
//    derived from them; they go when the change is trimmed.
//  - Only store/ calls these; they speak SQL to the batch's own connection.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "store/sqlite/db.h"
#include "store/store.h"

namespace itemfs::store::feed {

// The tables and meta rows of the feed, created if missing (in the caller's
// transaction).
void create_tables(Db& db);

// Sequence numbers handed out by one write batch.
class Recorder {
 public:
  explicit Recorder(Db& db) : db_(db) {}
  // Records one change; returns its sequence number.
  uint64_t record(ChangeKind kind, int64_t ino, std::string_view id, std::string_view old_id = {});
  // After the batch's last change: saves meta.last_seq and trims the feed.
  // Returns the batch's last sequence number (the store's, if it made none).
  uint64_t finish();
  bool recorded() const { return next_ != 0; }
  // Keeps the stored bytes of `old` (as it is now, before the change) under
  // the sequence number the next record() gives.
  void keep_old(const ItemInfo& old);

 private:
  Db& db_;
  uint64_t next_ = 0;  // the next sequence number (0: not read yet)
  int followed_ = -1;  // whether a follower is registered (-1: not looked yet)
};

inline constexpr uint64_t kKeepOldBytes = 4u << 20;

// One stored piece of the bytes a change took away, in order.
struct OldPart {
  int codec = 0;
  int64_t dict_id = 0;
  uint64_t raw_size = 0;
  std::string data;
};
// The pieces kept for change `seq` (none: not kept).
std::vector<OldPart> old_parts(Db& db, uint64_t seq);

uint64_t last_seq(Db& db);
// The changes after `after`, oldest first, at most `limit`, read on `db` (in
// its current transaction).
ChangeList changes_since(Db& db, uint64_t after, size_t limit);
// Sets (adding, with `add`) the cursor of follower `name` and trims the feed.
void set_cursor(Db& db, std::string_view name, uint64_t seq, bool add);
void remove_follower(Db& db, std::string_view name);
// Deletes the changes every follower has applied (all, with none).
void trim(Db& db);

}  // namespace itemfs::store::feed
