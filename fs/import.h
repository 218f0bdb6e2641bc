// `itemfs import`: loads JSON documents into a store from files,
// directories, JSON Lines and standard input, for people and for pipelines.
//
// Inputs: a `.json` file is one item named by its file name (so export and
// import round-trip); `.jsonl` and `.ndjson` are JSON Lines, one item a line
// named by its `id` field (or another, or made from a URL); each may be
// gzipped (`.json.gz`, `.jsonl.gz`, `.ndjson.gz`); a directory is every such
// file under it, in name order; `-` is JSON Lines on standard input, gzipped
// or not. Items are written in batches by store::PutPipeline. An item whose
// bytes and attributes are those stored already is counted unchanged and not
// written again. The summary counts added, changed, unchanged and skipped
// items and says why each skip happened; the exit status is 1 if any input
// was skipped.
#pragma once

#include <string>
#include <vector>

#include "store/store.h"

namespace itemfs::fs {

struct ImportOptions {
  std::string id_field = "id";  // JSON Lines: the top-level field naming each item
  // JSON Lines: make each id from this URL field instead: the first 16 hex
  // digits of the URL's SHA-256, as crawlers name pages ('/' cannot be in an id).
  std::string id_from_url;
  bool json = false;  // one JSON summary on stdout instead of the summary line
};

// Imports `paths` into `store` (whose hooks, the search index, are added
// already). Returns the exit status.
int run_import(store::Store& store, const std::vector<std::string>& paths, const ImportOptions& options);

// The id --id-from-url makes of `url`.
std::string id_from_url(std::string_view url);

}  // namespace itemfs::fs
