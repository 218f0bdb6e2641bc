// search/ of the mount (fs/search_node.h).
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
// again for that caller: hits_for(), open(). Documents are read with
// direct_io, so no page cache holds one caller's answer for another.
#include "fs/search_node.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <set>

namespace itemfs::fs {

namespace {

using store::Status;

struct stat make_stat(fuse_ino_t ino, uint32_t mode, uint64_t size, int64_t mtime_ns) {
  return stat_of(ino, mode, size, getuid(), getgid(), mtime_ns, mtime_ns);
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

std::string link_target(const std::string& id) { return "../../" + store::item_path(id); }

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

void SearchNode::attach() {
  // A search waits up to 200 ms for the index to apply the writes before it.
  index_ = std::make_unique<search::Index>(ctx_.store, search::IndexOptions{std::chrono::milliseconds(200), {}});
}

uint64_t SearchNode::index_lag() const { return index_ ? index_->lag() : 0; }

void SearchNode::detach() { index_.reset(); }

int SearchNode::stat(fuse_ino_t ino, struct stat& st) {
  if (ino == kSearchIno) {
    st = stat_of(ino, S_IFDIR | 0755, 0, getuid(), getgid(), ctx_.mount_time, ctx_.mount_time);
    return 0;
  }
  std::lock_guard lock(nodes_.mutex);
  Node* node = nodes_.find(ino);
  if (!node) return ENOENT;
  st = node->st;
  return 0;
}

int SearchNode::lookup(fuse_ino_t parent, const std::string& name, fuse_entry_param& e, fuse_req_t req) {
  e = fuse_entry_param{};
  if (parent == kSearchIno) return search_lookup(name, e, reader_of(req));
  Node::Kind kind;
  {
    std::lock_guard lock(nodes_.mutex);
    Node* node = nodes_.find(parent);
    if (!node) return ENOENT;
    kind = node->kind;
  }
  if (kind == Node::kQueryDir) return result_lookup(parent, name, e, reader_of(req));
  return ENOTDIR;
}

int SearchNode::search_document(const std::string& kind, const std::string& query, std::string& out,
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
      if (st.ok() && r.pending)
        ctx_.log.add("search: '" + query + "' answered with " + std::to_string(r.pending) +
                     " changes not yet indexed");
    }
  } catch (const std::exception& ex) {
    st = Status::error(EIO, ex.what());
  }
  if (!st.ok()) {
    ctx_.log.add("search: refused query '" + query + "': " + st.message);
    return st.code ? st.code : EIO;
  }
  if (out.empty() || out.back() != '\n') out += '\n';
  return 0;
}

int SearchNode::run_query(const std::string& query, const search::Reader& who, std::vector<std::string>& hits) {
  search::Results r;
  Status st;
  try {
    st = index_->run_without_snippets(query, r, who);
  } catch (const std::exception& ex) {
    st = Status::error(EIO, ex.what());
  }
  if (!st.ok()) {
    ctx_.log.add("search: refused query '" + query + "': " + st.message);
    return st.code ? st.code : EIO;
  }
  hits.clear();
  hits.reserve(r.hits.size());
  for (auto& h : r.hits) hits.push_back(std::move(h.id));
  return 0;
}

std::string SearchNode::readme_text() const { return std::string(search::Index::readme()) + kMountReadme; }

int SearchNode::search_lookup(const std::string& name, fuse_entry_param& e, const search::Reader& who) {
  int64_t now = now_ns();
  if (name == "README") {
    std::string text = readme_text();
    std::lock_guard lock(nodes_.mutex);
    fuse_ino_t ino;
    Node& node = nodes_.at(kSearchIno, name, Node::kReadme, ino);
    node.st = make_stat(ino, S_IFREG | 0444, text.size(), time_ns_);
    ++node.lookups;
    e.ino = ino;
    e.attr = node.st;
    return 0;
  }
  if (!index_) return ENOENT;
  uint64_t seq = ++search_seq_;
  Node::Kind kind = Node::kFile;
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
    kind = Node::kQueryDir;
    query = name;
  }
  std::string content;
  std::vector<std::string> hits;
  if (kind == Node::kFile) {
    if (int err = search_document(file_kind, query, content, who)) return err;
  } else if (int err = run_query(query, who, hits)) {
    return err;
  }
  std::lock_guard lock(nodes_.mutex);
  fuse_ino_t ino;
  Node& node = nodes_.at(kSearchIno, node_name(name, who), kind, ino);
  node.query = query;
  node.file_kind = file_kind;
  if (seq >= node.seq) {  // an older lookup finishing late does not win
    node.seq = seq;
    node.made_for = who;
    if (kind == Node::kFile) {
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

int SearchNode::hits_for(fuse_ino_t dir, const search::Reader& who, std::vector<std::string>& hits) {
  std::string query;
  {
    std::lock_guard lock(nodes_.mutex);
    Node* node = nodes_.find(dir);
    if (!node) return ENOENT;
    if (node->kind != Node::kQueryDir) return ENOTDIR;
    if (node->made_for == who) {
      hits = node->hits;
      return 0;
    }
    query = node->query;
  }
  if (!index_) return ENOENT;
  uint64_t seq = ++search_seq_;
  if (int err = run_query(query, who, hits)) return err;
  std::lock_guard lock(nodes_.mutex);
  Node* node = nodes_.find(dir);
  if (node && seq >= node->seq) {
    node->seq = seq;
    node->hits = hits;
    node->made_for = who;
  }
  return 0;
}

int SearchNode::result_lookup(fuse_ino_t dir, const std::string& name, fuse_entry_param& e,
                              const search::Reader& who) {
  size_t rank;
  std::string id;
  if (!parse_result_name(name, rank, id)) return ENOENT;
  std::vector<std::string> hits;
  if (int err = hits_for(dir, who, hits)) return err == ENOTDIR ? ENOENT : err;
  std::lock_guard lock(nodes_.mutex);
  if (!nodes_.find(dir)) return ENOENT;
  if (rank > hits.size() || hits[rank - 1] != id || name != result_name(rank, rank_width(hits.size()), id))
    return ENOENT;
  std::string target = link_target(id);
  fuse_ino_t ino;
  Node& node = nodes_.at(dir, name, Node::kResult, ino);
  node.content = target;
  node.st = make_stat(ino, S_IFLNK | 0777, target.size(), time_ns_);
  ++node.lookups;
  e.ino = ino;
  e.attr = node.st;
  return 0;
}

int SearchNode::list(fuse_ino_t ino, DirEntries& entries, fuse_req_t req) {
  if (ino == kSearchIno) {
    std::string text = readme_text();
    std::lock_guard lock(nodes_.mutex);
    fuse_ino_t readme;
    Node& node = nodes_.at(kSearchIno, "README", Node::kReadme, readme);
    node.st = make_stat(readme, S_IFREG | 0444, text.size(), time_ns_);
    entries.emplace_back("README", node.st);
    return 0;
  }
  {
    std::lock_guard lock(nodes_.mutex);
    Node* node = nodes_.find(ino);
    if (!node) return ENOENT;
    if (node->kind != Node::kQueryDir) return ENOTDIR;
  }
  std::vector<std::string> hits;
  if (int err = hits_for(ino, reader_of(req), hits)) return err;
  size_t width = rank_width(hits.size());
  std::set<std::string> names;
  std::lock_guard lock(nodes_.mutex);
  for (size_t i = 0; i < hits.size(); ++i) {
    std::string name = result_name(i + 1, width, hits[i]);
    std::string target = link_target(hits[i]);
    fuse_ino_t child;
    Node& node = nodes_.at(ino, name, Node::kResult, child);
    node.content = target;
    node.st = make_stat(child, S_IFLNK | 0777, target.size(), time_ns_);
    entries.emplace_back(name, node.st);
    names.insert(name);
  }
  nodes_.drop_untaken(ino, names);  // entries of earlier results that the kernel never took
  return 0;
}

int SearchNode::open(fuse_ino_t ino, bool writing, fuse_file_info* fi, fuse_req_t req) {
  if (ino == kSearchIno) return writing ? EACCES : EISDIR;
  Node::Kind kind;
  std::string query, file_kind;
  TextHandle handle;
  const search::Reader who = reader_of(req);  // (outside the lock: it may read /proc)
  {
    std::lock_guard lock(nodes_.mutex);
    Node* node = nodes_.find(ino);
    if (!node) return ENOENT;
    kind = node->kind;
    if (kind == Node::kQueryDir) return EISDIR;
    if (kind == Node::kResult) return ELOOP;
    if (writing) return EACCES;
    query = node->query;
    file_kind = node->file_kind;
    if (kind == Node::kFile && node->content_ready && node->made_for == who) {
      // Made by the lookup that resolved this very open (for this caller).
      handle.text = std::move(node->content);
      node->content.clear();
      node->content_ready = false;
    }
  }
  fi->noflush = 1;
  if (kind == Node::kReadme) {
    handle.text = readme_text();
    fi->keep_cache = 1;
  } else {
    if (handle.text.empty())
      if (int err = search_document(file_kind, query, handle.text, who)) return err;
    fi->direct_io = 1;
    fi->keep_cache = 0;
  }
  fi->fh = ctx_.handles.add(ino, std::move(handle));
  return 0;
}

int SearchNode::readlink(fuse_ino_t ino, std::string& target) {
  std::lock_guard lock(nodes_.mutex);
  Node* node = nodes_.find(ino);
  if (!node) return ENOENT;
  if (node->kind != Node::kResult) return EINVAL;
  target = node->content;
  return 0;
}

}  // namespace itemfs::fs
