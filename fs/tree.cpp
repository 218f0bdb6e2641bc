// search/ and backups/ of the mount (fs/tree.h).
//
// search/<q>/ entries are symbolic links to ../../items/<shard>/<id>.json
// rather than copies of the items: a link costs nothing to make (the listing
// is only ids), always shows the item's current content and attributes, and
// every tool that reads files (cat, jq, grep -l, less) follows it. A query runs
// at each lookup; its results live in the node until the next lookup, and the
// kernel is told to cache no entry or attribute below search/.
//
// Who may see what: a query answers its caller (the request's uid, gid and
// supplementary groups) with the items that caller may read
// (search::Reader). So that two callers asking the same name never get
// each other's answer, the nodes of search/<q>, <q>.json, .suggest.json and
// .facets.json are per caller: the name in the node table carries the
// caller (node_name), so each caller has its own inode, attributes, hits and
// document, and the kernel, which revalidates every entry below search/ at
// each use (timeout 0), drops an entry that now names another caller's
// inode. A node used by another caller than the one it answers (an open
// directory inherited across setuid, a descriptor passed on) is answered
// again for that caller: hits_for(), extra_open(). Documents are read with
// direct_io, so no page cache holds one caller's answer for another.
#include "fs/tree.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>

namespace itemfs::fs {

namespace {

using store::Status;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

timespec to_timespec(int64_t ns) { return timespec{time_t(ns / 1000000000), long(ns % 1000000000)}; }

struct stat make_stat(fuse_ino_t ino, uint32_t mode, uint64_t size, int64_t mtime_ns) {
  struct stat st {};
  st.st_ino = ino;
  st.st_mode = mode;
  st.st_nlink = S_ISDIR(mode) ? 2 : 1;
  st.st_size = off_t(size);
  st.st_uid = getuid();
  st.st_gid = getgid();
  st.st_blksize = 4096;
  st.st_blocks = blkcnt_t((size + 511) / 512);
  st.st_mtim = to_timespec(mtime_ns);
  st.st_atim = st.st_mtim;
  st.st_ctim = st.st_mtim;
  return st;
}

// Who is asking, for search: root needs no groups (it reads everything),
// which spares reading them from /proc for each of its lookups. A caller
// whose groups cannot be read (it has exited) is answered without them.
search::Reader reader_of(fuse_req_t req) {
  search::Reader who;
  const fuse_ctx* ctx = fuse_req_ctx(req);
  who.uid = ctx->uid;
  who.gid = ctx->gid;
  if (who.root()) return who;
  std::vector<gid_t> groups(64);
  int n = fuse_req_getgroups(req, int(groups.size()), groups.data());
  if (n > int(groups.size())) {
    groups.resize(size_t(n));
    n = fuse_req_getgroups(req, int(groups.size()), groups.data());
  }
  if (n > 0) {
    groups.resize(std::min(size_t(n), groups.size()));
    std::sort(groups.begin(), groups.end());
    groups.erase(std::unique(groups.begin(), groups.end()), groups.end());
    who.groups.assign(groups.begin(), groups.end());
  }
  return who;
}

// The node table's name for entry `name` of search/ as answered to `who`:
// the name itself for root, else the name, a NUL (which no entry name
// holds) and the caller's ids.
std::string node_name(const std::string& name, const search::Reader& who) {
  if (who.root()) return name;
  std::string out = name;
  out += '\0';
  out += std::to_string(who.uid) + "." + std::to_string(who.gid);
  for (uint32_t g : who.groups) out += "." + std::to_string(g);
  return out;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() > suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Reads a backup file through the descriptor opened at open(), so a file
// replaced meanwhile (verify.json) is read whole, old or new.
class FileReader : public store::ItemReader {
 public:
  explicit FileReader(int fd) : fd_(fd) {}
  ~FileReader() override { ::close(fd_); }
  Status pread(uint64_t offset, uint64_t size, std::string& out) override {
    out.resize(size);
    size_t done = 0;
    while (done < size) {
      ssize_t n = ::pread(fd_, out.data() + done, size - done, off_t(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        out.clear();
        return Status::error(err, std::strerror(err));
      }
      if (n == 0) break;
      done += size_t(n);
    }
    out.resize(done);
    return {};
  }

 private:
  int fd_;
};

constexpr const char* kMountReadme = R"(
## The entries of search/<query>/

Each entry is a symbolic link named `<rank>-<id>.json` (the rank zero-padded
to the width of the number of hits, at least three digits, so `ls` lists them
best first) that points to `../../items/<shard>/<id>.json`. Links rather than
copies: they cost nothing to list, always show the item's current content,
and `cat`, `jq`, `grep -l word search/q/*` and editors follow them. `ls -L`
or `find -L` show the items' own sizes and times.

Nothing under search/ is cached by the kernel: every lookup runs the query
again, so a search made after a write sees it.

On a mount that other users may enter (`-o allow_other`), each user's
searches find only the items that user may read, as the item's owner, group
and mode decide (root reads everything): no entry, id, snippet, count, facet
value or suggested word comes from an item the user may not read, and a
`chmod` or `chown` counts at the next search. Two users asking the same
query each get their own answer.
)";

}  // namespace

Tree::~Tree() = default;

// ---- services --------------------------------------------------------------

void Tree::attach_services(const MountConfig& config) {
  tree_time_ns_ = now_ns();
  backup_group_ = config.backup_group;
  // A search waits up to 200 ms for the index to apply the writes before it.
  index_ = std::make_unique<search::Index>(store(), search::IndexOptions{std::chrono::milliseconds(200), {}});
  backup::Options options;
  options.dir = config.backup_dir.empty() ? config.store_dir / "backups" : config.backup_dir;
  if (!config.backup_key_file.empty()) options.key_file = std::filesystem::path(config.backup_key_file);
  options.chain_max = config.backup_chain_max;
  backups_ = std::make_unique<backup::Manager>(store(), options);
  backups_->on_restore([this](const std::vector<std::string>& ids) { restored(ids); });
  backups_->on_log([this](std::string_view line) { log().add(std::string(line)); });
  // A read-only mount takes no backups (it could not record them).
  if (config.backup_every_seconds > 0 && !store().options().read_only)
    backups_->start_schedule(std::chrono::seconds(config.backup_every_seconds), config.backup_keep_last);
}

void Tree::cancel_jobs() {
  if (backups_) backups_->cancel();
}

void Tree::detach_services() {
  backups_.reset();  // stops the schedule, waits for a running job
  index_.reset();
}

// A restore changed items behind the kernel's back: drop what it caches of
// them (queued; the Filesystem sends the notifications from its own thread).
void Tree::restored(const std::vector<std::string>& ids) {
  std::set<std::string> shards;
  for (const auto& id : ids) {
    std::string shard = store::shard_of(id);
    if (auto item = store().item(id)) invalidate_inode(kItemBase + fuse_ino_t(item->ino));
    if (auto dir = store().dir_info(shard)) invalidate_entry(kDirBase + fuse_ino_t(dir->ino), id + ".json");
    shards.insert(shard);
  }
  for (const auto& shard : shards) {
    invalidate_entry(kItemsIno, shard);
    if (auto dir = store().dir_info(shard)) invalidate_inode(kDirBase + fuse_ino_t(dir->ino));  // its listing
  }
  invalidate_inode(kItemsIno);
  log().add("restore: " + std::to_string(ids.size()) + " items changed");
}

// ---- the node table ----------------------------------------------------------

Tree::TreeNode& Tree::node_at(fuse_ino_t parent, const std::string& name, TreeNode::Kind kind, fuse_ino_t& ino) {
  auto key = std::make_pair(parent, name);
  if (auto it = tree_names_.find(key); it != tree_names_.end()) {
    auto node = tree_nodes_.find(it->second);
    if (node != tree_nodes_.end() && node->second.kind == kind) {
      ino = it->second;
      return node->second;
    }
  }
  ino = kTreeBase + next_tree_++;
  TreeNode& node = tree_nodes_[ino];
  node.kind = kind;
  node.parent = parent;
  node.name = name;
  tree_names_[key] = ino;
  return node;
}

void Tree::drop_node(fuse_ino_t ino) {
  auto it = tree_nodes_.find(ino);
  if (it == tree_nodes_.end()) return;
  auto key = std::make_pair(it->second.parent, it->second.name);
  if (auto n = tree_names_.find(key); n != tree_names_.end() && n->second == ino) tree_names_.erase(n);
  tree_nodes_.erase(it);
}

void Tree::extra_remember(fuse_ino_t, const std::string&, fuse_ino_t ino) {
  std::lock_guard lock(tree_mutex_);
  if (auto it = tree_nodes_.find(ino); it != tree_nodes_.end()) ++it->second.lookups;
}

void Tree::extra_forget(fuse_ino_t ino, uint64_t n) {
  std::lock_guard lock(tree_mutex_);
  auto it = tree_nodes_.find(ino);
  if (it == tree_nodes_.end()) return;
  it->second.lookups = it->second.lookups > n ? it->second.lookups - n : 0;
  if (it->second.lookups > 0) return;
  // Entries listed but never looked up die with their directory.
  std::vector<fuse_ino_t> orphans;
  for (auto c = tree_names_.lower_bound({ino, std::string()}); c != tree_names_.end() && c->first.first == ino; ++c) {
    auto child = tree_nodes_.find(c->second);
    if (child != tree_nodes_.end() && child->second.lookups == 0) orphans.push_back(c->second);
  }
  for (fuse_ino_t o : orphans) drop_node(o);
  drop_node(ino);
}

// ---- lookup -------------------------------------------------------------------

int Tree::extra_lookup(fuse_ino_t parent, const std::string& name, fuse_entry_param& e, fuse_req_t req) {
  e = fuse_entry_param{};
  if (parent == kSearchIno) return search_lookup(name, e, reader_of(req));
  if (parent == kBackupsIno) return backup_lookup(parent, name, e);
  TreeNode::Kind kind;
  {
    std::lock_guard lock(tree_mutex_);
    auto it = tree_nodes_.find(parent);
    if (it == tree_nodes_.end()) return ENOENT;
    kind = it->second.kind;
  }
  if (kind == TreeNode::kQueryDir) return result_lookup(parent, name, e, reader_of(req));
  if (kind == TreeNode::kBackupDir) return backup_lookup(parent, name, e);
  return ENOTDIR;
}

int Tree::search_document(const std::string& kind, const std::string& query, std::string& out,
                          const search::Reader& who) {
  if (!index_) return ENOENT;
  Status st;
  try {
    if (kind == "suggest") {
      st = index_->suggest_json(query, out, who);
    } else if (kind == "facets") {
      st = index_->facets_json(query, out, who);
    } else {
      search::Results r;
      st = index_->run(query, r, who);
      if (st.ok()) out = search::Index::to_json(r);
      if (st.ok() && r.pending) log().add("search: '" + query + "' answered with " + std::to_string(r.pending) + " changes not yet indexed");
    }
  } catch (const std::exception& ex) {
    st = Status::error(EIO, ex.what());
  }
  if (!st.ok()) {
    log().add("search: refused query '" + query + "': " + st.message);
    return st.code ? st.code : EIO;
  }
  if (out.empty() || out.back() != '\n') out += '\n';
  return 0;
}

std::string Tree::readme_text() const { return std::string(search::Index::readme()) + kMountReadme; }

int Tree::search_lookup(const std::string& name, fuse_entry_param& e, const search::Reader& who) {
  int64_t now = now_ns();
  if (name == "README") {
    std::string text = readme_text();
    std::lock_guard lock(tree_mutex_);
    fuse_ino_t ino;
    TreeNode& node = node_at(kSearchIno, name, TreeNode::kReadme, ino);
    node.st = make_stat(ino, S_IFREG | 0444, text.size(), tree_time_ns_);
    ++node.lookups;
    e.ino = ino;
    e.attr = node.st;
    return 0;
  }
  if (!index_) return ENOENT;
  uint64_t seq = ++search_seq_;
  TreeNode::Kind kind = TreeNode::kFile;
  std::string file_kind, query;
  if (ends_with(name, ".suggest.json")) {
    file_kind = "suggest";
    query = name.substr(0, name.size() - 13);
  } else if (ends_with(name, ".facets.json")) {
    file_kind = "facets";
    query = name.substr(0, name.size() - 12);
  } else if (ends_with(name, ".json")) {
    file_kind = "json";
    query = name.substr(0, name.size() - 5);
  } else {
    kind = TreeNode::kQueryDir;
    query = name;
  }
  std::string content;
  std::vector<std::string> hits;
  if (kind == TreeNode::kFile) {
    if (int err = search_document(file_kind, query, content, who)) return err;
  } else {
    search::Results r;
    Status st;
    try {
      st = index_->run_without_snippets(query, r, who);
    } catch (const std::exception& ex) {
      st = Status::error(EIO, ex.what());
    }
    if (!st.ok()) {
      log().add("search: refused query '" + query + "': " + st.message);
      return st.code ? st.code : EIO;
    }
    hits.reserve(r.hits.size());
    for (auto& h : r.hits) hits.push_back(std::move(h.id));
  }
  std::lock_guard lock(tree_mutex_);
  fuse_ino_t ino;
  TreeNode& node = node_at(kSearchIno, node_name(name, who), kind, ino);
  node.a = query;
  node.b = file_kind;
  if (seq >= node.seq) {  // an older lookup finishing late does not win
    node.seq = seq;
    node.made_for = who;
    if (kind == TreeNode::kFile) {
      node.st = make_stat(ino, S_IFREG | 0444, content.size(), now);
      node.content = std::move(content);
      node.content_ready = true;
    } else {
      node.st = make_stat(ino, S_IFDIR | 0555, 0, now);
      node.hits = std::move(hits);
    }
  }
  ++node.lookups;
  e.ino = ino;
  e.attr = node.st;
  return 0;
}

namespace {

// "<rank>-<id>.json" -> rank (1-based) and id; false if it is not that shape.
bool parse_result_name(const std::string& name, size_t& rank, std::string& id) {
  size_t dash = name.find('-');
  if (dash == 0 || dash == std::string::npos || dash > 9 || !ends_with(name, ".json")) return false;
  rank = 0;
  for (size_t i = 0; i < dash; ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    rank = rank * 10 + size_t(name[i] - '0');
  }
  id = name.substr(dash + 1, name.size() - dash - 1 - 5);
  return rank > 0 && !id.empty();
}

std::string result_name(size_t rank, size_t width, const std::string& id) {
  std::string digits = std::to_string(rank);
  if (digits.size() < width) digits.insert(0, width - digits.size(), '0');
  return digits + "-" + id + ".json";
}

size_t rank_width(size_t hits) { return std::max<size_t>(3, std::to_string(hits).size()); }

std::string link_target(const std::string& id) { return "../../items/" + store::shard_of(id) + "/" + id + ".json"; }

}  // namespace

int Tree::hits_for(fuse_ino_t dir, const search::Reader& who, std::vector<std::string>& hits) {
  std::string query;
  uint64_t seq;
  {
    std::lock_guard lock(tree_mutex_);
    auto it = tree_nodes_.find(dir);
    if (it == tree_nodes_.end()) return ENOENT;
    if (it->second.kind != TreeNode::kQueryDir) return ENOTDIR;
    if (it->second.made_for == who) {
      hits = it->second.hits;
      return 0;
    }
    query = it->second.a;
  }
  if (!index_) return ENOENT;
  seq = ++search_seq_;
  search::Results r;
  Status st;
  try {
    st = index_->run_without_snippets(query, r, who);
  } catch (const std::exception& ex) {
    st = Status::error(EIO, ex.what());
  }
  if (!st.ok()) {
    log().add("search: refused query '" + query + "': " + st.message);
    return st.code ? st.code : EIO;
  }
  hits.clear();
  hits.reserve(r.hits.size());
  for (auto& h : r.hits) hits.push_back(std::move(h.id));
  std::lock_guard lock(tree_mutex_);
  auto it = tree_nodes_.find(dir);
  if (it != tree_nodes_.end() && seq >= it->second.seq) {
    it->second.seq = seq;
    it->second.hits = hits;
    it->second.made_for = who;
  }
  return 0;
}

int Tree::result_lookup(fuse_ino_t dir, const std::string& name, fuse_entry_param& e, const search::Reader& who) {
  size_t rank;
  std::string id;
  if (!parse_result_name(name, rank, id)) return ENOENT;
  std::vector<std::string> hits;
  if (int err = hits_for(dir, who, hits)) return err == ENOTDIR ? ENOENT : err;
  std::lock_guard lock(tree_mutex_);
  if (tree_nodes_.find(dir) == tree_nodes_.end()) return ENOENT;
  if (rank > hits.size() || hits[rank - 1] != id || name != result_name(rank, rank_width(hits.size()), id))
    return ENOENT;
  std::string target = link_target(id);
  fuse_ino_t ino;
  TreeNode& node = node_at(dir, name, TreeNode::kResult, ino);
  node.content = target;
  node.st = make_stat(ino, S_IFLNK | 0777, target.size(), tree_time_ns_);
  ++node.lookups;
  e.ino = ino;
  e.attr = node.st;
  return 0;
}

int Tree::stat_backup(const std::string& id, const std::string& file, struct stat& st) {
  if (!backups_) return ENOENT;
  std::filesystem::path path;
  if (file.empty()) {
    path = backups_->path_of(id, "manifest.json");
    if (path.empty()) return ENOENT;
    path = path.parent_path();
  } else {
    path = backups_->path_of(id, file);
    if (path.empty()) return ENOENT;
  }
  struct stat real {};
  if (::stat(path.c_str(), &real) != 0) return ENOENT;
  int64_t mtime = int64_t(real.st_mtim.tv_sec) * 1000000000 + real.st_mtim.tv_nsec;
  st = make_stat(0, file.empty() ? S_IFDIR | backup_perm(true) : S_IFREG | backup_perm(false),
                 file.empty() ? 0 : uint64_t(real.st_size), mtime);
  st.st_gid = backup_gid();
  st.st_ctim = real.st_ctim;
  return 0;
}

int Tree::backup_lookup(fuse_ino_t parent, const std::string& name, fuse_entry_param& e) {
  std::string id, file;
  if (parent == kBackupsIno) {
    id = name;
  } else {
    std::lock_guard lock(tree_mutex_);
    auto it = tree_nodes_.find(parent);
    if (it == tree_nodes_.end()) return ENOENT;
    id = it->second.a;
    file = name;
  }
  struct stat st;
  if (int err = stat_backup(id, file, st)) return err;
  std::lock_guard lock(tree_mutex_);
  fuse_ino_t ino;
  TreeNode& node = node_at(parent, name, file.empty() ? TreeNode::kBackupDir : TreeNode::kBackupFile, ino);
  node.a = id;
  node.b = file;
  st.st_ino = ino;
  node.st = st;
  ++node.lookups;
  e.ino = ino;
  e.attr = st;
  return 0;
}

// ---- attributes, listing, open ---------------------------------------------------

int Tree::extra_stat(fuse_ino_t ino, struct stat& st) {
  TreeNode::Kind kind;
  std::string id, file;
  {
    std::lock_guard lock(tree_mutex_);
    auto it = tree_nodes_.find(ino);
    if (it == tree_nodes_.end()) return ENOENT;
    kind = it->second.kind;
    if (kind != TreeNode::kBackupDir && kind != TreeNode::kBackupFile) {
      st = it->second.st;
      return 0;
    }
    id = it->second.a;
    file = it->second.b;
  }
  if (int err = stat_backup(id, file, st)) return err;
  st.st_ino = ino;
  return 0;
}

int Tree::extra_list(fuse_ino_t ino, std::vector<std::pair<std::string, struct stat>>& entries, fuse_req_t req) {
  if (ino == kSearchIno) {
    std::string text = readme_text();
    std::lock_guard lock(tree_mutex_);
    fuse_ino_t readme;
    TreeNode& node = node_at(kSearchIno, "README", TreeNode::kReadme, readme);
    node.st = make_stat(readme, S_IFREG | 0444, text.size(), tree_time_ns_);
    entries.emplace_back("README", node.st);
    return 0;
  }
  if (ino == kBackupsIno) {
    if (!backups_) return 0;
    for (const auto& b : backups_->list()) {
      struct stat st;
      if (stat_backup(b.id, "", st) != 0) continue;
      std::lock_guard lock(tree_mutex_);
      fuse_ino_t child;
      TreeNode& node = node_at(kBackupsIno, b.id, TreeNode::kBackupDir, child);
      node.a = b.id;
      node.b.clear();
      st.st_ino = child;
      node.st = st;
      entries.emplace_back(b.id, st);
    }
    return 0;
  }
  TreeNode::Kind kind;
  std::string id;
  std::vector<std::string> hits;
  {
    std::lock_guard lock(tree_mutex_);
    auto it = tree_nodes_.find(ino);
    if (it == tree_nodes_.end()) return ENOENT;
    kind = it->second.kind;
    id = it->second.a;
  }
  if (kind == TreeNode::kQueryDir) {
    if (int err = hits_for(ino, reader_of(req), hits)) return err;
    size_t width = rank_width(hits.size());
    std::set<std::string> names;
    std::lock_guard lock(tree_mutex_);
    for (size_t i = 0; i < hits.size(); ++i) {
      std::string name = result_name(i + 1, width, hits[i]);
      std::string target = link_target(hits[i]);
      fuse_ino_t child;
      TreeNode& node = node_at(ino, name, TreeNode::kResult, child);
      node.content = target;
      node.st = make_stat(child, S_IFLNK | 0777, target.size(), tree_time_ns_);
      entries.emplace_back(name, node.st);
      names.insert(name);
    }
    // Entries of earlier results that the kernel never took.
    std::vector<fuse_ino_t> stale;
    for (auto c = tree_names_.lower_bound({ino, std::string()}); c != tree_names_.end() && c->first.first == ino; ++c) {
      if (names.count(c->first.second)) continue;
      auto child = tree_nodes_.find(c->second);
      if (child != tree_nodes_.end() && child->second.lookups == 0) stale.push_back(c->second);
    }
    for (fuse_ino_t s : stale) drop_node(s);
    return 0;
  }
  if (kind == TreeNode::kBackupDir) {
    static const char* const kSuffixes[] = {".tar.gz", ".tar.gz.enc", ".tar.gz.sha256", ".tar.gz.enc.sha256"};
    std::vector<std::string> files = {"manifest.json"};
    for (const char* suffix : kSuffixes) files.push_back(id + suffix);
    files.push_back("verify.json");
    for (const auto& file : files) {
      struct stat st;
      if (stat_backup(id, file, st) != 0) continue;
      std::lock_guard lock(tree_mutex_);
      fuse_ino_t child;
      TreeNode& node = node_at(ino, file, TreeNode::kBackupFile, child);
      node.a = id;
      node.b = file;
      st.st_ino = child;
      node.st = st;
      entries.emplace_back(file, st);
    }
    return 0;
  }
  return ENOTDIR;
}

int Tree::extra_open(fuse_ino_t ino, bool writing, Handle& handle, fuse_file_info* fi, fuse_req_t req) {
  TreeNode::Kind kind;
  std::string a, b;
  const search::Reader who = reader_of(req);  // (outside the lock: it may read /proc)
  {
    std::lock_guard lock(tree_mutex_);
    auto it = tree_nodes_.find(ino);
    if (it == tree_nodes_.end()) return ENOENT;
    TreeNode& node = it->second;
    kind = node.kind;
    if (kind == TreeNode::kQueryDir || kind == TreeNode::kBackupDir) return EISDIR;
    if (kind == TreeNode::kResult) return ELOOP;
    if (writing) return EACCES;
    a = node.a;
    b = node.b;
    if (kind == TreeNode::kFile && node.content_ready && node.made_for == who) {
      // Made by the lookup that resolved this very open (for this caller).
      handle.generated = std::move(node.content);
      node.content.clear();
      node.content_ready = false;
    }
  }
  fi->noflush = 1;
  if (kind == TreeNode::kReadme) {
    handle.generated = readme_text();
    fi->keep_cache = 1;
    return 0;
  }
  if (kind == TreeNode::kFile) {
    if (handle.generated.empty())
      if (int err = search_document(b, a, handle.generated, who)) return err;
    fi->direct_io = 1;
    fi->keep_cache = 0;
    return 0;
  }
  // A backup file: read from the real one.
  if (!backups_) return ENOENT;
  auto path = backups_->path_of(a, b);
  if (path.empty()) return ENOENT;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);  // never a link, FIFO or device
  if (fd < 0) return errno;
  handle.reader = std::make_unique<FileReader>(fd);
  fi->keep_cache = 0;
  return 0;
}

void Tree::readlink(fuse_req_t req, fuse_ino_t ino) {
  std::string target;
  {
    std::lock_guard lock(tree_mutex_);
    auto it = tree_nodes_.find(ino);
    if (it == tree_nodes_.end()) return (void)fuse_reply_err(req, ENOENT);
    if (it->second.kind != TreeNode::kResult) return (void)fuse_reply_err(req, EINVAL);
    target = it->second.content;
  }
  fuse_reply_readlink(req, target.c_str());
}

// ---- stats and backups/ctl ---------------------------------------------------------

void Tree::extend_stats(nlohmann::json& stats) {
  if (backups_) {
    auto list = backups_->list();
    stats["backups"] = list.size();
    if (!list.empty()) stats["newest_backup"] = list.back().id;
  }
  if (index_) stats["index_lag"] = index_->lag();
  std::lock_guard lock(tree_mutex_);
  stats["tree_nodes"] = tree_nodes_.size();
}

std::string Tree::backup_status() {
  if (!backups_) return "{\"state\": \"unavailable\"}\n";
  return backups_->status_json();
}

int Tree::control_open() {
  if (!backups_) return 0;
  auto status = nlohmann::json::parse(backups_->status_json(), nullptr, false);
  if (status.is_object() && status.value("state", "") == "running") {
    log().add("backup: refused to open backups/ctl: a " + status.value("job", std::string("backup")) +
              " job is running (EBUSY)");
    return EBUSY;
  }
  return 0;
}

int Tree::run_control(const std::string& line) {
  size_t start = line.find_first_not_of(" \t\r\n");
  if (start == std::string::npos) return 0;
  size_t end = line.find_last_not_of(" \t\r\n");
  std::string command = line.substr(start, end - start + 1);
  if (!backups_) {
    log().add("backup: " + command + ": backups are not available");
    return EIO;
  }
  Status st = backups_->run(command);
  // The manager logs every job it ran (and bad commands); a refusal because
  // another job runs is not a job.
  if (st.code == EBUSY) log().add("backup: " + command + ": EBUSY: " + st.message);
  return st.code;
}

}  // namespace itemfs::fs
