// The index: tables, hook, queries. See search.h for the contract and
// README.md for the query language.
//
// Design (the why is in README.md, "How it works"):
//  - search_fts is a contentless FTS5 table (content='') with one column and
//    detail=none: for each token, the rows that hold it, nothing more. A row
//    is the title's words, the same words again marked as title words
//    (kTitleMark + word), the rest of the text, field filters as
//    kFieldMark + field code + word and exact-value markers (host=...,
//    lang=...), and a token for the length class of its text (kLengthMark +
//    a letter; search_doc.len holds it too, which is where ranking reads it).
//    An identifier (ids, hashes: see is_identifier) is held as two bucket
//    tokens instead of itself; what a query finds through them is checked
//    against the item (CheckPlan), as phrases are.
//  - Its rowid is a generation number, new for every indexed version of an
//    item. search_doc maps generation -> item (ino, hash) plus the facet
//    values (ids of search_value, which keeps each value and tag list
//    once); the item's id is items.id.
//    Deleting from a contentless table needs the exact values that were
//    inserted; they are re-extracted from the previous version of the item
//    (or taken from a small cache of recent inserts). In the rare case
//    neither is available the old generation is left behind as a dead row,
//    listed in search_dead: queries skip those, and reindex reclaims them.
//  - Ranking is computed here from sorted lists of rowids (the rows of the
//    query, of each word's title token), not by FTS5 (see "Ranking").
//  - Snippets are made at query time from the top hits' own text, read only
//    as far as the passage needs (Snippets).

#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "search/extract.h"
#include "search/follower.h"
#include "search/query.h"
#include "search/search.h"
#include "search/search_db.h"
#include "search/tokenize.h"
#include "store/hash.h"
#include "store/parallel.h"
#include "store/utf8.h"

namespace itemfs::search {

using namespace detail;
using store::Status;
using store::StoreError;

namespace {

constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS search_meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS search_doc("
    " gen INTEGER PRIMARY KEY,"      // rowid in search_fts
    " ino INTEGER NOT NULL UNIQUE,"  // the item (items.ino)
    " sha INTEGER NOT NULL,"  // first 8 bytes of the item's SHA-256: which version is indexed
    " date INTEGER,"          // published_at, else crawled_at, unix seconds
    " len INTEGER NOT NULL,"  // length class of the text, as its length token in search_fts
    " host INTEGER, author INTEGER, lang INTEGER,"  // search_value ids
    " tags INTEGER);"  // search_value id of the item's tags joined by U+001F
    // Facet values and tag lists, each kept once (items share them), found
    // by a hash of the value: an index of the values would be as large as
    // they are. Values no item uses any more are swept now and then (see
    // Impl::sweep_values).
    "CREATE TABLE IF NOT EXISTS search_value(id INTEGER PRIMARY KEY, hash INTEGER NOT NULL, value TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS search_value_by_hash ON search_value(hash);"
    // Full-text rows that belong to no item (yet): queries skip them.
    "CREATE TABLE IF NOT EXISTS search_dead(gen INTEGER PRIMARY KEY);"
    "CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5(text, content='', detail=none, columnsize=0,"
    " tokenize='unicode61 remove_diacritics 2');"
    "CREATE VIRTUAL TABLE IF NOT EXISTS search_vocab USING fts5vocab(search_fts, 'row');"
    // The items some non-root reader may not read (a read bit missing), as
    // the feed last said: who may read them is decided from these.
    "CREATE TABLE IF NOT EXISTS search_closed(ino INTEGER PRIMARY KEY, mode INTEGER NOT NULL, uid INTEGER NOT NULL,"
    " gid INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO search_meta(key, value) VALUES('next_seq', 1);"
    // The last sequence number of the store's change feed applied.
    "INSERT OR IGNORE INTO search_meta(key, value) VALUES('applied', 0);";

constexpr const char* kDrop =
    "DROP TABLE IF EXISTS search_vocab; DROP TABLE IF EXISTS search_fts; DROP TABLE IF EXISTS search_doc;"
    "DROP TABLE IF EXISTS search_value; DROP TABLE IF EXISTS search_dead; DROP TABLE IF EXISTS search_closed;"
    "DROP TABLE IF EXISTS search_meta;";
// The name of the index in the store's list of feed followers.
constexpr const char* kFollowerName = "search";
// Changes applied in one transaction of search.db.
constexpr size_t kFeedBatch = 2000;
// Items whose text is extracted at once (on worker threads) when the index
// is built from all the items.
constexpr size_t kRebuildBatch = 512;

constexpr int kLengthClasses = 16;

constexpr size_t kSnippetBodyCap = 256u << 10;  // text read per hit for its snippet
constexpr size_t kRecentCacheBytes = 8u << 20;
constexpr size_t kMaxPending = 256;  // deferred full-text deletes (see Impl::drop)
constexpr size_t kMaxPendingBytes = 8u << 20;
constexpr size_t kMaxQueuedBytes = 16u << 20;  // puts' rows held until the commit
constexpr size_t kMaxProblems = 100;
// An Index that inserted at least kMergeAfterRows rows, and at least
// 1/kMergeFraction of all rows, merges the full-text index when it closes.
constexpr uint64_t kMergeAfterRows = 1000;
constexpr uint64_t kMergeFraction = 4;
// Unused facet values are swept when the entries dropped since the last
// sweep reach 1/kSweepFraction of the entries (checked every
// kSweepCheckEvery drops), and on close.
constexpr uint64_t kSweepCheckEvery = 1000;
constexpr uint64_t kSweepFraction = 4;
// Rows a prefix finds through identifier buckets are all checked, up to
// this many (about 0.1 ms each); beyond, only those without its words.
constexpr size_t kCheckBucketRowsUpTo = 64;
// Snippets are made on two threads for at least this many hits: a thread
// costs about as much as a few hits' snippets.
constexpr size_t kSnippetsOnTwoThreadsFrom = 16;

[[noreturn]] void fail(sqlite3* db, const std::string& what) {
  const int rc = sqlite3_extended_errcode(db);
  const int code = (rc & 0xFF) == SQLITE_FULL ? ENOSPC : EIO;
  throw StoreError(code, "search: " + what + ": " + sqlite3_errmsg(db));
}

void exec(sqlite3* db, const char* sql) {
  if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) fail(db, "SQL failed");
}

// ---------------------------------------------------------------------------
// Collecting rows. A query's walk over every matching row (16k for a common
// word) spent a third of its time in sqlite3_step's round trip per row. The
// SQL function itemfs_collect(sink, gen [, value]) appends each row to a
// RowSink passed as a pointer parameter instead, so a walk is one step of
// "SELECT count(itemfs_collect(...)) ...".

constexpr const char* kRowSinkType = "itemfs_row_sink";

struct RowSink {
  std::vector<int64_t> rows;
  std::vector<std::optional<int64_t>> values;  // the third argument, when given
};

void collect_row(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  auto* sink = argc >= 2 ? static_cast<RowSink*>(sqlite3_value_pointer(argv[0], kRowSinkType)) : nullptr;
  if (!sink) return sqlite3_result_error(ctx, "itemfs_collect: no row sink", -1);
  try {
    sink->rows.push_back(sqlite3_value_int64(argv[1]));
    if (argc > 2) {
      sink->values.push_back(sqlite3_value_type(argv[2]) == SQLITE_NULL ? std::nullopt
                                                                          : std::optional(sqlite3_value_int64(argv[2])));
    }
  } catch (const std::bad_alloc&) {
    sqlite3_result_error_nomem(ctx);
  } catch (...) {  // nothing may unwind through SQLite
    sqlite3_result_error(ctx, "itemfs_collect: cannot keep the row", -1);
  }
}

// The rows of a query that is one phrase (a word, a prefix), read by FTS5
// itself: itemfs_rows(search_fts, sink), called on the query's first row,
// walks the phrase's rows with xQueryPhrase. That is half the time of
// itemfs_collect's walk, which goes through SQLite's loop for every row.
// With more than one phrase (which rows_matching does not give it) it
// leaves the sink alone and sets its flag.
struct PhraseRows {
  RowSink* sink = nullptr;
  bool not_one_phrase = false;
};
constexpr const char* kPhraseRowsType = "itemfs_phrase_rows";

int add_phrase_row(const Fts5ExtensionApi* api, Fts5Context* fts, void* user) {
  try {
    static_cast<RowSink*>(user)->rows.push_back(api->xRowid(fts));
    return SQLITE_OK;
  } catch (const std::bad_alloc&) {
    return SQLITE_NOMEM;
  } catch (...) {  // nothing may unwind through SQLite
    return SQLITE_ERROR;
  }
}

void phrase_rows(const Fts5ExtensionApi* api, Fts5Context* fts, sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  auto* out = argc == 1 ? static_cast<PhraseRows*>(sqlite3_value_pointer(argv[0], kPhraseRowsType)) : nullptr;
  if (!out || !out->sink) return sqlite3_result_error(ctx, "itemfs_rows: no row sink", -1);
  if (api->xPhraseCount(fts) != 1) {
    out->not_one_phrase = true;
    return sqlite3_result_null(ctx);
  }
  out->sink->rows.clear();
  if (const int rc = api->xQueryPhrase(fts, 0, out->sink, add_phrase_row); rc != SQLITE_OK) {
    return sqlite3_result_error_code(ctx, rc);
  }
  sqlite3_result_null(ctx);
}

// Registers itemfs_collect or itemfs_rows when `error` says it is missing.
bool register_missing_function(sqlite3* db, std::string_view error) {
  if (error == "no such function: itemfs_collect") {
    return sqlite3_create_function_v2(db, "itemfs_collect", -1, SQLITE_UTF8 | SQLITE_DIRECTONLY, nullptr, collect_row,
                                      nullptr, nullptr, nullptr) == SQLITE_OK;
  }
  if (error != "no such function: itemfs_rows") return false;
  fts5_api* api = nullptr;
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &s, nullptr) == SQLITE_OK &&
      sqlite3_bind_pointer(s, 1, static_cast<void*>(&api), "fts5_api_ptr", nullptr) == SQLITE_OK) {
    sqlite3_step(s);
  }
  sqlite3_finalize(s);
  return api && api->iVersion >= 2 && api->xCreateFunction(api, "itemfs_rows", nullptr, phrase_rows, nullptr) == SQLITE_OK;
}

