// Items: the files items/<shard>/<id>.json (and their flat names
// items/<id>.json). A committed item is read from the store, one whole
// version per open; a write is staged in a body (fs/file_state.h) and
// committed at close, fsync, truncate, or a rename onto an item name, where
// the store accepts it or refuses it (not one JSON document: EINVAL; too
// large: EFBIG; no room: ENOSPC) and the previous version stays. A new item
// is pending (not in the store) until its first commit; at the release of
// its last writer it is discarded if that never worked.
//
// Files: fs/items.cpp (lookup, attributes, open, read, write, setattr),
// fs/item_commit.cpp (commit and the operations that end in one: flush,
// fsync, release), fs/item_names.cpp (create, unlink, rename of items).
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <memory>
#include <optional>
#include <string>

#include "fs/context.h"

namespace itemfs::fs {

class Items {
 public:
  explicit Items(Context& ctx) : ctx_(ctx) {}

  // ---- items.cpp
  // items/[<dir>/]<id>.json: the node standing for item `id` (0 if none) and its attributes.
  fuse_ino_t find(const std::string& id, struct stat& st);
  int lookup(const std::string& dir, const std::string& id, fuse_entry_param& e);
  // Attributes of item node `node` (a copy, taken under the table's lock).
  int stat(fuse_ino_t ino, const Node& node, struct stat& st);
  int setattr(fuse_ino_t ino, const Node& node, const struct stat* attr, int to_set);
  // On success the handle is in the table and fi->fh names it; the caller replies.
  int open(fuse_ino_t ino, const Node& node, fuse_file_info* fi);
  int read(fuse_ino_t ino, ItemHandle& h, size_t size, off_t off, std::string& out);
  ssize_t write(fuse_ino_t ino, ItemHandle& h, const char* buf, size_t size, off_t off);
  // A staging body holding item `item`'s content (empty if `truncate`).
  std::shared_ptr<FileState> body_from_store(const store::ItemInfo& item, bool truncate, int& err);
  // A committed item's node of `ino`, with any open body it has.
  std::shared_ptr<FileState> body_of_item(int64_t ino);

  // ---- item_commit.cpp
  // Commits the staged body of item node `ino`: the store takes it or
  // refuses it (the refusal is logged with the file, and the kernel told
  // to forget what it cached). `final` is the last chance (release, fsync,
  // truncate): an empty body is refused then, not deferred.
  int commit(fuse_ino_t ino, bool final);
  int commit_locked(fuse_ino_t ino, bool final);  // the caller holds namespace_mutex
  int flush(fuse_ino_t ino, ItemHandle& h);
  int fsync(fuse_ino_t ino, ItemHandle& h);
  void release(fuse_ino_t ino, ItemHandle& h);
  // Drops the kernel's trust in node `ino`'s page cache and attributes.
  void forget_cached(fuse_ino_t ino);
  // Readers open now read an older version from here on. Caller holds table.mutex.
  void new_version_committed(fuse_ino_t ino);
  // Item `item_ino` left the store (unlink, replaced by a rename): its nodes
  // are unlinked; those open keep `last` (its attributes) for fstat.
  void mark_unlinked(int64_t item_ino, const store::ItemInfo* last = nullptr);

  // ---- item_names.cpp
  // create(): a pending item, or (no O_EXCL) the existing one opened. The
  // caller holds namespace_mutex and replies with `e`.
  int create(const std::string& dir, const std::string& id, mode_t mode, const fuse_ctx* who, fuse_file_info* fi,
             fuse_entry_param& e);
  // unlink(): a pending item dropped, a committed one removed from the store.
  int unlink(const std::string& dir, const std::string& id);
  // The node of item `id` a rename moves (0 if none), and whether it is pending.
  fuse_ino_t find_source(const std::string& id, bool& pending);
  // Renames item `from` onto item `to` (caller holds namespace_mutex).
  int rename(const std::string& from_dir, const std::string& from, const std::string& to_dir, const std::string& to);

 private:
  // Gives item node `ino` a staging body holding its committed content
  // (empty if `truncate`), counting the caller as one more writer of it.
  std::shared_ptr<FileState> stage(fuse_ino_t ino, bool truncate, int& err);
  // Drops a writer of node `ino`'s body; the body goes when nobody writes it.
  void unstage(fuse_ino_t ino, const std::shared_ptr<FileState>& state);
  // open(O_TRUNC) of an item: empty the body, to be committed at close.
  static int truncate_for_open(FileState& state);
  static uint64_t generation_of(FileState& state);
  static bool superseded(const ItemHandle& h);
  int open_for_writing(fuse_ino_t ino, bool truncate, ItemHandle& h);
  void forget_reader(fuse_ino_t ino, const ItemHandle& h);
  int rename_node(fuse_ino_t source, const std::string& from, const std::string& to, bool pending);

  Context& ctx_;
};

}  // namespace itemfs::fs
