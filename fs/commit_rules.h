// The commit rules of items/: what a close, an fsync, a release, a rename
// and an unlink do with each kind of node, as decisions on plain values.
// The node classes (fs/items.h, fs/scratch.h) act on them; these functions
// touch no store, no kernel and no lock, so they are tested alone.
#pragma once

#include <cstdint>

#include "fs/names.h"

namespace itemfs::fs {

// What a staged item body looks like when a commit is asked for.
struct BodyView {
  bool dirty = false;            // written since its last commit
  uint64_t size = 0;
  bool emptied_by_open = false;  // emptied by open(O_TRUNC), not written since
  uint64_t version = 0;
  uint64_t refused_version = UINT64_MAX;
  int refused_error = 0;
};

enum class CommitStep {
  kNothing,  // nothing new to commit
  kDefer,    // an empty body that another copy of the descriptor may still fill
  kRefused,  // this very version was refused before: the same error again, not logged twice
  kPut,      // hand the body to the store, which accepts it or refuses it (invalid JSON, too large)
};

// `final` is the last chance (release, fsync, truncate, a rename of a
// pending item onto an existing one): an empty body is put (and refused)
// then, not deferred.
CommitStep commit_step(const BodyView& body, bool final);

// A writer whose version another open(O_TRUNC) replaced: its writes and its
// close fail with ESTALE, and nothing it wrote is committed.
inline bool superseded(bool writer, uint64_t handle_generation, uint64_t body_generation) {
  return writer && handle_generation != body_generation;
}

// At the release of the last writer of a new item that was never committed
// (its last commit was refused, or it was never written): the item is
// discarded, and the log says so.
inline bool discard_at_release(bool last_writer, bool pending, bool unlinked) {
  return last_writer && pending && !unlinked;
}

// Whether an item node's staged body goes when its last writer is done. A
// pending item keeps it: the body is all there is of the item.
inline bool drop_body_when_idle(bool pending, bool unlinked) { return !pending || unlinked; }

// What a rename under items/ does, by the kinds of its two names.
enum class RenameKind {
  kRefused,           // `error` says why (EINVAL, ENAMETOOLONG, ENOENT, or the bad name's errno)
  kItemToItem,        // the store renames the item (a pending one is committed first if it replaces one)
  kItemToScratch,     // the item leaves the store and lives on as a scratch file (editors' backups)
  kScratchToItem,     // the scratch file's bytes are committed as the item (rsync, editors)
  kScratchToScratch,  // the scratch file moves; nothing is stored
};
struct RenamePlan {
  RenameKind kind = RenameKind::kRefused;
  int error = 0;
  bool log_refusal = false;  // a refused target name is logged (it is the caller's mistake to see)
};
RenamePlan plan_rename(const Resolved& from, const std::string& from_name, const Resolved& to,
                       const std::string& to_name);

// What an unlink under items/ does.
enum class UnlinkKind {
  kNoSuchName,     // a bad item name is never there: ENOENT
  kItem,           // a pending item is dropped; a committed one removed from the store
  kScratch,        // the scratch file is dropped
};
UnlinkKind plan_unlink(const Resolved& name);

}  // namespace itemfs::fs