class Stmt {
 public:
  Stmt(sqlite3* db, std::string_view sql) : db_(db) {
    if (!prepare(sql)) fail(db, "cannot prepare " + std::string(sql.substr(0, 60)));
  }
  // For SQL that calls itemfs_collect or itemfs_rows, which are registered
  // on a connection at their first use there: registering itemfs_collect
  // again would expire every statement the connection has prepared (the
  // store caches some), and itemfs_rows would be listed twice.
  struct Collecting {};
  Stmt(sqlite3* db, std::string_view sql, Collecting) : db_(db) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      if (prepare(sql)) return;
      if (sqlite3_errcode(db) != SQLITE_ERROR || !register_missing_function(db, sqlite3_errmsg(db))) break;
    }
    fail(db, "cannot prepare " + std::string(sql.substr(0, 60)));
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, int64_t v) {
    check(sqlite3_bind_int64(stmt_, i, v));
    return *this;
  }
  Stmt& bind(int i, std::string_view v) {
    check(sqlite3_bind_text(stmt_, i, v.data(), int(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& bind(int i, const std::optional<int64_t>& v) {
    check(v ? sqlite3_bind_int64(stmt_, i, *v) : sqlite3_bind_null(stmt_, i));
    return *this;
  }
  Stmt& bind_null(int i) {
    check(sqlite3_bind_null(stmt_, i));
    return *this;
  }
  Stmt& bind_sink(int i, RowSink& sink) { return bind_pointer(i, &sink, kRowSinkType); }
  Stmt& bind_pointer(int i, void* p, const char* type) {
    check(sqlite3_bind_pointer(stmt_, i, p, type, nullptr));
    return *this;
  }
  // True for a row, false when done; throws on error.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(db_, "query failed");
  }
  void run() {
    while (step()) {
    }
    reset();
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  int params() { return sqlite3_bind_parameter_count(stmt_); }
  int64_t int64(int c) { return sqlite3_column_int64(stmt_, c); }
  double real(int c) { return sqlite3_column_double(stmt_, c); }
  bool null(int c) { return sqlite3_column_type(stmt_, c) == SQLITE_NULL; }
  std::string_view text(int c) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, c));
    return p ? std::string_view(p, size_t(sqlite3_column_bytes(stmt_, c))) : std::string_view();
  }

 private:
  bool prepare(std::string_view sql) {
    return sqlite3_prepare_v2(db_, sql.data(), int(sql.size()), &stmt_, nullptr) == SQLITE_OK;
  }
  void check(int rc) {
    if (rc != SQLITE_OK) fail(db_, "bind failed");
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// Resets a cached statement when leaving a scope, whatever happens.
struct ResetOnExit {
  Stmt& s;
  ~ResetOnExit() { s.reset(); }
};

int64_t sha8(const store::Sha256& d) {
  uint64_t v = 0;
  for (int k = 0; k < 8; ++k) v = (v << 8) | d[size_t(k)];
  return int64_t(v);
}

bool table_exists(sqlite3* db, const char* name) {
  Stmt s(db, "SELECT 1 FROM sqlite_master WHERE name=?");
  s.bind(1, name);
  return s.step();
}

// table_exists() for a snapshot's connection, from its copy of the schema
// (a query of sqlite_master took 60 µs, 1% of a common word's query). That
// copy is current only once a read of the snapshot has checked the schema's
// version, as the snapshot's first read does.
bool snapshot_has_table(sqlite3* db, const char* name) {
  const int rc =
      sqlite3_table_column_metadata(db, "main", name, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
  if (rc == SQLITE_OK) return true;
  if (rc == SQLITE_ERROR) return false;  // no such table
  fail(db, std::string("cannot read the schema for ") + name);
}

std::optional<int64_t> meta_value(sqlite3* db, const char* key) {
  Stmt s(db, "SELECT value FROM search_meta WHERE key=?");
  s.bind(1, key);
  if (!s.step()) return std::nullopt;
  return s.int64(0);
}

// What goes into one FTS row.
struct Row {
  std::string text;
  int length_class = 0;  // also in text, as its length token
  size_t bytes() const { return text.size(); }
};

// Octaves of the bytes of text (title and body) an item has: 0 below 32
// bytes, then 32-63, 64-127, ..., 15 from 512 KiB.
int length_class(size_t bytes) { return std::clamp(int(std::bit_width(bytes)) - 5, 0, kLengthClasses - 1); }

// A length in the middle of class c.
double class_length(int c) { return c == 0 ? 16.0 : double(int64_t(24) << c); }

// The token of length class c.
std::string length_token(int c) {
  std::string t(kLengthMark);
  t += char('a' + c);
  return t;
}

// Whether tokens are written as the index holds them (identifiers as their
// buckets) or as they are (for checking candidates word for word).
enum class Form { kIndexed, kExact };

// lead (a title or field marker) + token, or for an identifier in the
// index, its two bucket tokens, each after lead.
void append_word(std::string& out, std::string_view lead, std::string_view token, Form form) {
  out += lead;
  if (form == Form::kIndexed && is_identifier(token)) {
    out += bucket_of(token);
    out += ' ';
    out += lead;
    out += bucket_end_of(token);
  } else {
    out += token;
  }
}

// text with each identifier in it replaced by its bucket token. ASCII
// separators end every token, so the text is cut at them into runs, and
// only a run long enough to be an identifier is looked at: as it is when it
// is ASCII, else through the tokenizer (which costs a call per run).
std::string bucket_identifiers(std::string text, Tokenizer& tok) {
  std::string out;
  size_t copied = 0;
  auto replace = [&](size_t start, size_t end, std::string_view token) {
    out.append(text, copied, start - copied);
    append_word(out, "", token, Form::kIndexed);
    copied = end;
  };
  std::string folded;
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    auto is_separator = [](unsigned char c) {
      return c < 0x80 && !((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'));
    };
    if (is_separator(static_cast<unsigned char>(text[i]))) {
      ++i;
      continue;
    }
    size_t j = i;
    bool non_ascii = false;
    for (; j < n && !is_separator(static_cast<unsigned char>(text[j])); ++j) {
      non_ascii = non_ascii || static_cast<unsigned char>(text[j]) >= 0x80;
    }
    if (j - i >= kMinIdentifier) {
      if (!non_ascii) {
        folded.assign(text, i, j - i);
        for (char& c : folded) c = char(c | 0x20);  // ASCII letters and digits only
        if (is_identifier(folded)) replace(i, j, folded);
      } else {
        const size_t base = i;
        tok.tokenize(std::string_view(text).substr(i, j - i), [&](std::string_view t, size_t start, size_t end) {
          if (is_identifier(t)) replace(base + start, base + end, t);
        });
      }
    }
    i = j;
  }
  if (copied == 0) return text;  // no identifier
  out.append(text, copied);
  return out;
}

// A field's value as one token per word, each prefixed by the field's marker
// ("<marker>smith"): one index term per field and word, found without word
// positions; the tokens of one value stay next to each other for phrases.
void append_marked(std::string& meta, Tokenizer& tok, const std::string& mark, std::string_view value, Form form) {
  tok.tokenize(cjk_index_text(value), [&](std::string_view t, size_t, size_t) {
    append_word(meta, mark, t, form);
    meta += ' ';
  });
}

std::string normal_lang(std::string lang) {
  std::replace(lang.begin(), lang.end(), '_', '-');
  return lang;
}

std::string make_meta(const Extracted& x, Tokenizer& tok, Form form) {
  std::string m;
  for (const auto& [path, value] : x.fields) {
    if (!is_reserved_field(path)) append_marked(m, tok, marker("p:" + path), value, form);
  }
  const std::string author = marker("@author");
  for (const auto& a : x.authors) append_marked(m, tok, author, a, form);
  const std::string tag = marker("@tag");
  for (const auto& t : x.tags) append_marked(m, tok, tag, t, form);
  if (!x.host.empty()) {
    std::string_view h = x.host;
    while (!h.empty()) {
      m += marker("host=" + std::string(h));
      m += ' ';
      const size_t dot = h.find('.');
      if (dot == std::string_view::npos) break;
      h.remove_prefix(dot + 1);
    }
  }
  if (!x.lang.empty()) {
    const std::string lang = normal_lang(x.lang);
    m += marker("lang=" + lang) + ' ';
    if (const size_t dash = lang.find('-'); dash != std::string::npos && dash > 0) {
      m += marker("lang=" + lang.substr(0, dash)) + ' ';
    }
  }
  return m;
}

Row make_row(const Extracted& x, Tokenizer& tok) {
  Row row;
  const std::string title = cjk_index_text(x.title);
  const std::string body = bucket_identifiers(cjk_index_text(x.body), tok);
  const std::string meta = make_meta(x, tok, Form::kIndexed);
  row.text.reserve(3 * title.size() + body.size() + meta.size() + 8);
  row.text += bucket_identifiers(title, tok);
  row.text += '\n';
  tok.tokenize(title, [&](std::string_view t, size_t, size_t) {
    append_word(row.text, kTitleMark, t, Form::kIndexed);
    row.text += ' ';
  });
  row.text += '\n';
  row.text += body;
  row.text += '\n';
  row.text += meta;
  row.length_class = length_class(x.title.size() + x.body.size());
  row.text += length_token(row.length_class);
  return row;
}

// The tokens the index holds for an item, in the columns q looks at.
ColumnTokens column_tokens(const Extracted& x, Tokenizer& tok, const Query& q) {
  unsigned mask = 0;
  for (const auto& group : q.all) {
    for (const auto& p : group) mask |= p.columns;
  }
  for (const auto& p : q.none) mask |= p.columns;
  ColumnTokens cols(3);
  if (mask & kTitleColumn) cols[0] = tok.tokens(cjk_index_text(x.title));
  if (mask & kBodyColumn) cols[1] = tok.tokens(cjk_index_text(x.body));
  if (mask & kMetaColumn) cols[2] = tok.tokens(make_meta(x, tok, Form::kExact));
  return cols;
}

Extracted read_extracted(store::Snapshot& snap, const store::ItemInfo& info) {
  Extractor x;
  snap.read_item(info, [&](std::string_view bytes) {
    if (!x.done()) x.feed(bytes);
  });
  return std::move(x.result());
}

// The item indexed under generation gen, as snap has it (none if it is gone).
std::optional<store::ItemInfo> item_of(store::Snapshot& snap, Stmt& lookup, int64_t gen) {
  int64_t ino = 0;
  {
    ResetOnExit r{lookup};
    lookup.bind(1, gen);
    if (!lookup.step()) return std::nullopt;
    ino = lookup.int64(0);
  }
  return snap.item_by_ino(ino);
}

constexpr const char* kItemOfGen = "SELECT ino FROM search_doc WHERE gen = ?";

// Whether the item of generation gen matches q word for word (the index found
// it with phrases loosened to their words).
bool exact_match(store::Snapshot& snap, Stmt& lookup, Tokenizer& tok, const Query& q, int64_t gen) {
  auto info = item_of(snap, lookup, gen);
  if (!info) return false;
  return q.matches(column_tokens(read_extracted(snap, *info), tok, q));
}

// How search_value finds a value: FNV-1a, 31 bits (SQLite stores that in 4
// bytes). Stored, so it must not change.
int64_t value_hash(std::string_view value) {
  uint32_t h = 2166136261u;
  for (char c : value) {
    h ^= uint8_t(c);
    h *= 16777619u;
  }
  return int64_t(h >> 1);
}

std::string join_tags(const std::vector<std::string>& tags) {
  std::string out;
  for (size_t k = 0; k < tags.size(); ++k) {
    if (k) out += '\x1f';
    out += tags[k];
  }
  return out;
}

// The generations in search_dead, sorted.
std::vector<int64_t> dead_gens(sqlite3* db) {
  std::vector<int64_t> out;
  Stmt s(db, "SELECT gen FROM search_dead ORDER BY gen");
  while (s.step()) out.push_back(s.int64(0));
  return out;
}

bool contains(const std::vector<int64_t>& sorted, int64_t v) { return std::binary_search(sorted.begin(), sorted.end(), v); }

// Who may read what (Reader, search.h). An item some non-root reader may not
// read has a read bit missing: (mode & 0444) != 0444. The index keeps those
// items' modes and owners (search_closed, from the change feed), so finding
// them costs in proportion to their number, and next to nothing when every
// item is readable by everyone.
constexpr int kAllRead = 0444;
constexpr const char* kClosedItems =
    "SELECT d.gen, c.mode, c.uid, c.gid FROM search_closed c CROSS JOIN search_doc d ON d.ino = c.ino";
bool closed_mode(uint32_t mode) { return (mode & kAllRead) != kAllRead; }

// Reading an item also takes search (x) permission on items/ and on its
// shard, as the kernel checks on the way to it: the directories with an x
// bit missing (a handful, if any; read from the store as they are now) are
// looked at, and the items of those `who` may not enter are closed to it
// as well.
constexpr const char* kAllEntries = "SELECT gen FROM search_doc";
constexpr uint32_t kAllSearch = 0111;

// The generations of the indexed items `who` may not read, sorted and
// distinct: empty for root and when every item and directory is readable
// and searchable by all.
std::vector<int64_t> unreadable_gens(sqlite3* db, store::Store& store, const Reader& who) {
  std::vector<int64_t> out;
  if (who.root()) return out;
  {
    std::vector<store::DirInfo> dirs = store.list_dirs();
    if (auto top = store.dir_info("")) dirs.insert(dirs.begin(), *top);
    std::vector<std::string> shut;
    for (const auto& dir : dirs) {
      const store::Attrs& a = dir.attrs;
      if ((a.mode & kAllSearch) == kAllSearch || who.may_search(a.mode, a.uid, a.gid)) continue;
      if (dir.name.empty()) {  // items/ itself: nothing is readable
        Stmt all(db, kAllEntries);
        while (all.step()) out.push_back(all.int64(0));
        return out;  // in gen order (the table's rowid)
      }
      shut.push_back(dir.name);
    }
    Stmt by_ino(db, "SELECT gen FROM search_doc WHERE ino=?");
    for (const auto& shard : shut) {
      for (const auto& item : store.list_shard(shard)) {
        ResetOnExit r{by_ino};
        if (by_ino.bind(1, item.ino).step()) out.push_back(by_ino.int64(0));
      }
    }
  }
  Stmt s(db, kClosedItems);
  while (s.step()) {
    if (!who.may_read(uint32_t(s.int64(1)), uint32_t(s.int64(2)), uint32_t(s.int64(3)))) out.push_back(s.int64(0));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// ---------------------------------------------------------------------------
// Snippets

// Working memory of make_snippet, kept across the hits of one query so that
// a long text costs no fresh allocations (and page faults) per hit.
struct SnipScratch {
  std::vector<std::pair<uint32_t, uint32_t>> spans;  // byte range of each token
  std::vector<uint8_t> flags;                        // kWordHit | kCjkHit per token
};
constexpr uint8_t kWordHit = 1;
constexpr uint8_t kCjkHit = 2;

uint8_t token_flags(std::string_view folded, std::string_view original, const std::vector<HighlightTerm>& terms) {
  uint8_t f = 0;
  for (const auto& term : terms) {
    if (term.cjk) {
      if (!term.text.empty() && original.find(term.text) != std::string_view::npos) f |= kCjkHit;
    } else if (folded == term.text || (term.prefix && folded.substr(0, term.text.size()) == term.text)) {
      f |= kWordHit;
    }
  }
  return f;
}

// The byte ranges of the CJK terms inside one token, in order.
std::vector<std::pair<size_t, size_t>> cjk_ranges(std::string_view original, const std::vector<HighlightTerm>& terms) {
  std::vector<std::pair<size_t, size_t>> out;
  for (const auto& term : terms) {
    if (!term.cjk || term.text.empty()) continue;
    for (size_t at = original.find(term.text); at != std::string_view::npos;
         at = original.find(term.text, at + term.text.size())) {
      out.emplace_back(at, at + term.text.size());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

void append_clean(std::string& out, std::string_view s) {
  bool space = !out.empty() && out.back() == ' ';
  for (char c : s) {
    if (uint8_t(c) < 0x20 || c == ' ') {
      if (!space) out += ' ';
      space = true;
    } else {
      out += c;
      space = false;
    }
  }
}

bool is_ascii_word(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  });
}

// Where `word` (lower-case ASCII) first occurs in text, ignoring ASCII case.
size_t find_ascii_nocase(std::string_view text, std::string_view word) {
  const char first = word[0];
  const char upper = first >= 'a' && first <= 'z' ? char(first - 'a' + 'A') : first;
  for (size_t i = 0; i + word.size() <= text.size(); ++i) {
    if (text[i] != first && text[i] != upper) continue;
    size_t k = 1;
    for (; k < word.size(); ++k) {
      char c = text[i + k];
      if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
      if (c != word[k]) break;
    }
    if (k == word.size()) return i;
  }
  return std::string_view::npos;
}

// Where tokenizing may start: a little before the first place any term's
// letters occur as typed (ASCII terms only; a word that only occurs with
// accents or in other case forms would be missed, so then 0). *settled
// tells whether text's continuation could change the answer: it could when
// a term does not occur in text yet.
size_t snippet_scan_start(std::string_view text, const std::vector<HighlightTerm>& terms, bool* settled) {
  constexpr size_t kBefore = 256;
  *settled = true;
  if (std::any_of(terms.begin(), terms.end(), [](const auto& t) { return t.cjk || !is_ascii_word(t.text); })) return 0;
  size_t first = std::string_view::npos;
  for (const auto& term : terms) {
    const size_t at = find_ascii_nocase(text, term.text);
    if (at == std::string_view::npos) {
      *settled = false;
      return 0;
    }
    first = std::min(first, at);
  }
  if (first == std::string_view::npos || first < 2 * kBefore) return 0;
  // Start just after an ASCII separator, so no token or UTF-8 sequence is cut.
  for (size_t b = first - kBefore; b + 64 > first - kBefore && b > 0; --b) {
    const char c = text[b - 1];
    if (uint8_t(c) < 0x80 && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return b;
  }
  return 0;
}

// True when no token of text can be one of the terms: they are all ASCII
// words, none occurs in text ignoring ASCII case, and text is ASCII only (a
// token with other characters could fold into a term: "ensuréd").
bool cannot_match(std::string_view text, const std::vector<HighlightTerm>& terms) {
  for (const auto& term : terms) {
    if (term.cjk || !is_ascii_word(term.text)) return false;
    if (find_ascii_nocase(text, term.text) != std::string_view::npos) return false;
  }
  return std::all_of(text.begin(), text.end(), [](char c) { return uint8_t(c) < 0x80; });
}

// A passage of `text` around the densest cluster of matched words near the
// first one, or its start when nothing matches (then *matched is false).
// *settled, when given, tells whether the passage would be the same for any
// text that starts with `text`: what a reader that stops early relies on
// (it asks for settled passages only: an unsettled one may come back empty).
std::string make_snippet(Tokenizer& tok, std::string_view text, const std::vector<HighlightTerm>& terms,
                         bool* matched, SnipScratch& sc, bool* settled = nullptr) {
  constexpr size_t kWindow = 24;
  constexpr size_t kLongToken = 120;
  // Tokens looked at after the first match: four windows. Every token of
  // them has to be read, inflated and tokenized before the passage can be
  // cut, so this bounds a hit's cost: at 256 a common word's 100 hits
  // inflated 2.5 KB each, nearly every short item whole; at 96, 1.1 KB.
  constexpr size_t kScanAfterHit = 96;
  text = utf8_prefix(text, kSnippetBodyCap);
  bool start_settled = false;
  const size_t scan_from = snippet_scan_start(text, terms, &start_settled);
  // A word not in the text yet as typed: no passage can settle, and a caller
  // that asks wants none (tokenizing a non-ASCII text here would be for nothing).
  if (settled && !start_settled) {
    *settled = false;
    *matched = false;
    return {};
  }
  // Nothing can match: only the start of the text is shown.
  const bool hopeless = scan_from == 0 && cannot_match(text, terms);
  sc.spans.clear();
  sc.flags.clear();
  size_t first_hit = SIZE_MAX;
  bool stopped = false;
  tok.tokenize_until(text.substr(scan_from), [&](std::string_view folded, size_t start, size_t end) {
    start += scan_from;
    end += scan_from;
    sc.spans.emplace_back(uint32_t(start), uint32_t(end));
    sc.flags.push_back(hopeless ? 0 : token_flags(folded, text.substr(start, end - start), terms));
    if (sc.flags.back() && first_hit == SIZE_MAX) first_hit = sc.flags.size() - 1;
    stopped = first_hit != SIZE_MAX && sc.flags.size() > first_hit + kScanAfterHit;
    // (one token past the window tells that the text goes on)
    if (hopeless) stopped = sc.spans.size() > kWindow;
    return !stopped;
  });
  *matched = false;
  const auto& spans = sc.spans;
  // The scan stopped after the window it needs, and no token it saw can
  // change with more text: the character after the last one (a separator)
  // lies whole in text, a UTF-8 sequence being at most 4 bytes.
  if (settled) *settled = stopped && first_hit != SIZE_MAX && spans.back().second + 4 <= text.size();
  if (spans.empty()) return {};
  auto hit = [&](size_t k) { return sc.flags[k] != 0; };
  size_t best = 0, best_count = 0, count = 0;
  for (size_t k = 0; k < spans.size(); ++k) {
    count += hit(k);
    if (k >= kWindow) count -= hit(k - kWindow);
    if (count > best_count) {
      best_count = count;
      best = k + 1 >= kWindow ? k + 1 - kWindow : 0;
    }
  }
  size_t start = 0;
  if (best_count > 0) {
    *matched = true;
    size_t first = best;
    while (!hit(first)) ++first;
    start = first >= 4 ? first - 4 : 0;
    // A run at the end of the scan: the window ends where the scan did, so
    // that it is shown whole without reading further.
    if (stopped && start + kWindow > spans.size()) start = spans.size() - kWindow;
  }
  const size_t end = std::min(spans.size(), start + kWindow);
  std::string out;
  if (start > 0 || scan_from > 0) out += "… ";
  for (size_t k = start; k < end; ++k) {
    const auto [t_start, t_end] = spans[k];
    if (k > start) append_clean(out, text.substr(spans[k - 1].second, t_start - spans[k - 1].second));
    std::string_view word = text.substr(t_start, t_end - t_start);
    if (sc.flags[k] & kWordHit) {
      out += '[';
      out += word;
      out += ']';
    } else if (sc.flags[k] & kCjkHit) {
      // Mark each range; show only the part around the first one of a long run.
      const auto ranges = cjk_ranges(word, terms);
      size_t from = 0, to = word.size();
      if (word.size() > kLongToken) {
        from = utf8_prefix(word, ranges[0].first > 40 ? ranges[0].first - 40 : 0).size();
        to = utf8_prefix(word, std::min(word.size(), ranges[0].second + 80)).size();
        if (from > 0) out += "…";
      }
      size_t at = from;
      for (const auto& [a, b] : ranges) {
        if (a < at || b > to) continue;
        out.append(word.substr(at, a - at));
        out += '[';
        out.append(word.substr(a, b - a));
        out += ']';
        at = b;
      }
      out.append(word.substr(at, to - at));
      if (to < word.size()) out += "…";
    } else if (word.size() > kLongToken) {
      out.append(utf8_prefix(word, kLongToken));
      out += "…";
    } else {
      out.append(word);
    }
  }
  if (end < spans.size() || stopped) {
    out += " …";
  } else {
    append_clean(out, utf8_prefix(text.substr(spans.back().second), 16));
    while (!out.empty() && out.back() == ' ') out.pop_back();
  }
  return out;
}

// The snippets of a query's hits, made as their items' bytes come in
// (Snapshot::read_items_until), on the threads that reads them. A hit's
// snippet is from its main text (content) first, then all its text, then
// its title; when nothing matches (filters only), the start of its text. A
// long item is read only as far as its main text's snippet needs, which is
// often its first KiB.
class Snippets final : public store::Snapshot::PreviewSink {
 public:
  // One tokenizer for each thread that may call.
  Snippets(const std::vector<HighlightTerm>& terms, size_t hits, std::vector<Tokenizer*> tokenizers)
      : terms_(terms), tok_(std::move(tokenizers)), scratch_(tok_.size()), hits_(hits) {}

  bool piece(size_t thread, size_t k, std::string_view bytes) override {
    Hit& h = hits_[k];
    if (!h.x.feed(bytes)) return false;
    const std::string_view main_text = h.x.main_text_so_far();
    if (main_text.size() < h.try_at) return true;
    h.try_at = main_text.size() * 2;
    bool matched = false, settled = false;
    std::string snippet = make_snippet(*tok_[thread], main_text, terms_, &matched, scratch_[thread], &settled);
    if (!settled) return true;
    h.snippet = std::move(snippet);
    return false;
  }

  void done(size_t thread, size_t k) override {
    Hit& h = hits_[k];
    if (h.snippet.empty()) h.snippet = whole(*tok_[thread], h.x.result(), scratch_[thread]);
    h.x = Extractor(0, Extractor::Collect::kText);  // (its text is no longer needed)
  }

  std::string take(size_t k) { return std::move(hits_[k].snippet); }

 private:
  struct Hit {
    Extractor x{kSnippetBodyCap, Extractor::Collect::kText};
    // The snippet is tried once the main text has this much, then each time
    // it has doubled.
    size_t try_at = store::Snapshot::kFirstPiece / 2;
    std::string snippet;
  };

  std::string whole(Tokenizer& tok, const Extracted& e, SnipScratch& scratch) const {
    bool matched = false;
    const std::string_view main_text = std::string_view(e.body).substr(0, e.main_size);
    std::string snippet = make_snippet(tok, main_text.empty() ? e.body : main_text, terms_, &matched, scratch);
    if (!matched && main_text.size() < e.body.size()) {
      std::string all = make_snippet(tok, e.body, terms_, &matched, scratch);
      if (matched) snippet = std::move(all);
    }
    if (!matched) {
      std::string title = make_snippet(tok, e.title, terms_, &matched, scratch);
      if (matched || snippet.empty()) snippet = std::move(title);
    }
    return snippet;
  }

  const std::vector<HighlightTerm>& terms_;
  std::vector<Tokenizer*> tok_;
  std::vector<SnipScratch> scratch_;
  std::vector<Hit> hits_;
};

// ---------------------------------------------------------------------------
// Ranking. The index knows, for each token, the rows that hold it (FTS5
// detail=none) and nothing of positions or columns, so FTS5's bm25() cannot
// rank. The score is BM25 (k1 1.2, b 0.75) over what the index does know:
// whether a row has each word of the query (once: frequency is not kept), 10
// times as much when the word is in its title (its kTitleMark token), and
// the length of its text, known to a factor of two from its length class.
// idf is Lucene's, log(1 + (N - n + 0.5) / (n + 0.5)), which stays above 0
// for a word in every row. Rows are scored in rowid order, so each list is
// read from start to end once. A row's length class comes from search_doc
// (Impl::class_table).

constexpr double kK1 = 1.2, kB = 0.75;
constexpr double kTitleWeight = 10, kBodyWeight = 1;

// Whether an FTS5 expression made here is one phrase: every phrase is
// quoted (fts_phrase), and AND, OR and NOT join two or more.
bool is_one_phrase(std::string_view expr) {
  size_t phrases = 0;
  bool quoted = false;
  for (size_t k = 0; k < expr.size(); ++k) {
    if (expr[k] != '"') continue;
    if (quoted && k + 1 < expr.size() && expr[k + 1] == '"') {
      ++k;  // a quote in the phrase, doubled
    } else {
      quoted = !quoted;
      phrases += quoted ? 1 : 0;
    }
  }
  return phrases == 1;
}

// The rows that match FTS5 expression expr, in rowid order.
std::vector<int64_t> rows_matching(sqlite3* db, const std::string& expr) {
  RowSink sink;
  PhraseRows phrase{&sink};
  const bool one_phrase = is_one_phrase(expr);
  if (one_phrase) {
    Stmt s(db, "SELECT itemfs_rows(search_fts, ?2) FROM search_fts WHERE search_fts MATCH ?1 LIMIT 1", Stmt::Collecting{});
    s.bind(1, expr);
    s.bind_pointer(2, &phrase, kPhraseRowsType);
    s.step();
  }
  if (!one_phrase || phrase.not_one_phrase) {
    Stmt s(db, "SELECT count(itemfs_collect(?2, rowid)) FROM search_fts WHERE search_fts MATCH ?1", Stmt::Collecting{});
    s.bind(1, expr).bind_sink(2, sink);
    s.step();
  }
  std::vector<int64_t>& out = sink.rows;
  if (!std::is_sorted(out.begin(), out.end())) std::sort(out.begin(), out.end());
  return std::move(out);
}

// How many rows hold token k of p (as title words when title is set).
int64_t rows_with(sqlite3* db, const Phrase& p, size_t k, bool title) {
  if (is_plain_term(p, k)) {
    Stmt s(db, "SELECT doc FROM search_vocab WHERE term = ?1");
    s.bind(1, index_term(p, k, title));
    return s.step() ? s.int64(0) : 0;
  }
  Stmt s(db, "SELECT count(*) FROM search_fts WHERE search_fts MATCH ?1");
  s.bind(1, token_fts(p, k, title));
  return s.step() ? s.int64(0) : 0;
}

// A sorted list read alongside rising rowids.
struct Cursor {
  std::vector<int64_t> rows;
  size_t at = 0;
  bool has(int64_t gen) {
    while (at < rows.size() && rows[at] < gen) ++at;
    return at < rows.size() && rows[at] == gen;
  }
};

// How many rows search_fts has, as FTS5 keeps it: the first varint of its
// averages record (row 1 of search_fts_data). None if that cannot be read.
std::optional<int64_t> fts_rows(sqlite3* db) {
  Stmt s(db, "SELECT block FROM search_fts_data WHERE id = 1");
  if (!s.step()) return std::nullopt;
  const std::string_view b = s.text(0);
  uint64_t v = 0;
  for (size_t k = 0; k < 9; ++k) {  // an SQLite varint
    if (k >= b.size()) return std::nullopt;
    const auto c = uint8_t(b[k]);
    if (k == 8) return int64_t((v << 8) | c);
    v = (v << 7) | (c & 0x7F);
    if (!(c & 0x80)) return int64_t(v);
  }
  return std::nullopt;
}

// The number of entries in search_doc: the full-text rows less the dead
// ones (every row is an entry's or a dead one's), which reads one page
// where count(*) reads every page of an index of search_doc (0.5 ms and
// much of a reader's page cache at 100k items).
int64_t indexed_items(sqlite3* db, size_t dead) {
  if (auto rows = fts_rows(db); rows && *rows >= int64_t(dead)) return *rows - int64_t(dead);
  Stmt count(db, "SELECT count(*) FROM search_doc");
  return count.step() ? count.int64(0) : 0;
}

class Scorer {
 public:
  // n: indexed_items(). only_docs: with a query of one word (no prefix, no
  // other condition), the number of rows that have it, which the caller has
  // just counted. closed: the rows of items the reader may not read
  // (sorted), which count neither in n nor in a word's rows, so that a
  // score tells nothing of them.
  Scorer(sqlite3* db, const Query& q, int64_t items, std::optional<int64_t> only_docs = std::nullopt,
         const std::vector<int64_t>& closed = {}) {
    const auto n = double(items - int64_t(closed.size()));
    auto docs_of = [&](const Phrase& p, size_t k, bool title) -> int64_t {
      if (only_docs) return *only_docs;
      if (closed.empty()) return rows_with(db, p, k, title);
      const std::vector<int64_t> rows = rows_matching(db, token_fts(p, k, title));
      int64_t out = int64_t(rows.size());
      for (int64_t c : closed) out -= std::binary_search(rows.begin(), rows.end(), c);
      return out;
    };
    for (const auto& group : q.all) {
      for (const Phrase& p : group) {
        if (!(p.columns & (kTitleColumn | kBodyColumn))) continue;  // field filters do not rank
        Alternative alt;
        // Alone in its group, a phrase is in every row the query finds.
        alt.implied = group.size() == 1;
        if (!alt.implied) alt.rows.rows = rows_matching(db, phrase_fts(p));
        const bool title_only = p.columns == kTitleColumn;
        // (An identifier's rows and count are those of its buckets: a row
        // found otherwise may score for one it only shares them with.)
        for (size_t k = 0; k < p.tokens.size(); ++k) {
          Word w;
          const auto docs = double(docs_of(p, k, title_only));
          w.idf = std::max(1e-6, std::log(1 + (n - docs + 0.5) / (docs + 0.5)));  // dead rows: docs > n
          w.weight = title_only ? kTitleWeight : kBodyWeight;
          if (p.columns == (kTitleColumn | kBodyColumn)) w.title.rows = rows_matching(db, token_fts(p, k, true));
          alt.words.push_back(std::move(w));
        }
        alts_.push_back(std::move(alt));
      }
    }
  }

  // Call with rising gens; avg_length is the mean
  // class_length() of the rows.
  double score(int64_t gen, int length_class, double avg_length) {
    const double norm = kK1 * (1 - kB + kB * class_length(length_class) / avg_length);
    double score = 0;
    for (auto& alt : alts_) {
      if (!alt.implied && !alt.rows.has(gen)) continue;
      for (auto& w : alt.words) {
        const double f = w.title.has(gen) ? kTitleWeight : w.weight;
        score += w.idf * f * (kK1 + 1) / (f + norm);
      }
    }
    return score;
  }

 private:
  struct Word {
    double idf = 0;
    double weight = kBodyWeight;  // when the row does not have it in the title
    Cursor title;                 // rows that have it in the title
  };
  struct Alternative {
    bool implied = true;
    Cursor rows;  // rows that have it, unless implied
    std::vector<Word> words;
  };
  std::vector<Alternative> alts_;
};

// ---------------------------------------------------------------------------
// Matching

// The SQL that lists every item matching q: its generation first, then
// `cols` (which may use d = search_doc when join is set). ?1 = match text,
// ?2 = after, ?3 = before (bind_match binds them). Dead rows are the
// caller's to skip. With `collect`, the rows go to itemfs_collect(?4, ...)
// and the statement gives one row, their count.
std::string match_sql(const Query& q, bool join, const std::string& cols, bool collect = false) {
  const bool dates = q.after || q.before;
  const std::string date_cond = " AND d.date IS NOT NULL AND (?2 IS NULL OR d.date >= ?2) AND (?3 IS NULL OR d.date < ?3)";
  auto select = [&](const char* gen) {
    const std::string list = gen + (cols.empty() ? "" : ", " + cols);
    return collect ? "SELECT count(itemfs_collect(?4, " + list + "))" : "SELECT " + list;
  };
  if (!q.positive.empty()) {
    std::string sql = select("search_fts.rowid") + " FROM search_fts";
    if (join || dates) sql += " JOIN search_doc d ON d.gen = search_fts.rowid";
    sql += " WHERE search_fts MATCH ?1";
    if (dates) sql += date_cond;
    return sql;
  }
  std::string sql = select("d.gen") + " FROM search_doc d WHERE 1" + date_cond;
  if (!q.negative.empty()) sql += " AND d.gen NOT IN (SELECT rowid FROM search_fts WHERE search_fts MATCH ?1)";
  return sql;
}

// Which candidates of q need the word-for-word check (exact_match): all of
// them when q has a phrase; otherwise those that have a content: word in
// their title too, and those that have a word of q only as buckets (found
// through them, or not excluded because of them). Elsewhere the index alone
// is certain.
class CheckPlan {
 public:
  CheckPlan(sqlite3* db, const Query& q) : exact_(q.exact) {
    if (!exact_) return;
    auto phrase = [](const Phrase& p) { return p.tokens.size() > 1; };
    all_ = std::any_of(q.none.begin(), q.none.end(), phrase);
    for (const auto& group : q.all) all_ = all_ || std::any_of(group.begin(), group.end(), phrase);
    if (all_) return;
    auto add_rows = [&](const std::vector<int64_t>& rows) { rows_.insert(rows_.end(), rows.begin(), rows.end()); };
    auto add = [&](const Phrase& p) {
      if (is_body_word(p)) add_rows(rows_matching(db, title_word_fts(p)));
      if (!has_bucket(p)) return;
      // A prefix's own words are looked up a second time (to leave out the
      // rows that have them) only when its buckets hold more rows than are
      // cheaper to check: for a short prefix that second look-up costs as
      // much as the query.
      std::vector<int64_t> rows = rows_matching(db, bucket_rows_fts(p));
      if (p.prefix && rows.size() > kCheckBucketRowsUpTo) rows = rows_matching(db, bucket_only_fts(p));
      add_rows(rows);
    };
    for (const auto& group : q.all) std::for_each(group.begin(), group.end(), add);
    std::for_each(q.none.begin(), q.none.end(), add);
    std::sort(rows_.begin(), rows_.end());
  }
  bool needed(int64_t gen) const { return exact_ && (all_ || contains(rows_, gen)); }

 private:
  bool exact_ = false;
  bool all_ = false;
  std::vector<int64_t> rows_;
};

void bind_match(Stmt& s, const Query& q) {
  if (!q.positive.empty()) {
    s.bind(1, q.match());
  } else if (!q.negative.empty()) {
    s.bind(1, q.negative);
  }
  if (q.after || q.before || q.positive.empty()) s.bind(2, q.after).bind(3, q.before);
}

std::string item_path(const std::string& id) { return "items/" + store::shard_of(id) + "/" + id + ".json"; }

using json = nlohmann::json;

std::string dump(const json& j) { return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n"; }

// Appends s as a JSON string exactly as dump() writes it.
void append_json_string(std::string& out, std::string_view s) {
  if (!store::is_valid_utf8(s)) {
    out += json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
    return;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  size_t plain = 0;  // start of the bytes not yet copied
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = uint8_t(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.substr(plain, i - plain));
    plain = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xF];
    }
  }
  out.append(s.substr(plain));
  out += '"';
}

}  // namespace

// ---------------------------------------------------------------------------

struct Index::Impl {
  Impl(store::Store& s, IndexOptions o)
      : store(s), options(std::move(o)), sdb(s.dir() / "search.db", s.options().read_only), write_tok(lib) {}

  // Statements on a writer connection, prepared once.
  struct WriterStmts {
    explicit WriterStmts(sqlite3* db_)
        : db(db_),
          by_ino(db, "SELECT gen, sha FROM search_doc WHERE ino=?"),
          next_seq(db, "UPDATE search_meta SET value=value+1 WHERE key='next_seq' RETURNING value-1"),
          add_dead(db, "INSERT OR IGNORE INTO search_dead(gen) VALUES(?)"),
          doc_exists(db, "SELECT 1 FROM search_doc WHERE gen=?"),
          value_find(db, "SELECT id, value FROM search_value WHERE hash=?"),
          value_add(db, "INSERT INTO search_value(hash, value) VALUES(?,?) RETURNING id"),
          fts_delete(db, "INSERT INTO search_fts(search_fts, rowid, text) VALUES('delete',?,?)"),
          doc_insert(db,
                     "INSERT INTO search_doc(gen, ino, sha, date, len, host, author, lang, tags) "
                     "VALUES(?,?,?,?,?,?,?,?,?)"),
          doc_delete(db, "DELETE FROM search_doc WHERE gen=?"),
          closed_set(db, "INSERT OR REPLACE INTO search_closed(ino, mode, uid, gid) VALUES(?,?,?,?)"),
          closed_delete(db, "DELETE FROM search_closed WHERE ino=?") {}
    sqlite3* db;
    Stmt by_ino, next_seq, add_dead, doc_exists, value_find, value_add, fts_delete, doc_insert, doc_delete;
    Stmt closed_set, closed_delete;
  };

  struct Recent {
    int64_t sha;
    Row row;
  };

  store::Store& store;
  IndexOptions options;
  SearchDb sdb;
  Fts5Library lib;
  std::unique_ptr<Follower> follower;  // none when the index is read-only
  std::mutex write_mu;  // guards everything below
  uint64_t applied = 0;  // the feed's last change in search.db
  Tokenizer write_tok;
  std::map<sqlite3*, std::unique_ptr<WriterStmts>> writer_stmts;
  std::unordered_map<int64_t, Recent> recent;  // by generation
  std::unordered_map<int64_t, Recent> recalled;  // rows made again for this batch's drops (see recall_row)
  std::unordered_map<int64_t, Row> pending;    // deferred deletes by generation (see drop())
  size_t pending_bytes = 0;
  std::map<int64_t, Row> queued;  // rows of this transaction's puts, written by before_commit
  size_t queued_bytes = 0;
  std::deque<int64_t> recent_order;
  size_t recent_bytes = 0;
  uint64_t inserted = 0;  // rows inserted since the last merge into one segment (see ~Index)
  uint64_t dropped = 0;   // entries dropped since the last sweep_values()
  bool rebuilt_when_opened = false;

  WriterStmts& stmts(sqlite3* db) {
    auto& p = writer_stmts[db];
    if (!p) p = std::make_unique<WriterStmts>(db);
    return *p;
  }

  void remember(int64_t gen, int64_t sha, Row row) {
    if (row.bytes() > kRecentCacheBytes / 8) return;
    forget(gen);
    recent_bytes += row.bytes();
    recent.emplace(gen, Recent{sha, std::move(row)});
    recent_order.push_back(gen);
    while (recent_bytes > kRecentCacheBytes && !recent_order.empty()) {
      forget(recent_order.front());
      recent_order.pop_front();
    }
    if (recent_order.size() > 2 * recent.size() + 64) {  // drop entries forgotten earlier
      std::deque<int64_t> live;
      for (int64_t g : recent_order) {
        if (recent.count(g)) live.push_back(g);
      }
      recent_order.swap(live);
    }
  }
  void forget(int64_t gen) {
    auto it = recent.find(gen);
    if (it == recent.end()) return;
    recent_bytes -= it->second.row.bytes();
    recent.erase(it);  // its recent_order entry is dropped lazily
  }

  static constexpr size_t kFeedBytes = 64 << 10;

  static Extracted extract_stream(std::istream& in) {
    Extractor x;
    std::string buf(kFeedBytes, '\0');
    while (!x.done()) {
      in.read(buf.data(), std::streamsize(buf.size()));
      const auto got = size_t(in.gcount());
      if (got == 0) break;
      x.feed(std::string_view(buf.data(), got));
    }
    return std::move(x.result());
  }

  // extract_stream() over bytes in memory, fed in the same pieces.
  static Extracted extract_bytes(std::string_view bytes) {
    Extractor x;
    for (size_t at = 0; at < bytes.size() && !x.done(); at += kFeedBytes) x.feed(bytes.substr(at, kFeedBytes));
    return std::move(x.result());
  }

  // Tokenizers kept for prepare_put() and queries (making one per use
  // showed in a query's time), one per thread that uses one at a time.
  std::mutex tok_pool_mu;
  std::vector<std::unique_ptr<Tokenizer>> tok_pool;
  struct PooledTokenizer {
    Impl& impl;
    std::unique_ptr<Tokenizer> tok;
    PooledTokenizer(Impl& i, std::unique_ptr<Tokenizer> t) : impl(i), tok(std::move(t)) {}
    PooledTokenizer(PooledTokenizer&&) = default;
    ~PooledTokenizer() {
      if (!tok) return;
      std::lock_guard lock(impl.tok_pool_mu);
      try {
        impl.tok_pool.push_back(std::move(tok));
      } catch (const std::bad_alloc&) {  // not kept: it is made again when needed
      }
    }
    Tokenizer& operator*() { return *tok; }
  };
  // A tokenizer from the pool, back to it when the holder goes.
  PooledTokenizer pooled_tokenizer() {
    {
      std::lock_guard lock(tok_pool_mu);
      if (!tok_pool.empty()) {
        PooledTokenizer held(*this, std::move(tok_pool.back()));
        tok_pool.pop_back();
        return held;
      }
    }
    return PooledTokenizer(*this, std::make_unique<Tokenizer>(lib));
  }

  // The row that was inserted for generation `gen` (hash `sha`), if this
  // index still has it: the item's earlier version is gone from the store
  // by the time the feed tells of the change.
  std::optional<Row> old_row(int64_t gen, int64_t sha) {
    if (auto it = recent.find(gen); it != recent.end() && it->second.sha == sha) return it->second.row;
    if (auto it = recalled.find(gen); it != recalled.end() && it->second.sha == sha) return it->second.row;
    return std::nullopt;
  }

  // Removes generation `gen` from the index.
  // With `defer`, the full-text row stays behind as a dead row (listed in
  // search_dead, skipped by queries) and is deleted later with others
  // in one go: by the next put, or once kMaxPending have gathered. FTS5 writes
  // a segment for every statement that follows a change to it in a
  // transaction, so a delete on its own cost several times the rest of a
  // remove.
  void drop(WriterStmts& st, int64_t gen, int64_t ino, int64_t sha, bool defer = false) {
    if (auto q = queued.find(gen); q != queued.end()) {  // put in this transaction, not written yet
      queued_bytes -= q->second.bytes();
      queued.erase(q);
      forget(gen);
      st.doc_delete.bind(1, gen).run();
      return;
    }
    (void)ino;
    if (auto row = old_row(gen, sha)) {
      if (defer) {
        st.add_dead.bind(1, gen).run();
        add_pending(gen, std::move(*row));
      } else {
        st.fts_delete.bind(1, gen).bind(2, row->text).run();
      }
    } else {
      st.add_dead.bind(1, gen).run();  // its tokens stay behind under a generation no item has
    }
    forget(gen);
    st.doc_delete.bind(1, gen).run();
    if (pending.size() >= kMaxPending || pending_bytes >= kMaxPendingBytes) flush_pending(st);
    if (++dropped % kSweepCheckEvery == 0 && dropped * kSweepFraction >= uint64_t(indexed_items(st.db, 0))) {
      sweep_values(st.db);
    }
  }

  // Deletes the facet values and tag lists no entry uses any more (an item
  // changed or went). It reads all of search_doc, so it runs once a good
  // part of the entries have been dropped since the last time, and when
  // the index is closed.
  void sweep_values(sqlite3* db) {
    exec(db,
         "DELETE FROM search_value WHERE id NOT IN ("
         " SELECT host FROM search_doc WHERE host IS NOT NULL UNION ALL"
         " SELECT author FROM search_doc WHERE author IS NOT NULL UNION ALL"
         " SELECT lang FROM search_doc WHERE lang IS NOT NULL UNION ALL"
         " SELECT tags FROM search_doc WHERE tags IS NOT NULL)");
    dropped = 0;
  }

  void add_pending(int64_t gen, Row row) {
    if (auto it = pending.find(gen); it != pending.end()) {
      pending_bytes -= it->second.bytes();
      pending.erase(it);
    }
    pending_bytes += row.bytes();
    pending.emplace(gen, std::move(row));
  }

  // Copies into temp table `table` the rows whose search_doc entry exists
  // (`live`) or is gone (!`live`), for one INSERT ... SELECT afterwards:
  // FTS5 writes what it has gathered at the start of each statement in a
  // transaction, so one statement per row would write a segment each. The
  // table is created here, not once: a transaction that rolls back takes it
  // away. Returns how many rows were copied.
  template <class Rows>
  size_t stage_rows(WriterStmts& st, const std::string& table, const Rows& rows, bool live) {
    exec(st.db, ("CREATE TEMP TABLE IF NOT EXISTS " + table + "(gen INTEGER PRIMARY KEY, text TEXT)").c_str());
    Stmt add(st.db, "INSERT OR REPLACE INTO temp." + table + "(gen, text) VALUES(?,?)");
    size_t copied = 0;
    for (const auto& [gen, row] : rows) {
      bool exists = false;
      {
        ResetOnExit r{st.doc_exists};
        exists = st.doc_exists.bind(1, gen).step();
      }
      if (exists != live) continue;
      add.bind(1, gen).bind(2, row.text).run();
      ++copied;
    }
    return copied;
  }

  // Deletes the rows of deferred drops. One whose generation is an entry
  // again was dropped in a transaction that did not commit: it is kept.
  void flush_pending(WriterStmts& st) {
    if (pending.empty()) return;
    size_t deleted = stage_rows(st, "search_dropped", pending, false);
    pending.clear();
    pending_bytes = 0;
    if (deleted == 0) return;
    exec(st.db,
         "INSERT INTO search_fts(search_fts, rowid, text) SELECT 'delete', gen, text FROM temp.search_dropped;"
         "DELETE FROM search_dead WHERE gen IN (SELECT gen FROM temp.search_dropped);"
         "DELETE FROM temp.search_dropped;");
  }

  void drop_ino(WriterStmts& st, int64_t ino, bool defer = false) {
    int64_t gen = 0, sha = 0;
    {
      ResetOnExit r{st.by_ino};
      st.by_ino.bind(1, ino);
      if (!st.by_ino.step()) return;
      gen = st.by_ino.int64(0);
      sha = st.by_ino.int64(1);
    }
    drop(st, gen, ino, sha, defer);
  }

  // The search_value id of a facet value or tag list (added if new); none
  // for "".
  static std::optional<int64_t> value_id(WriterStmts& st, const std::string& value) {
    if (value.empty()) return std::nullopt;
    const int64_t hash = value_hash(value);
    {
      ResetOnExit r{st.value_find};
      st.value_find.bind(1, hash);
      while (st.value_find.step()) {
        if (st.value_find.text(1) == value) return st.value_find.int64(0);
      }
    }
    ResetOnExit r{st.value_add};
    if (!st.value_add.bind(1, hash).bind(2, value).step()) throw StoreError(EIO, "search: cannot add a facet value");
    return st.value_add.int64(0);
  }

  void insert(WriterStmts& st, const store::ItemInfo& item, const Extracted& x) {
    insert(st, item, x, make_row(x, write_tok));
  }

  // With the row made ahead from x (make_row() is a function of x alone).
  void insert(WriterStmts& st, const store::ItemInfo& item, const Extracted& x, Row row) {
    int64_t gen;
    {
      ResetOnExit r{st.next_seq};
      if (!st.next_seq.step()) throw StoreError(EIO, "search: search_meta has no next_seq row");
      gen = st.next_seq.int64(0);
    }
    queued_bytes += row.bytes();
    queued[gen] = row;
    ++inserted;
    st.doc_insert.bind(1, gen).bind(2, item.ino).bind(3, sha8(item.sha256)).bind(4, x.date());
    st.doc_insert.bind(5, int64_t(row.length_class));
    st.doc_insert.bind(6, value_id(st, x.host)).bind(7, value_id(st, x.author)).bind(8, value_id(st, normal_lang(x.lang)));
    st.doc_insert.bind(9, value_id(st, join_tags(x.tags)));
    st.doc_insert.run();
    remember(gen, sha8(item.sha256), std::move(row));
    if (queued_bytes > kMaxQueuedBytes) flush_queued(st);
  }

  // Writes the queued rows of this transaction's puts: all in one statement,
  // so FTS5 writes one segment for them (see stage_rows). One whose entry
  // is gone came from a transaction that did not commit.
  void flush_queued(WriterStmts& st) {
    if (queued.empty()) return;
    size_t added = stage_rows(st, "search_added", queued, true);
    queued.clear();
    queued_bytes = 0;
    if (added == 0) return;
    exec(st.db,
         "INSERT INTO search_fts(rowid, text) SELECT gen, text FROM temp.search_added;"
         "DELETE FROM temp.search_added;");
  }

  // What a batch does to one item: its new row (made on a worker thread).
  struct Work {
    store::ItemInfo info;
    std::string bytes;
    Extracted x;
    Row row;
  };

  // Extracts the text of every item of `work` (from its bytes, which it
  // frees) on up to a few threads, each with a tokenizer of its own.
  void extract_all(std::vector<Work>& work) {
    const size_t threads = std::min<size_t>({work.size(), std::max<size_t>(store::usable_cpus(), 1), 4});
    std::atomic<size_t> next{0};
    store::run_on_threads(threads, [&](size_t) {
      auto tok = pooled_tokenizer();
      for (size_t k = next++; k < work.size(); k = next++) {
        Work& w = work[k];
        w.x = extract_bytes(w.bytes);
        w.row = make_row(w.x, *tok);
        w.x.body = std::string();  // insert() needs the facets, not the text
        std::string().swap(w.bytes);
      }
    });
  }

  // The item's bytes from snap, or false when they cannot be read back
  // (damaged content: it is left out of the index, as it cannot be searched).
  static bool read_bytes(store::Snapshot& snap, const store::ItemInfo& info, std::string& out) {
    out.clear();
    try {
      snap.read_item(info, [&](std::string_view bytes) { out.append(bytes); });
    } catch (const store::StoreError& e) {
      if (e.code() != EIO) throw;
      return false;
    }
    return true;
  }

  void set_closed(WriterStmts& st, const store::ItemInfo& item) {
    if (closed_mode(item.attrs.mode)) {
      st.closed_set.bind(1, item.ino).bind(2, int64_t(item.attrs.mode)).bind(3, int64_t(item.attrs.uid));
      st.closed_set.bind(4, int64_t(item.attrs.gid)).run();
    } else {
      st.closed_delete.bind(1, item.ino).run();
    }
  }

  void set_applied(sqlite3* w, uint64_t seq) {
    Stmt(w, "UPDATE search_meta SET value=? WHERE key='applied'").bind(1, int64_t(seq)).run();
  }

  // Forgets what this index keeps in memory of rows not yet (or no longer)
  // in search.db: after a transaction of search.db that did not commit.
  void forget_unwritten() {
    pending.clear();
    pending_bytes = 0;
    queued.clear();
    queued_bytes = 0;
    recent.clear();
    recent_order.clear();
    recent_bytes = 0;
  }

  // Runs fn in one write transaction of search.db.
  void in_transaction(const std::function<void(sqlite3*)>& fn) {
    sqlite3* w = sdb.writer();
    exec_sql(w, "BEGIN IMMEDIATE");
    try {
      fn(w);
      exec_sql(w, "COMMIT");
    } catch (...) {
      sqlite3_exec(w, "ROLLBACK", nullptr, nullptr, nullptr);
      forget_unwritten();
      throw;
    }
  }

  // Makes sure the row of generation `gen` (hash `sha`) can be deleted:
  // from the recent rows, else from the bytes one of the changes `seqs`
  // took away (the store keeps them for its followers). If neither has
  // them, the row will stay behind as a dead row.
  void recall_row(store::Snapshot& snap, int64_t gen, int64_t sha, const std::vector<uint64_t>& seqs) {
    if (auto it = recent.find(gen); it != recent.end() && it->second.sha == sha) return;
    std::string old;
    for (uint64_t seq : seqs) {
      if (!snap.read_replaced(seq, old) || sha8(store::sha256_of(old)) != sha) continue;
      recalled.emplace(gen, Recent{sha, make_row(extract_bytes(old), write_tok)});
      return;
    }
  }

  // Applies the next batch of the store's change feed (the follower's
  // step). Each changed item is indexed as the batch's snapshot has it, a
  // state at least as new as its changes, so applying a change twice, or a
  // later state early, leaves the index as it would be anyway.
  Follower::Step apply_batch() {
    std::lock_guard lock(write_mu);
    // Another process's index (an itemfs command beside a mount) may have
    // applied more of the feed meanwhile.
    applied = std::max(applied, uint64_t(meta_value(sdb.writer(), "applied").value_or(0)));
    auto snap = store.snapshot();
    store::ChangeList list = snap->changes_since(applied, kFeedBatch);
    if (!list.complete || applied > list.last_seq) {
      // Behind what the feed keeps, or ahead of the store (another store
      // put in its place): start again from the items.
      rebuild_locked({});
      return {applied, false};
    }
    if (list.changes.empty()) return {applied, false};
    std::vector<int64_t> gone;
    std::vector<store::ItemInfo> attrs_only;
    std::vector<Work> work;
    std::unordered_set<int64_t> seen;
    uint64_t through = applied;
    size_t bytes = 0;
    auto& st = stmts(sdb.writer());
    // The changes of this batch that took content away, by item: where the
    // bytes of the version the index has may be found, to delete its row.
    std::unordered_map<int64_t, std::vector<uint64_t>> took;
    for (const store::Change& c : list.changes) {
      if (c.kind == store::ChangeKind::kPut || c.kind == store::ChangeKind::kRemove) took[c.ino].push_back(c.seq);
    }
    for (const store::Change& c : list.changes) {
      if (bytes >= kMaxQueuedBytes * 4) break;  // the rest in the next batch
      through = c.seq;
      if (!seen.insert(c.ino).second) continue;
      auto info = snap->item_by_ino(c.ino);
      std::optional<int64_t> indexed_sha, indexed_gen;
      {
        ResetOnExit r{st.by_ino};
        if (st.by_ino.bind(1, c.ino).step()) indexed_gen = st.by_ino.int64(0), indexed_sha = st.by_ino.int64(1);
      }
      if (indexed_gen && (!info || *indexed_sha != sha8(info->sha256))) recall_row(*snap, *indexed_gen, *indexed_sha, took[c.ino]);
      if (!info) {
        gone.push_back(c.ino);
        continue;
      }
      if (indexed_sha == sha8(info->sha256)) {
        attrs_only.push_back(std::move(*info));
        continue;
      }
      Work w;
      w.info = std::move(*info);
      if (!read_bytes(*snap, w.info, w.bytes)) {
        gone.push_back(c.ino);
        continue;
      }
      bytes += w.bytes.size();
      work.push_back(std::move(w));
    }
    snap.reset();
    extract_all(work);
    struct Forget {
      std::unordered_map<int64_t, Recent>& rows;
      ~Forget() { rows.clear(); }
    } forget_recalled{recalled};
    in_transaction([&](sqlite3* w) {
      for (int64_t ino : gone) {
        drop_ino(st, ino, /*defer=*/true);
        st.closed_delete.bind(1, ino).run();
      }
      for (const auto& info : attrs_only) set_closed(st, info);
      for (auto& one : work) {
        drop_ino(st, one.info.ino);
        insert(st, one.info, one.x, std::move(one.row));
        set_closed(st, one.info);
      }
      if (!work.empty()) {
        flush_pending(st);
        flush_queued(st);
      }
      set_applied(w, through);
    });
    applied = through;
    store.advance(kFollowerName, applied);
    return {applied, through < list.last_seq};
  }

  // Builds the whole index anew from the items, in one transaction of
  // search.db, and follows the feed from the snapshot it read them in.
  void rebuild_locked(const IndexOptions::Progress& progress) {
    // Registered afresh first, so the feed keeps every change after the
    // snapshot below.
    store.unfollow(kFollowerName);
    store.follow(kFollowerName);
    auto snap = store.snapshot();
    const uint64_t seq = snap->seq();
    std::vector<store::ItemInfo> items;
    snap->for_each_item([&](const store::ItemInfo& info) { items.push_back(info); });
    in_transaction([&](sqlite3* w) {
      exec_sql(w, "DELETE FROM search_doc; DELETE FROM search_value; DELETE FROM search_dead; DELETE FROM search_closed;"
                  "INSERT INTO search_fts(search_fts) VALUES('delete-all');");
      forget_unwritten();
      WriterStmts& st = stmts(w);
      uint64_t done = 0;
      if (progress) progress(0, items.size());
      for (size_t from = 0; from < items.size(); from += kRebuildBatch) {
        std::vector<Work> work;
        for (size_t k = from; k < std::min(items.size(), from + kRebuildBatch); ++k) {
          Work one;
          one.info = items[k];
          if (read_bytes(*snap, one.info, one.bytes)) work.push_back(std::move(one));
        }
        extract_all(work);
        for (auto& one : work) {
          insert(st, one.info, one.x, std::move(one.row));
          set_closed(st, one.info);
        }
        done = std::min<uint64_t>(items.size(), from + kRebuildBatch);
        if (progress) progress(done, items.size());
      }
      flush_queued(st);
      recent.clear();
      recent_order.clear();
      recent_bytes = 0;
      exec_sql(w, "INSERT INTO search_fts(search_fts) VALUES('optimize');");
      set_applied(w, seq);
    });
    inserted = 0;
    applied = seq;
    snap.reset();
    store.advance(kFollowerName, seq);
    if (follower) follower->set_applied(seq);
  }

  // A read view of the index for a query, once the index has applied every
  // change committed before the query began (waiting up to
  // options.max_wait); *pending: the changes it has still not applied.
  // None if there is no index.
  std::optional<SearchDb::View> query_view(uint64_t* pending_out) {
    const uint64_t target = store.last_seq();
    if (follower) follower->wait_for(target, options.max_wait);
    std::optional<SearchDb::View> view(sdb.read());
    if (!view->db() || !snapshot_has_table(view->db(), "search_doc")) return std::nullopt;
    const auto got = uint64_t(meta_value(view->db(), "applied").value_or(0));
    if (pending_out) *pending_out = target > got ? target - got : 0;
    return view;
  }

  // The changes committed before now that the index has not applied, after
  // waiting for them as long as the options say.
  uint64_t wait_for_feed(std::optional<std::chrono::milliseconds> wait) {
    const uint64_t target = store.last_seq();
    const uint64_t got = follower ? follower->wait_for(target, wait) : 0;
    return got >= target ? 0 : target - got;
  }

  struct Candidate {
    int64_t gen;
    double score;  // higher is better
    std::optional<int64_t> date;
    int length_class;
  };

  Status run(std::string_view text, Results& out, bool snippets, const Reader& who);

  // The length class of every generation, read from search_doc once and
  // then only for the generations added since, so that a query reads each
  // word's rows once instead of once per class. A generation's class never
  // changes (every indexed version of an item gets a new one, and next_seq
  // only grows), so a table read at one snapshot stays right for later ones
  // up to the next_seq it was read at; a generation it does not have (one
  // removed before it was read and seen by an older snapshot) is looked up
  // in the query's own snapshot.
  // One byte per generation from the oldest live one on (100 KB at 100k
  // items); after much rewriting, when few generations of a long span are
  // live, the live ones and their classes instead (sparse).
  struct ClassTable {
    static constexpr uint8_t kNone = 0xFF;
    int64_t base = 0;            // dense: the generation of cls[0]
    int64_t upto = 0;            // next_seq when read: every generation below it
    bool sparse = false;
    std::vector<uint8_t> cls;    // dense: by generation - base, kNone where search_doc had none; sparse: of gens[k]
    std::vector<int64_t> gens;   // sparse: the generations, in order
    // hint: where the previous lookup ended (lookups come with rising gens).
    int get(int64_t gen, size_t& hint) const {
      if (!sparse) {
        const uint64_t at = uint64_t(gen - base);
        return at < cls.size() ? cls[at] : kNone;
      }
      if (hint > gens.size() || (hint > 0 && gens[hint - 1] >= gen)) hint = 0;
      const auto it = std::lower_bound(gens.begin() + ptrdiff_t(hint), gens.end(), gen);
      hint = size_t(it - gens.begin());
      return it != gens.end() && *it == gen ? cls[hint] : kNone;
    }
    void add(int64_t gen, uint8_t c) {
      if (sparse) {
        if (gens.empty() || gen > gens.back()) gens.push_back(gen), cls.push_back(c);
        return;
      }
      if (cls.empty()) base = gen;
      if (gen < base) return;  // (gens come in order)
      const auto at = uint64_t(gen - base);
      if (at >= cls.size()) cls.resize(at + 1, kNone);
      cls[at] = c;
    }
    // Dense while the span is at most 16 bytes per live generation.
    void fit(int64_t live) {
      if (sparse || int64_t(cls.size()) <= 16 * live + (int64_t(1) << 20)) return;
      for (size_t k = 0; k < cls.size(); ++k) {
        if (cls[k] != kNone) gens.push_back(base + int64_t(k));
      }
      std::vector<uint8_t> packed;
      packed.reserve(gens.size());
      for (int64_t g : gens) packed.push_back(cls[size_t(g - base)]);
      cls.swap(packed);
      sparse = true;
    }
    int64_t live() const {
      return sparse ? int64_t(gens.size()) : int64_t(std::count_if(cls.begin(), cls.end(), [](uint8_t c) { return c != kNone; }));
    }
  };
  std::mutex class_mu;
  std::shared_ptr<const ClassTable> class_cache;  // guarded by class_mu

  // The table for snapshot db (read or brought up to date as needed); live:
  // the number of items the index has in it.
  std::shared_ptr<const ClassTable> class_table(sqlite3* db, int64_t live) {
    const int64_t next = meta_value(db, "next_seq").value_or(1);
    std::lock_guard lock(class_mu);
    std::shared_ptr<const ClassTable> cur = class_cache;
    if (cur && cur->upto == next) return cur;
    auto table = std::make_shared<ClassTable>();
    int64_t from = INT64_MIN;
    // Only the generations added since; all again when most of the table is
    // generations that are gone. (next < cur->upto: an older snapshot, or an
    // index made anew; either way this snapshot's own table is right for it.)
    if (cur && cur->upto < next && cur->live() <= 2 * live + 65536) {
      *table = *cur;
      from = cur->upto;
    }
    Stmt s(db, "SELECT gen, len FROM search_doc WHERE gen >= ?1 ORDER BY gen");
    s.bind(1, from);
    size_t rows = 0;
    while (s.step()) {
      table->add(s.int64(0), uint8_t(std::clamp<int64_t>(s.int64(1), 0, kLengthClasses - 1)));
      if (++rows % 65536 == 0) table->fit(live);  // (bounds the memory as it reads)
    }
    table->fit(live);
    table->upto = next;
    if (!cur || next >= cur->upto) class_cache = table;
    return table;
  }
};

Index::Index(store::Store& store, IndexOptions options) : impl_(std::make_unique<Impl>(store, std::move(options))) {
  Impl& impl = *impl_;
  if (!impl.sdb.exists()) return;  // read-only, and never built: queries say so
  sqlite3* w = impl.sdb.writer();
  if (!w) {  // a read-only store: the index is read as it is
    auto view = impl.sdb.read();
    if (!table_exists(view.db(), "search_meta")) return;
    const auto version = meta_value(view.db(), "version");
    if (version && *version != kIndexVersion) {
      throw StoreError(EPROTO, "search: the index has version " + std::to_string(*version) + ", this itemfs reads " +
                                   std::to_string(kIndexVersion) + " (open the store to write to rebuild it)");
    }
    impl.applied = uint64_t(meta_value(view.db(), "applied").value_or(0));
    return;
  }
  std::optional<int64_t> version;
  if (table_exists(w, "search_meta")) version = meta_value(w, "version");
  if (version && *version > kIndexVersion) {
    throw StoreError(EPROTO, "search: the index was written by a newer itemfs (index version " +
                                 std::to_string(*version) + ", this one knows " + std::to_string(kIndexVersion) + ")");
  }
  {
    std::lock_guard lock(impl.write_mu);
    if (version == kIndexVersion) {
      impl.applied = uint64_t(meta_value(w, "applied").value_or(0));
    } else {
      impl.in_transaction([&](sqlite3* db) {
        exec_sql(db, kDrop);
        exec_sql(db, kSchema);
        Stmt(db, "INSERT OR REPLACE INTO search_meta(key, value) VALUES('version', ?)").bind(1, int64_t(kIndexVersion)).run();
      });
      impl.writer_stmts.clear();
      impl.rebuild_locked(impl.options.progress);
      impl.rebuilt_when_opened = true;
    }
  }
  // What the store committed while no index followed it (a crash, a
  // command that ran without one) is applied now: an opened index is
  // current.
  try {
    while (impl.apply_batch().more) {
    }
  } catch (const std::exception&) {
    // (A full disk, say.) The follower tries again; check() says why it is behind.
  }
  impl.follower = std::make_unique<Follower>(impl.applied, [&impl] { return impl.apply_batch(); });
  store.add_commit_listener([wake = impl.follower->waker()](uint64_t) { wake(); });
  impl.follower->wake();
}

bool Index::rebuilt_when_opened() const { return impl_->rebuilt_when_opened; }

void Index::catch_up() {
  if (impl_->follower) impl_->wait_for_feed(std::nullopt);
}

uint64_t Index::lag() {
  const uint64_t last = impl_->store.last_seq();
  uint64_t applied = 0;
  if (impl_->follower) {
    applied = impl_->follower->applied();
  } else {
    auto view = impl_->sdb.read();
    if (view.db() && table_exists(view.db(), "search_meta")) applied = uint64_t(meta_value(view.db(), "applied").value_or(0));
  }
  return last > applied ? last - applied : 0;
}

Index::~Index() {
  // The follower stops after the batch under way; what it has not applied
  // is applied when the store is next opened with an index.
  impl_->follower.reset();
  // Deferred deletes not written now stay as dead rows until a reindex. After
  // a session that added a good part of the rows (an import, a restore, a
  // large copy into the mount), FTS5's segments are merged into one, which
  // makes the index about a tenth smaller than the merges FTS5 does as it
  // goes leave it.
  if (!impl_->sdb.writer()) return;
  const bool merge = impl_->inserted >= kMergeAfterRows;
  if (impl_->pending.empty() && !merge && impl_->dropped == 0) return;
  try {
    std::lock_guard lock(impl_->write_mu);
    impl_->in_transaction([&](sqlite3* db) {
      impl_->flush_pending(impl_->stmts(db));
      if (impl_->dropped) impl_->sweep_values(db);
      if (!merge) return;
      Stmt rows(db, "SELECT count(*) FROM search_doc");
      if (rows.step() && impl_->inserted * kMergeFraction >= uint64_t(rows.int64(0))) {
        exec(db, "INSERT INTO search_fts(search_fts) VALUES('optimize')");
      }
    });
  } catch (const std::exception&) {
  }
}

void Index::reindex() {
  if (!impl_->sdb.writer()) throw StoreError(EROFS, "search: the store is open read-only");
  std::lock_guard lock(impl_->write_mu);
  impl_->rebuild_locked(impl_->options.progress);
}

Status Index::Impl::run(std::string_view text, Results& out, bool snippets, const Reader& who) {
  out = Results{};
  out.query = std::string(text);
  auto pooled = pooled_tokenizer();
  Tokenizer& tok = *pooled;
  Query q;
  if (Status st = parse_query(text, tok, q); !st.ok()) return st;
  auto view = query_view(&out.pending);
  if (!view) return Status::error(EIO, "the search index is missing; run itemfs reindex");
  sqlite3* db = view->db();
  auto snap = store.snapshot();
  const std::vector<int64_t> dead = dead_gens(db);
  // Rows of items `who` may not read are skipped like dead ones, before
  // ranking and limit:, so hits and counts are the reader's own.
  const std::vector<int64_t> closed = unreadable_gens(db, store, who);
  const CheckPlan check(db, q);
  // Only dates need search_doc; everything else comes from the full-text index.
  const bool dates = q.sort_date || q.after || q.before || q.positive.empty();
  RowSink matched;  // dead rows too
  if (!dates) {
    matched.rows = rows_matching(db, q.match());
  } else {
    Stmt s(db, match_sql(q, q.sort_date, "d.date", true), Stmt::Collecting{});
    bind_match(s, q);
    s.bind_sink(4, matched);
    s.step();
  }
  Stmt lookup(db, kItemOfGen);
  // Every row that matches, in rowid order: its generation, its date when
  // the query needs dates, its length class when it ranks.
  std::vector<int64_t> gens;
  std::vector<std::optional<int64_t>> row_dates;
  const auto rows = int64_t(matched.rows.size());
  gens.reserve(matched.rows.size());
  for (size_t k = 0; k < matched.rows.size(); ++k) {
    const int64_t gen = matched.rows[k];
    if (!dead.empty() && contains(dead, gen)) continue;
    if (!closed.empty() && contains(closed, gen)) continue;
    if (check.needed(gen) && !exact_match(*snap, lookup, tok, q, gen)) continue;
    gens.push_back(gen);
    if (dates) row_dates.push_back(matched.values[k]);
  }
  if (!std::is_sorted(gens.begin(), gens.end())) {
    std::vector<size_t> order(gens.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return gens[a] < gens[b]; });
    std::vector<int64_t> g(gens.size());
    std::vector<std::optional<int64_t>> d(row_dates.size());
    for (size_t k = 0; k < order.size(); ++k) {
      g[k] = gens[order[k]];
      if (dates) d[k] = row_dates[order[k]];
    }
    gens.swap(g);
    row_dates.swap(d);
  }
  const bool ranked = !q.positive.empty();
  std::vector<uint8_t> classes;
  double avg_length = 0;
  const int64_t indexed = ranked && !gens.empty() ? indexed_items(db, dead.size()) : 0;
  if (ranked && !gens.empty()) {
    classes.resize(gens.size());
    const auto table = class_table(db, indexed);
    Stmt len(db, "SELECT len FROM search_doc WHERE gen=?");
    double length = 0;
    size_t hint = 0;
    for (size_t k = 0; k < gens.size(); ++k) {
      int c = table->get(gens[k], hint);
      if (c == ClassTable::kNone) {
        ResetOnExit r{len};
        // A row no item has (not a dead row: check() reports it) counts as class 0.
        c = len.bind(1, gens[k]).step() ? int(std::clamp<int64_t>(len.int64(0), 0, kLengthClasses - 1)) : 0;
      }
      classes[k] = uint8_t(c);
      length += class_length(c);
    }
    avg_length = length / double(gens.size());
  }
  auto better = [&](const Candidate& a, const Candidate& b) {
    if (q.sort_date || q.positive.empty()) {
      if (a.date != b.date) return a.date.value_or(INT64_MIN) > b.date.value_or(INT64_MIN);
    }
    if (a.score != b.score) return a.score > b.score;
    return a.gen < b.gen;
  };
  // The best `limit` rows, kept as a heap whose front is the worst of them.
  uint64_t total = gens.size();
  std::vector<Candidate> found;
  found.reserve(std::min<size_t>(gens.size(), q.limit));
  std::optional<Scorer> scorer;
  if (ranked && !gens.empty()) {
    // A query of one word has just read every row that has the word.
    std::optional<int64_t> only_docs;
    if (q.all.size() == 1 && q.all[0].size() == 1 && q.negative.empty() && !dates && !q.exact) {
      const Phrase& p = q.all[0][0];
      if (!p.prefix && p.tokens.size() == 1 && (p.columns & (kTitleColumn | kBodyColumn)) &&
          q.positive == "(" + phrase_fts(p) + ")") {
        only_docs = rows;  // less the closed ones among them (matched.rows is sorted here)
        for (int64_t c : closed) *only_docs -= std::binary_search(matched.rows.begin(), matched.rows.end(), c);
      }
    }
    scorer.emplace(db, q, indexed, only_docs, closed);
  }
  for (size_t k = 0; k < gens.size(); ++k) {
    Candidate c{gens[k], 0, dates ? row_dates[k] : std::nullopt, ranked ? classes[k] : 0};
    if (scorer) c.score = scorer->score(c.gen, c.length_class, avg_length);
    if (found.size() < q.limit) {
      found.push_back(c);
      std::push_heap(found.begin(), found.end(), better);
    } else if (!found.empty() && better(c, found.front())) {
      std::pop_heap(found.begin(), found.end(), better);
      found.back() = c;
      std::push_heap(found.begin(), found.end(), better);
    }
  }
  std::sort_heap(found.begin(), found.end(), better);
  const size_t top = found.size();
  std::vector<store::ItemInfo> items;
  for (size_t k = 0; k < top; ++k) {
    if (auto info = item_of(*snap, lookup, found[k].gen)) {
      out.hits.push_back(Hit{info->id, found[k].score == 0 ? 0.0 : found[k].score, {}});
      items.push_back(std::move(*info));
    } else if (total > 0) {
      --total;  // an entry whose item is gone (not a dead row: check() reports it)
    }
  }
  out.total = total;
  if (snippets && !items.empty()) {
    // Inflating and tokenizing the hits' text is most of a common word's
    // query: a second thread, when there is a second core and enough hits.
    const size_t threads = items.size() >= kSnippetsOnTwoThreadsFrom && store::usable_cpus() > 1 ? 2 : 1;
    std::vector<PooledTokenizer> more;
    std::vector<Tokenizer*> tokenizers{&tok};
    while (tokenizers.size() < threads) tokenizers.push_back(&*more.emplace_back(pooled_tokenizer()));
    Snippets made(q.highlight, items.size(), std::move(tokenizers));
    snap->read_items_until(items, threads, made);
    for (size_t k = 0; k < out.hits.size(); ++k) out.hits[k].snippet = made.take(k);
  }
  return Status::success();
}

Status Index::run(std::string_view query, Results& out, const Reader& who) { return impl_->run(query, out, true, who); }
Status Index::run_without_snippets(std::string_view query, Results& out, const Reader& who) {
  return impl_->run(query, out, false, who);
}

// What dump() makes of {"query", "total", "hits": [{"rank", "id", "path",
// "score", "snippet"}, ...]} (keys sorted, indent 2), written directly:
// building that tree and dumping it was 6% of a common word's query.
std::string Index::to_json(const Results& r) {
  std::string out;
  out.reserve(64 + r.query.size() + r.hits.size() * 512);
  out += "{\n  \"hits\": [";
  uint64_t rank = 0;
  for (const Hit& h : r.hits) {
    out += rank == 0 ? "\n    {\n      \"id\": " : ",\n    {\n      \"id\": ";
    append_json_string(out, h.id);
    out += ",\n      \"path\": ";
    append_json_string(out, item_path(h.id));
    out += ",\n      \"rank\": ";
    out += std::to_string(++rank);
    out += ",\n      \"score\": ";
    out += json(std::round(h.score * 1e6) / 1e6).dump();
    out += ",\n      \"snippet\": ";
    append_json_string(out, h.snippet);
    out += "\n    }";
  }
  if (rank > 0) out += "\n  ";
  out += "],\n  ";
  if (r.pending > 0) out += "\"pending\": " + std::to_string(r.pending) + ",\n  ";
  out += "\"query\": ";
  append_json_string(out, r.query);
  out += ",\n  \"total\": ";
  out += std::to_string(r.total);
  out += "\n}\n";
  return out;
}

Status Index::suggest_json(std::string_view prefix, std::string& out, const Reader& who) {
  Tokenizer tok(impl_->lib);
  if (prefix.size() > kMaxQueryBytes) return Status::error(EINVAL, "the prefix is longer than 4096 bytes");
  bool single = false;
  auto tokens = query_tokens(tok, prefix, &single);
  if (tokens.empty()) return Status::error(EINVAL, "the prefix has no letters or digits to complete");
  const std::string& t = tokens.back();
  auto view = impl_->query_view(nullptr);
  if (!view) return Status::error(EIO, "the search index is missing; run itemfs reindex");
  sqlite3* db = view->db();
  Stmt s(db, "SELECT term, doc FROM search_vocab WHERE term >= ?1 AND term < ?2");
  s.bind(1, t).bind(2, t + "\xF4\x90");
  std::vector<std::pair<std::string, int64_t>> terms;
  while (s.step()) {
    std::string_view term = s.text(0);
    if (is_marker(term)) continue;
    terms.emplace_back(term, s.int64(1));
  }
  auto before = [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; };
  std::sort(terms.begin(), terms.end(), before);
  if (const std::vector<int64_t> closed = unreadable_gens(db, impl_->store, who); !closed.empty()) {
    // The index counts every item's words; this reader's counts leave out
    // the items it may not read, which needs each word's rows. A word's
    // count can only shrink, so words are taken most frequent first until
    // the next one cannot reach the 50th count found.
    std::vector<std::pair<std::string, int64_t>> mine;
    std::vector<int64_t> least;  // a min-heap of the best 50 counts so far
    for (auto& [term, docs] : terms) {
      if (least.size() == 50 && docs < least.front()) break;
      const std::vector<int64_t> rows = rows_matching(db, fts_phrase({term}));
      int64_t readable = int64_t(rows.size());
      for (int64_t c : closed) readable -= std::binary_search(rows.begin(), rows.end(), c);
      if (readable <= 0) continue;  // a word only unreadable items have
      mine.emplace_back(std::move(term), readable);
      least.push_back(readable);
      std::push_heap(least.begin(), least.end(), std::greater<>());
      if (least.size() > 50) {
        std::pop_heap(least.begin(), least.end(), std::greater<>());
        least.pop_back();
      }
    }
    std::sort(mine.begin(), mine.end(), before);
    terms.swap(mine);
  }
  if (terms.size() > 50) terms.resize(50);
  json list = json::array();
  for (const auto& [term, docs] : terms) list.push_back(json{{"term", term}, {"docs", docs}});
  out = dump(json{{"prefix", std::string(prefix)}, {"terms", std::move(list)}});
  return Status::success();
}

Status Index::facets_json(std::string_view query, std::string& out, const Reader& who) {
  Tokenizer tok(impl_->lib);
  Query q;
  if (Status st = parse_query(query, tok, q); !st.ok()) return st;
  auto view = impl_->query_view(nullptr);
  if (!view) return Status::error(EIO, "the search index is missing; run itemfs reindex");
  sqlite3* db = view->db();
  auto snap = impl_->store.snapshot();
  Stmt s(db, match_sql(q, true, "d.host, d.author, d.lang, d.tags, d.date"));
  bind_match(s, q);
  Stmt lookup(db, kItemOfGen);
  const CheckPlan check(db, q);
  const std::vector<int64_t> closed = unreadable_gens(db, impl_->store, who);  // not counted
  // Host, author and lang are counted by search_value id; the values of the
  // largest are read at the end.
  std::unordered_map<int64_t, uint64_t> host, author, lang, tag_list;
  std::unordered_map<std::string, uint64_t> tag;
  std::unordered_map<int, uint64_t> year;
  uint64_t total = 0;
  while (s.step()) {
    if (!closed.empty() && contains(closed, s.int64(0))) continue;
    if (check.needed(s.int64(0)) && !exact_match(*snap, lookup, tok, q, s.int64(0))) continue;
    ++total;
    if (!s.null(1)) ++host[s.int64(1)];
    if (!s.null(2)) ++author[s.int64(2)];
    if (!s.null(3)) ++lang[s.int64(3)];
    if (!s.null(4)) ++tag_list[s.int64(4)];
    if (!s.null(5)) ++year[year_of(s.int64(5))];
  }
  Stmt value_of(db, "SELECT value FROM search_value WHERE id=?");
  for (const auto& [id, count] : tag_list) {
    ResetOnExit r{value_of};
    if (!value_of.bind(1, id).step()) continue;
    std::string_view tags = value_of.text(0);
    std::vector<std::string_view> seen;  // an item counts once for a tag it has twice
    while (!tags.empty()) {
      const size_t sep = tags.find('\x1f');
      std::string_view one = tags.substr(0, sep);
      if (!one.empty() && std::find(seen.begin(), seen.end(), one) == seen.end()) {
        seen.push_back(one);
        tag[std::string(one)] += count;
      }
      if (sep == std::string_view::npos) break;
      tags.remove_prefix(sep + 1);
    }
  }
  // The 20 largest, ties by value: only values that can be among them are read.
  auto top = [&](const auto& counts, auto name) {
    std::vector<uint64_t> sizes;
    sizes.reserve(counts.size());
    for (const auto& kv : counts) sizes.push_back(kv.second);
    uint64_t least = 0;
    if (sizes.size() > 20) {
      std::nth_element(sizes.begin(), sizes.begin() + 19, sizes.end(), std::greater<>());
      least = sizes[19];
    }
    std::vector<std::pair<std::string, uint64_t>> v;
    for (const auto& [key, count] : counts) {
      if (count >= least) v.emplace_back(name(key), count);
    }
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    if (v.size() > 20) v.resize(20);
    json list = json::array();
    for (const auto& [value, count] : v) list.push_back(json{{"value", value}, {"count", count}});
    return list;
  };
  auto value = [&](int64_t id) {
    ResetOnExit r{value_of};
    return value_of.bind(1, id).step() ? std::string(value_of.text(0)) : std::string();
  };
  json facets{{"host", top(host, value)},
              {"author", top(author, value)},
              {"tag", top(tag, [](const std::string& t) { return t; })},
              {"lang", top(lang, value)},
              {"year", top(year, [](int y) { return std::to_string(y); })}};
  out = dump(json{{"query", std::string(query)}, {"total", total}, {"facets", std::move(facets)}});
  return Status::success();
}

std::vector<std::string> Index::check() {
  std::vector<std::string> problems;
  uint64_t more = 0;
  auto problem = [&](std::string line) {
    if (problems.size() < kMaxProblems) {
      problems.push_back("search: " + std::move(line));
    } else {
      ++more;
    }
  };
  catch_up();
  // The follower waits meanwhile, so that the index and the store are read
  // at the same point of the feed.
  std::unique_lock writing(impl_->write_mu);
  {
    auto view = impl_->sdb.read();
    sqlite3* db = view.db();
    if (!db) return {"search: the index is missing (itemfs reindex builds it)"};
    for (const char* table : {"search_meta", "search_doc", "search_value", "search_dead", "search_fts", "search_closed"}) {
      if (!table_exists(db, table)) return {"search: the index tables are missing (itemfs reindex rebuilds them)"};
    }
    auto snap = impl_->store.snapshot();
    const auto applied = uint64_t(meta_value(db, "applied").value_or(0));
    if (applied != snap->seq()) {
      return {"search: the index has applied the store's changes up to " + std::to_string(applied) +
              ", but the store is at " + std::to_string(snap->seq()) +
              (impl_->follower ? " (" + impl_->follower->last_error() + ")" : std::string(" (read-only)"))};
    }
    if (auto cursor = impl_->store.cursor(kFollowerName); cursor && *cursor > applied) {
      problem("the store's feed keeps changes after " + std::to_string(*cursor) + " only, but the index applied up to " +
              std::to_string(applied));
    }
    std::unordered_map<int64_t, std::array<int64_t, 3>> closed;  // by ino: mode, uid, gid
    {
      Stmt s(db, "SELECT ino, mode, uid, gid FROM search_closed");
      while (s.step()) closed[s.int64(0)] = {s.int64(1), s.int64(2), s.int64(3)};
    }
    if (meta_value(db, "version").value_or(0) != kIndexVersion) {
      problem("the index has version " + std::to_string(meta_value(db, "version").value_or(0)) + ", expected " +
              std::to_string(kIndexVersion));
    }
    struct Doc {
      int64_t gen, sha;
      bool seen = false;
    };
    std::unordered_map<int64_t, Doc> docs;  // by ino
    std::unordered_set<int64_t> uses;  // the search_value ids entries hold
    {
      Stmt s(db, "SELECT ino, gen, sha, host, author, lang, tags FROM search_doc");
      while (s.step()) {
        docs.emplace(s.int64(0), Doc{s.int64(1), s.int64(2)});
        for (int c = 3; c <= 6; ++c) {
          if (!s.null(c)) uses.insert(s.int64(c));
        }
      }
    }
    {
      // (Values no entry uses wait for the next sweep: not a problem.) A
      // value under a wrong hash would be added again, splitting its count.
      Stmt s(db, "SELECT id, hash, value FROM search_value");
      std::unordered_set<std::string> values;
      uint64_t misfiled = 0, twice = 0;
      while (s.step()) {
        uses.erase(s.int64(0));
        misfiled += s.int64(1) != value_hash(s.text(2));
        twice += !values.emplace(s.text(2)).second;
      }
      if (!uses.empty()) problem(std::to_string(uses.size()) + " facet values of items are missing");
      if (misfiled) problem(std::to_string(misfiled) + " facet values are under a wrong hash");
      if (twice) problem(std::to_string(twice) + " facet values are kept twice");
    }
    // Every row holds one length token, so these are all the rows.
    std::vector<int64_t> rows = rows_matching(db, fts_phrase({std::string(kLengthMark)}) + " *");
    uint64_t wrong_modes = 0;
    snap->for_each_item([&](const store::ItemInfo& item) {
      const auto c = closed.find(item.ino);
      const std::array<int64_t, 3> attrs{item.attrs.mode, item.attrs.uid, item.attrs.gid};
      if (closed_mode(item.attrs.mode) ? c == closed.end() || c->second != attrs : c != closed.end()) ++wrong_modes;
      auto it = docs.find(item.ino);
      if (it == docs.end()) {
        problem("item " + item.id + " is not in the index");
        return;
      }
      it->second.seen = true;
      if (it->second.sha != sha8(item.sha256)) problem("the index has an older version of item " + item.id);
      if (!contains(rows, it->second.gen)) problem("the full-text row of item " + item.id + " is missing");
    });
    if (wrong_modes) problem("the index has the wrong modes or owners of " + std::to_string(wrong_modes) + " items");
    std::unordered_set<int64_t> live;
    for (const auto& [ino, doc] : docs) {
      live.insert(doc.gen);
      if (!doc.seen) problem("the index lists inode " + std::to_string(ino) + ", which is not an item");
    }
    const std::vector<int64_t> dead = dead_gens(db);
    uint64_t orphans = 0;
    for (int64_t r : rows) orphans += !live.count(r) && !contains(dead, r);
    if (orphans) problem(std::to_string(orphans) + " full-text rows belong to no item");
    // Ranking takes the number of items from FTS5's count of its rows.
    if (const auto counted = fts_rows(db); counted && *counted != int64_t(rows.size())) {
      problem("the full-text index counts " + std::to_string(*counted) + " rows but has " + std::to_string(rows.size()));
    }
    uint64_t live_dead = 0;
    for (int64_t g : dead) live_dead += live.count(g);
    if (live_dead) problem(std::to_string(live_dead) + " entries of items are listed as dead rows");
  }
  if (sqlite3* w = impl_->sdb.writer()) {
    // FTS5's own structure check; it writes nothing but needs a write transaction.
    std::string damage;
    impl_->in_transaction([&](sqlite3* db) {
      if (sqlite3_exec(db, "INSERT INTO search_fts(search_fts) VALUES('integrity-check')", nullptr, nullptr, nullptr) !=
          SQLITE_OK) {
        damage = sqlite3_errmsg(db);
      }
    });
    (void)w;
    if (!damage.empty()) problem("the full-text index is damaged: " + damage);
  }
  if (more) problems.push_back("search: ... and " + std::to_string(more) + " more problems");
  return problems;
}

extern const unsigned char kReadme[];
extern const size_t kReadmeSize;

bool Reader::may(uint32_t mode, uint32_t owner, uint32_t group, uint32_t bit) const {
  if (root()) return true;
  if (uid == owner) return mode & (bit << 6);
  if (gid == group || std::find(groups.begin(), groups.end(), group) != groups.end()) return mode & (bit << 3);
  return mode & bit;
}

std::string_view Index::readme() { return std::string_view(reinterpret_cast<const char*>(kReadme), kReadmeSize); }

}  // namespace itemfs::search
