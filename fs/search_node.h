// search/: any name is a query, run when it is looked up.
//   search/<q>/                 ranked results: symbolic links <rank>-<id>.json
//                               to ../../items/<shard>/<id>.json
//   search/<q>.json             the same results as one JSON document
//   search/<q>.suggest.json, search/<q>.facets.json
//   search/README               the query language
// Nothing below search/ is cached by the kernel (timeouts 0), and a query
// answers its caller (uid, gid, groups) with the items that caller may
// read. The index is created with the mount (attach) and follows the
// store's writes; the search calls are in search_lookup, hits_for and
// search_document.
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "fs/context.h"
#include "fs/entry_table.h"
#include "search/search.h"

namespace itemfs::fs {

class SearchNode {
 public:
  explicit SearchNode(Context& ctx) : ctx_(ctx) {}

  // Creates the search index; it must exist before the first write of the mount.
  void attach();
  void detach();
  // Changes the store committed that the index has not applied yet.
  uint64_t index_lag() const;

  int stat(fuse_ino_t ino, struct stat& st);
  // Search answers the caller of `req` (its uid, gid and groups) with the items it may read.
  int lookup(fuse_ino_t parent, const std::string& name, fuse_entry_param& e, fuse_req_t req);
  int list(fuse_ino_t ino, DirEntries& entries, fuse_req_t req);
  // On success the handle is in the table and fi->fh names it.
  int open(fuse_ino_t ino, bool writing, fuse_file_info* fi, fuse_req_t req);
  int readlink(fuse_ino_t ino, std::string& target);
  void remember(fuse_ino_t ino) { nodes_.remember(ino); }
  void forget(fuse_ino_t ino, uint64_t n) { nodes_.forget(ino, n); }
  size_t size() { return nodes_.size(); }

 private:
  struct Node {
    enum Kind { kReadme, kQueryDir, kResult, kFile } kind = kReadme;
    fuse_ino_t parent = 0;
    std::string name;   // the entry name in `parent` (and whom it answers, see node_name)
    std::string query;  // kQueryDir, kFile
    std::string file_kind;  // kFile: "json", "suggest", "facets"
    struct stat st {};
    // kResult: the link target. kFile: the document made by the latest
    // lookup, handed to the next open (content_ready), else made at open.
    std::string content;
    bool content_ready = false;
    uint64_t seq = 0;               // which lookup made content/hits
    std::vector<std::string> hits;  // kQueryDir: item ids in rank order
    search::Reader made_for;        // kQueryDir, kFile: whom content/hits answer
    uint64_t lookups = 0;           // references the kernel holds
  };

  int search_lookup(const std::string& name, fuse_entry_param& e, const search::Reader& who);
  int result_lookup(fuse_ino_t dir, const std::string& name, fuse_entry_param& e, const search::Reader& who);
  // The hits of query directory `dir` for `who`: the ones its lookup made
  // when they answer `who`, else the query run again for `who`.
  int hits_for(fuse_ino_t dir, const search::Reader& who, std::vector<std::string>& hits);
  // Runs `query` for `who` without snippets: the item ids in rank order.
  int run_query(const std::string& query, const search::Reader& who, std::vector<std::string>& hits);
  // Makes the document of search file `kind` ("json", "suggest", "facets")
  // for `query`, as `who` may see it; an errno, logged, on failure.
  int search_document(const std::string& kind, const std::string& query, std::string& out,
                      const search::Reader& who);
  std::string readme_text() const;

  Context& ctx_;
  std::unique_ptr<search::Index> index_;
  EntryTable<Node> nodes_{kSearchBase};
  std::atomic<uint64_t> search_seq_{0};
  int64_t time_ns_ = now_ns();
};

}  // namespace itemfs::fs
