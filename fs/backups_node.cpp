// backups/ of the mount (fs/backups_node.h).
#include "fs/backups_node.h"

#include <fcntl.h>

#include <cerrno>
#include <cstring>
#include <set>

namespace itemfs::fs {

using store::Status;

void BackupsNode::attach(const MountConfig& config) {
  group_ = config.backup_group;
  backup::Options options;
  options.dir = config.backup_dir.empty() ? config.store_dir / "backups" : config.backup_dir;
  if (!config.backup_key_file.empty()) options.key_file = std::filesystem::path(config.backup_key_file);
  options.chain_max = config.backup_chain_max;
  manager_ = std::make_unique<backup::Manager>(ctx_.store, options);
  manager_->on_restore([this](const std::vector<std::string>& ids) { restored(ids); });
  manager_->on_log([this](std::string_view line) { ctx_.log.add(std::string(line)); });
  // A read-only mount takes no backups (it could not record them).
  if (config.backup_every_seconds > 0 && !ctx_.store.options().read_only)
    manager_->start_schedule(std::chrono::seconds(config.backup_every_seconds), config.backup_keep_last);
}

void BackupsNode::cancel_jobs() {
  if (manager_) manager_->cancel();
}

void BackupsNode::detach() { manager_.reset(); }

// A restore changed items behind the kernel's back: drop what it caches of
// them (queued; the invalidation thread sends them).
void BackupsNode::restored(const std::vector<std::string>& ids) {
  std::set<std::string> shards;
  for (const auto& id : ids) {
    std::string shard = store::shard_of(id);
    if (auto item = ctx_.store.item(id)) ctx_.invalidator.inode(InodeTable::item_node(item->ino));
    if (auto dir = ctx_.store.dir_info(shard)) ctx_.invalidator.entry(InodeTable::shard_node(dir->ino), id + ".json");
    shards.insert(shard);
  }
  for (const auto& shard : shards) {
    ctx_.invalidator.entry(kItemsIno, shard);
    if (auto dir = ctx_.store.dir_info(shard)) ctx_.invalidator.inode(InodeTable::shard_node(dir->ino));  // its listing
  }
  ctx_.invalidator.inode(kItemsIno);
  ctx_.log.add("restore: " + std::to_string(ids.size()) + " items changed");
}

// ---- nodes -------------------------------------------------------------------

int BackupsNode::stat_backup(const std::string& id, const std::string& file, struct stat& st) {
  if (!manager_) return ENOENT;
  std::filesystem::path path;
  if (file.empty()) {
    path = manager_->path_of(id, "manifest.json");
    if (path.empty()) return ENOENT;
    path = path.parent_path();
  } else {
    path = manager_->path_of(id, file);
    if (path.empty()) return ENOENT;
  }
  struct stat real {};
  if (::stat(path.c_str(), &real) != 0) return ENOENT;
  int64_t mtime = from_timespec(real.st_mtim);
  uint32_t mode = file.empty() ? S_IFDIR | perm(true) : S_IFREG | perm(false);
  st = stat_of(0, mode, file.empty() ? 0 : uint64_t(real.st_size), getuid(), gid(), mtime, mtime);
  st.st_ctim = real.st_ctim;
  return 0;
}

int BackupsNode::stat(fuse_ino_t ino, struct stat& st) {
  uint32_t mode = 0;
  if (ino == kBackupsIno) mode = S_IFDIR | perm(true);
  if (ino == kStatusIno) mode = S_IFREG | perm(false);
  if (ino == kCtlIno) mode = S_IFREG | 0600;  // reads as empty, so `rsync -a MNT/backups/` works
  if (mode) {
    st = stat_of(ino, mode, 0, getuid(), ino == kCtlIno ? getgid() : gid(), ctx_.mount_time, ctx_.mount_time);
    return 0;
  }
  std::string id, file;
  {
    std::lock_guard lock(nodes_.mutex);
    Node* node = nodes_.find(ino);
    if (!node) return ENOENT;
    id = node->id;
    file = node->file;
  }
  if (int err = stat_backup(id, file, st)) return err;
  st.st_ino = ino;
  return 0;
}

int BackupsNode::lookup(fuse_ino_t parent, const std::string& name, fuse_entry_param& e) {
  if (parent == kBackupsIno && (name == "ctl" || name == "status")) {
    fuse_ino_t ino = name == "ctl" ? kCtlIno : kStatusIno;
    struct stat st;
    stat(ino, st);
    e = entry_of(ino, st, kFixedTimeout);
    return 0;
  }
  std::string id, file;
  if (parent == kBackupsIno) {
    id = name;
  } else {
    std::lock_guard lock(nodes_.mutex);
    Node* node = nodes_.find(parent);
    if (!node) return ENOENT;
    if (node->kind != Node::kBackupDir) return ENOTDIR;
    id = node->id;
    file = name;
  }
  struct stat st;
  if (int err = stat_backup(id, file, st)) return err;
  std::lock_guard lock(nodes_.mutex);
  fuse_ino_t ino;
  Node& node = nodes_.at(parent, name, file.empty() ? Node::kBackupDir : Node::kBackupFile, ino);
  node.id = id;
  node.file = file;
  st.st_ino = ino;
  node.st = st;
  ++node.lookups;
  e = fuse_entry_param{};
  e.ino = ino;
  e.attr = st;
  return 0;
}

int BackupsNode::list(fuse_ino_t ino, DirEntries& entries) {
  if (ino == kBackupsIno) {
    struct stat st;
    stat(kCtlIno, st);
    entries.emplace_back("ctl", st);
    stat(kStatusIno, st);
    entries.emplace_back("status", st);
    if (!manager_) return 0;
    for (const auto& b : manager_->list()) {
      if (stat_backup(b.id, "", st) != 0) continue;
      std::lock_guard lock(nodes_.mutex);
      fuse_ino_t child;
      Node& node = nodes_.at(kBackupsIno, b.id, Node::kBackupDir, child);
      node.id = b.id;
      node.file.clear();
      st.st_ino = child;
      node.st = st;
      entries.emplace_back(b.id, st);
    }
    return 0;
  }
  std::string id;
  {
    std::lock_guard lock(nodes_.mutex);
    Node* node = nodes_.find(ino);
    if (!node) return ENOENT;
    if (node->kind != Node::kBackupDir) return ENOTDIR;
    id = node->id;
  }
  static const char* const kSuffixes[] = {".tar.gz", ".tar.gz.enc", ".tar.gz.sha256", ".tar.gz.enc.sha256"};
  std::vector<std::string> files = {"manifest.json"};
  for (const char* suffix : kSuffixes) files.push_back(id + suffix);
  files.push_back("verify.json");
  for (const auto& file : files) {
    struct stat st;
    if (stat_backup(id, file, st) != 0) continue;
    std::lock_guard lock(nodes_.mutex);
    fuse_ino_t child;
    Node& node = nodes_.at(ino, file, Node::kBackupFile, child);
    node.id = id;
    node.file = file;
    st.st_ino = child;
    node.st = st;
    entries.emplace_back(file, st);
  }
  return 0;
}

int BackupsNode::open(fuse_ino_t ino, bool writing, fuse_file_info* fi) {
  if (ino == kCtlIno || ino == kStatusIno || ino == kBackupsIno) {
    if (ino == kBackupsIno) return writing ? EACCES : EISDIR;
    if (ino == kStatusIno && writing) return EACCES;
    if (ino == kCtlIno && writing)
      if (int err = control_open()) return err;
    fi->direct_io = 1;
    fi->noflush = !writing;
    fi->fh = ino == kCtlIno ? ctx_.handles.add(ino, CtlHandle{}) : ctx_.handles.add(ino, TextHandle{status()});
    return 0;
  }
  std::string id, file;
  {
    std::lock_guard lock(nodes_.mutex);
    Node* node = nodes_.find(ino);
    if (!node) return ENOENT;
    if (node->kind == Node::kBackupDir) return EISDIR;
    if (writing) return EACCES;
    id = node->id;
    file = node->file;
  }
  fi->noflush = 1;
  if (!manager_) return ENOENT;
  auto path = manager_->path_of(id, file);
  if (path.empty()) return ENOENT;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);  // never a link, FIFO or device
  if (fd < 0) return errno;
  fi->keep_cache = 0;
  fi->fh = ctx_.handles.add(ino, BackupFileHandle(fd));
  return 0;
}

