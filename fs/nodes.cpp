// A mounted filesystem: its parts and which kind answers for an inode (fs/nodes.h).
#include "fs/nodes.h"

#include <cerrno>

namespace itemfs::fs {

Filesystem::Filesystem(store::Store& store, const MountConfig& config)
    : ctx(store, config),
      virtual_files(
          ctx, [this](fuse_ino_t ino, struct stat& st) { return stat(ino, st); },
          [this](nlohmann::json& stats) {
            backups.extend_stats(stats);
            stats["index_lag"] = search.index_lag();
            stats["tree_nodes"] = search.size() + backups.size();
          }) {}

Filesystem::~Filesystem() {
  watcher_.stop();
  ctx.invalidator.stop();
}

void Filesystem::start(fuse_session* session) {
  ctx.invalidator.start(session);
  // Another process writing the store (an `itemfs import`, a second mount)
  // changes items behind the kernel's back; which ones is not known here.
  watcher_.start(
      ctx.store, [this] { ctx.invalidate_items_tree(); },
      [this] {
        const Counters& c = ctx.counters;
        trimmer_.tick(c.lookups + c.opens + c.writes + c.unlinks + c.renames + c.readdirs);
      },
      [this](const std::string& error) { ctx.log.add(error); });
  search.attach();  // before the first write of the mount
  backups.attach(ctx.config);
}

void Filesystem::stop() {
  backups.detach();  // stops the schedule, waits for a running job
  search.detach();
  watcher_.stop();
  ctx.invalidator.stop();
}

Target Filesystem::target(fuse_ino_t ino) {
  if (ino == kItemsIno) return {NodeKind::kItemsDir, {}};
  if (ino == kRootIno || ino == kStatsIno || ino == kLogIno) return {NodeKind::kVirtual, {}};
  if (ino == kSearchIno || is_search_ino(ino)) return {NodeKind::kSearch, {}};
  if (ino == kBackupsIno || ino == kCtlIno || ino == kStatusIno || is_backup_ino(ino)) return {NodeKind::kBackups, {}};
  auto node = ctx.table.copy(ino);
  if (!node) return {NodeKind::kGone, {}};
  NodeKind kind = node->kind == Kind::kShard     ? NodeKind::kItemsDir
                  : node->kind == Kind::kScratch ? NodeKind::kScratch
                                                 : NodeKind::kItem;
  return {kind, std::move(*node)};
}

int Filesystem::stat(fuse_ino_t ino, struct stat& st) { return stat(ino, target(ino), st); }

int Filesystem::stat(fuse_ino_t ino, const Target& t, struct stat& st) {
  switch (t.kind) {
    case NodeKind::kVirtual:
      return virtual_files.stat(ino, st);
    case NodeKind::kItemsDir:
      return shards.stat(ino, t.node.name(), st);
    case NodeKind::kItem:
      return items.stat(ino, t.node, st);
    case NodeKind::kScratch:
      return scratch.stat(ino, t.node, st);
    case NodeKind::kSearch:
      return search.stat(ino, st);
    case NodeKind::kBackups:
      return backups.stat(ino, st);
    case NodeKind::kGone:
      break;
  }
  return ENOENT;
}

double Filesystem::attr_timeout(fuse_ino_t ino, const struct stat& st) {
  if (is_items_dir(ino)) return kItemTimeout;
  if (S_ISDIR(st.st_mode)) return is_fixed_ino(ino) ? kFixedTimeout : 0;
  if (is_uncached_ino(ino)) return 0;
  if (ino >= kItemBase) return kItemTimeout;
  if (ino == kLogIno) return 0;  // it grows: tail -f asks for its size
  return is_fixed_ino(ino) ? kFixedTimeout : 0;
}

}  // namespace itemfs::fs