int BackupsNode::read(BackupFileHandle& h, size_t size, off_t off, std::string& out) {
  out.resize(size);
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(h.fd, out.data() + done, size - done, off_t(off) + off_t(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      out.clear();
      return errno;
    }
    if (n == 0) break;
    done += size_t(n);
  }
  out.resize(done);
  return 0;
}

// ---- status, ctl -----------------------------------------------------------------

std::string BackupsNode::status() {
  if (!manager_) return "{\"state\": \"unavailable\"}\n";
  return manager_->status_json();
}

std::string BackupsNode::status_field(const char* name) {
  auto doc = nlohmann::json::parse(status(), nullptr, false);
  return doc.is_object() && doc.contains(name) && doc[name].is_string() ? doc[name].get<std::string>() : "";
}

bool BackupsNode::job_running() { return manager_ && manager_->job_running(); }

// Opening backups/ctl for writing while a job runs fails with EBUSY: the
// kernel serialises writes to one inode, so a second writer would otherwise
// wait for the running job instead of being told.
int BackupsNode::control_open() {
  if (!job_running()) return 0;
  std::string job = status_field("job");
  ctx_.log.add("backup: refused to open backups/ctl: a " + (job.empty() ? std::string("backup") : job) +
               " job is running (EBUSY)");
  return EBUSY;
}

int BackupsNode::run_control(const std::string& line) {
  size_t start = line.find_first_not_of(" \t\r\n");
  if (start == std::string::npos) return 0;
  size_t end = line.find_last_not_of(" \t\r\n");
  std::string command = line.substr(start, end - start + 1);
  if (!manager_) {
    ctx_.log.add("backup: " + command + ": backups are not available");
    return EIO;
  }
  Status st = manager_->run(command);
  // The manager logs every job it ran (and bad commands); a refusal because
  // another job runs is not a job.
  if (st.code == EBUSY) ctx_.log.add("backup: " + command + ": EBUSY: " + st.message);
  return st.code;
}

// A ctl command is one line of at most kMaxControlBytes. A write that would
// carry the text not yet run past that fails whole, and so does every later
// write and close of that open file, so that nothing of it runs: the kernel
// cuts a long write into requests (128 KiB each), the first of which already
// passes the cap, so the caller's write() fails instead of a part of it
// being taken, and a command cut short by a refused request can never run.
// Each command returns once the kernel has heard what it changed.
int BackupsNode::control_write(std::string_view data, CtlHandle& h) {
  if (h.command_refused) return EINVAL;
  if (h.pending_command.size() + data.size() > kMaxControlBytes) {
    h.command_refused = true;
    h.pending_command.clear();
    ctx_.log.add("backup: refused a write to backups/ctl: a command is one line of at most " +
                 std::to_string(kMaxControlBytes) + " bytes (EINVAL); nothing of this open file is run");
    return EINVAL;
  }
  h.pending_command.append(data);
  int err = 0;
  for (auto nl = h.pending_command.find('\n'); nl != std::string::npos; nl = h.pending_command.find('\n')) {
    std::string line = h.pending_command.substr(0, nl);
    h.pending_command.erase(0, nl + 1);
    if (!err) err = run_control(line);
    ctx_.invalidator.wait();
  }
  return err;
}

int BackupsNode::control_flush(CtlHandle& h) {
  if (h.command_refused) return EINVAL;
  if (h.pending_command.empty()) return 0;
  std::string line;
  line.swap(h.pending_command);
  int err = run_control(line);
  ctx_.invalidator.wait();
  return err;
}

void BackupsNode::extend_stats(nlohmann::json& stats) {
  if (!manager_) return;
  auto list = manager_->list();
  stats["backups"] = list.size();
  if (!list.empty()) stats["newest_backup"] = list.back().id;
}

}  // namespace itemfs::fs
