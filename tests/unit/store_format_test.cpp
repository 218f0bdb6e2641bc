// Stores of older formats (1 and 2, made here by hand) open, read every byte
// and migrate; a one-chunk item's blob is found by the item's hash, also
// when released earlier in the same batch.
#include "tests/unit/store_fixture.h"

namespace itemfs::store {
namespace {


// A store as format 1 wrote it, made here by hand: its schema (with the
// index items_by_shard), one dictionary named by meta.current_dict, blobs of
// every codec, with and without the dictionary, shared and in chunks.
const char* const kFormat1Schema = R"SQL(
CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE dicts(id INTEGER PRIMARY KEY, created_ns INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE blobs(
  id INTEGER PRIMARY KEY AUTOINCREMENT, sha256 BLOB NOT NULL UNIQUE,
  raw_size INTEGER NOT NULL, stored_size INTEGER NOT NULL,
  codec INTEGER NOT NULL, dict_id INTEGER, refs INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE dirs(
  ino INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,
  mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL);
CREATE TABLE items(
  ino INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, shard TEXT NOT NULL,
  size INTEGER NOT NULL, sha256 BLOB NOT NULL,
  mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL);
CREATE INDEX items_by_shard ON items(shard, id);
CREATE TABLE chunks(
  ino INTEGER NOT NULL, seq INTEGER NOT NULL, blob INTEGER NOT NULL,
  PRIMARY KEY(ino, seq)) WITHOUT ROWID;
)SQL";

class Format1Store {
 public:
  explicit Format1Store(const std::filesystem::path& dir) {
    std::filesystem::create_directories(dir);
    EXPECT_EQ(sqlite3_open((dir / "store.db").c_str(), &db_), SQLITE_OK);
    run("PRAGMA journal_mode=WAL");
    run(kFormat1Schema);
    run("INSERT INTO meta VALUES('format_version', 1)");
    run("INSERT INTO dirs(name, mode, uid, gid, mtime_ns, ctime_ns) VALUES('', 16877, 0, 0, 1, 1)");
  }
  ~Format1Store() { sqlite3_close(db_); }

  void run(const std::string& sql) {
    ASSERT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db_);
  }

  void dictionary(int64_t id, const std::string& data) {
    dictionary_ = data;
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(db_, "INSERT INTO dicts(id, created_ns, data) VALUES(?, 1, ?)", -1, &s, nullptr);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_blob(s, 2, data.data(), int(data.size()), SQLITE_TRANSIENT);
    EXPECT_EQ(sqlite3_step(s), SQLITE_DONE);
    sqlite3_finalize(s);
    run("INSERT OR REPLACE INTO meta VALUES('current_dict', " + std::to_string(id) + ")");
  }

  // The blob of `raw` (added, or its count raised), compressed as asked.
  int64_t blob(const std::string& raw, bool zlib, int64_t dict_id) {
    Sha256 digest = sha256_of(raw);
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(db_, "UPDATE blobs SET refs=refs+1 WHERE sha256=? RETURNING id", -1, &s, nullptr);
    sqlite3_bind_blob(s, 1, digest.data(), int(digest.size()), SQLITE_TRANSIENT);
    int64_t id = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_finalize(s);
    if (id) return id;
    std::string stored = raw;
    Codec codec = Codec::kRaw;
    if (zlib) {
      Compressor compressor;
      codec = compressor.compress(raw, dict_id ? std::string_view(dictionary_) : std::string_view(), stored);
      EXPECT_EQ(codec, Codec::kZlib);
    }
    sqlite3_prepare_v2(db_,
                       "INSERT INTO blobs(sha256, raw_size, stored_size, codec, dict_id, refs, data) "
                       "VALUES(?, ?, ?, ?, ?, 1, ?) RETURNING id",
                       -1, &s, nullptr);
    sqlite3_bind_blob(s, 1, digest.data(), int(digest.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, int64_t(raw.size()));
    sqlite3_bind_int64(s, 3, int64_t(stored.size()));
    sqlite3_bind_int64(s, 4, int64_t(codec));
    if (codec == Codec::kZlib && dict_id) sqlite3_bind_int64(s, 5, dict_id);
    else sqlite3_bind_null(s, 5);
    sqlite3_bind_blob(s, 6, stored.data(), int(stored.size()), SQLITE_TRANSIENT);
    EXPECT_EQ(sqlite3_step(s), SQLITE_ROW);
    id = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return id;
  }

  void item(const std::string& id, const std::string& bytes, bool zlib, int64_t dict_id) {
    std::vector<int64_t> blobs;
    for (size_t offset = 0; offset < bytes.size() || offset == 0; offset += kChunkSize)
      blobs.push_back(blob(bytes.substr(offset, kChunkSize), zlib, dict_id));
    Sha256 digest = sha256_of(bytes);
    std::string shard = shard_of(id);
    run("INSERT OR IGNORE INTO dirs(name, mode, uid, gid, mtime_ns, ctime_ns) VALUES('" + shard +
        "', 16877, 0, 0, 1, 1)");
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(db_,
                       "INSERT INTO items(id, shard, size, sha256, mode, uid, gid, mtime_ns, ctime_ns) "
                       "VALUES(?, ?, ?, ?, 33188, 0, 0, 7, 7) RETURNING ino",
                       -1, &s, nullptr);
    sqlite3_bind_text(s, 1, id.data(), int(id.size()), SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, shard.data(), int(shard.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 3, int64_t(bytes.size()));
    sqlite3_bind_blob(s, 4, digest.data(), int(digest.size()), SQLITE_TRANSIENT);
    EXPECT_EQ(sqlite3_step(s), SQLITE_ROW);
    int64_t ino = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    for (size_t seq = 0; seq < blobs.size(); ++seq)
      run("INSERT INTO chunks VALUES(" + std::to_string(ino) + ", " + std::to_string(seq) + ", " +
          std::to_string(blobs[seq]) + ")");
  }

 private:
  sqlite3* db_ = nullptr;
  std::string dictionary_;
};

TEST(StoreFormatTest, AFormat1StoreOpensReadsEveryByteAndMigrates) {
  TempDir dir;
  std::mt19937 rng(8);
  std::map<std::string, std::string> items;
  auto doc = [&](int i) {
    return "{\"title\": \"page " + std::to_string(i) + "\", \"content\": \"" + text_in(i % 2, rng, 50) + "\"}";
  };
  std::string big = "{\"content\": \"";
  while (big.size() < kChunkSize + 300000) big += text_in(0, rng, 100) + " ";
  big += "\"}";
  {
    Format1Store old(dir.path());
    old.dictionary(1, doc(0) + doc(1) + doc(2));
    for (int i = 0; i < 60; ++i) {
      std::string id = (i % 3 ? "ab" : "cd") + std::to_string(i);
      items[id] = doc(i);
      old.item(id, items[id], i % 4 != 3, i % 4 < 2 ? 1 : 0);  // with the dictionary, without, raw
    }
    items["ab-same"] = items["ab1"];  // a shared blob
    old.item("ab-same", items["ab-same"], true, 1);
    items["é"] = "[1, 2]";  // shard 00
    old.item("é", items["é"], false, 0);
    items["big"] = big;  // two chunks
    old.item("big", big, true, 0);
  }
  auto db = dir.path() / "store.db";
  auto read_back_all = [&](Store& store) {
    for (const auto& [id, bytes] : items) ASSERT_EQ(read_all(store, id), bytes) << id;
    auto snapshot = store.snapshot();
    size_t seen = 0;
    snapshot->for_each_item([&](const ItemInfo& info) {
      std::string bytes;
      snapshot->read_item(info, [&](std::string_view piece) { bytes += piece; });
      EXPECT_EQ(bytes, items[info.id]) << info.id;
      ++seen;
    });
    EXPECT_EQ(seen, items.size());
  };
  // Read-only, it is read as it is.
  {
    Options options;
    options.read_only = true;
    auto store = Store::open(dir.path(), options);
    read_back_all(*store);
    EXPECT_EQ(store->list_shard("ab").size(), 41u);
    EXPECT_EQ(store->list_shard("00").size(), 1u);
  }
  EXPECT_EQ(scalar(db, "SELECT value FROM meta WHERE key='format_version'"), 1);
  // Opened to write, it is brought to the current format.
  auto store = Store::open(dir.path());
  EXPECT_EQ(scalar(db, "SELECT value FROM meta WHERE key='format_version'"), kFormatVersion);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM sqlite_master WHERE name='items_by_shard'"), 0);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM sqlite_master WHERE name='items_in_00'"), 1);
  read_back_all(*store);
  auto ab = store->list_shard("ab");
  ASSERT_EQ(ab.size(), 41u);
  EXPECT_TRUE(std::is_sorted(ab.begin(), ab.end(), [](const ItemInfo& a, const ItemInfo& b) { return a.id < b.id; }));
  ASSERT_EQ(store->list_shard("00").size(), 1u);
  EXPECT_EQ(store->list_shard("00")[0].id, "é");
  FsckReport report = store->fsck(false);
  EXPECT_TRUE(report.clean()) << (report.problems.empty() ? "" : report.problems[0]);
  EXPECT_EQ(report.items_checked, items.size());
  // It keeps its one dictionary for new blobs, and new items share old blobs.
  items["new"] = doc(61);
  ASSERT_TRUE(put(*store, "new", items["new"]).ok());
  EXPECT_EQ(scalar(db, "SELECT b.dict_id FROM blobs b JOIN chunks c ON c.blob=b.id JOIN items i ON i.ino=c.ino "
                       "WHERE i.id='new'"),
            1);
  items["ab-again"] = items["ab1"];
  ASSERT_TRUE(put(*store, "ab-again", items["ab-again"]).ok());
  EXPECT_EQ(scalar(db, "SELECT b.refs FROM blobs b JOIN chunks c ON c.blob=b.id JOIN items i ON i.ino=c.ino "
                       "WHERE i.id='ab-again'"),
            3);
  EXPECT_EQ(read_all(*store, "ab-again"), items["ab1"]);
  EXPECT_TRUE(store->fsck(false).clean());
  // It keeps its UNIQUE(sha256) index, which finds blobs as blobs_by_sha does.
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM sqlite_master WHERE name='blobs_by_sha'"), 0);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM sqlite_master WHERE name='sqlite_autoindex_blobs_1'"), 1);
  // Opened again, nothing more changes.
  store.reset();
  store = Store::open(dir.path());
  read_back_all(*store);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM dicts"), 1);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM sqlite_master WHERE name='blobs_by_sha'"), 0);
}

// tests/unit/fixtures/store_format2: a store as the last build of format 2
// wrote it (see its README.md), and what it holds.
struct Format2Fixture {
  std::filesystem::path dir = std::filesystem::path(__FILE__).parent_path() / "fixtures" / "store_format2";
  struct Expected {
    std::string sha256;
    uint64_t size = 0;
  };
  std::map<std::string, Expected> items;
  Format2Fixture() {
    std::ifstream in(dir / "items.txt");
    std::string sha, id;
    uint64_t size = 0;
    while (in >> sha >> size >> id) items[id] = {sha, size};
  }
};

TEST(StoreFormatTest, AFormat2StoreOpensReadsEveryByteAndMigrates) {
  Format2Fixture fixture;
  ASSERT_EQ(fixture.items.size(), 44u);
  TempDir dir;
  std::filesystem::copy_file(fixture.dir / "store.db", dir.path() / "store.db");
  auto db = dir.path() / "store.db";
  auto read_back_all = [&](Store& store) {
    for (const auto& [id, expected] : fixture.items) {
      std::string bytes = read_all(store, id);
      EXPECT_EQ(bytes.size(), expected.size) << id;
      EXPECT_EQ(to_hex(sha256_of(bytes)), expected.sha256) << id;
      auto info = store.item(id);
      ASSERT_TRUE(info) << id;
      EXPECT_EQ(to_hex(info->sha256), expected.sha256) << id;
    }
    auto snapshot = store.snapshot();
    size_t seen = 0;
    snapshot->for_each_item([&](const ItemInfo& info) {
      std::string bytes;
      snapshot->read_item(info, [&](std::string_view piece) { bytes += piece; });
      EXPECT_EQ(to_hex(sha256_of(bytes)), fixture.items[info.id].sha256) << info.id;
      ++seen;
    });
    EXPECT_EQ(seen, fixture.items.size());
  };
  EXPECT_EQ(scalar(db, "SELECT value FROM meta WHERE key='format_version'"), 2);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM chunks WHERE seq > 0"), 1);
  EXPECT_EQ(scalar(db, "SELECT max(refs) FROM blobs"), 2);
  // Read-only, it is read as it is.
  {
    Options options;
    options.read_only = true;
    auto store = Store::open(dir.path(), options);
    read_back_all(*store);
    EXPECT_TRUE(store->fsck(false).clean());
  }
  EXPECT_EQ(scalar(db, "SELECT value FROM meta WHERE key='format_version'"), 2);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM sqlite_master WHERE name='items_by_sha'"), 0);
  // Opened to write, it is brought to format 3: an index more, nothing
  // rewritten (its blobs keep their hashes).
  auto store = Store::open(dir.path());
  EXPECT_EQ(scalar(db, "SELECT value FROM meta WHERE key='format_version'"), kFormatVersion);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM sqlite_master WHERE name='items_by_sha'"), 1);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM blobs WHERE length(sha256) <> 32"), 0);
  read_back_all(*store);
  FsckReport report = store->fsck(false);
  EXPECT_TRUE(report.clean()) << (report.problems.empty() ? "" : report.problems[0]);
  EXPECT_EQ(report.items_checked, fixture.items.size());
  // New items share the old blobs; a new content's blob leaves its hash out.
  const std::string shared = "{\"t\": \"žluťoučký kůň\", \"n\": [1, 2, 3]}";
  ASSERT_EQ(fixture.items["e9aa00000000000a"].sha256, to_hex(sha256_of(shared)));
  int64_t blobs = scalar(db, "SELECT count(*) FROM blobs");
  ASSERT_TRUE(put(*store, "again", shared).ok());
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM blobs"), blobs);
  EXPECT_EQ(scalar(db, "SELECT b.refs FROM blobs b JOIN chunks c ON c.blob=b.id JOIN items i ON i.ino=c.ino "
                       "WHERE i.id='again'"),
            2);
  ASSERT_TRUE(put(*store, "new", "{\"new\": true}").ok());
  EXPECT_EQ(scalar(db, "SELECT length(b.sha256) FROM blobs b JOIN chunks c ON c.blob=b.id JOIN items i ON "
                       "i.ino=c.ino WHERE i.id='new'"),
            0);
  // Old items go and come back.
  store->write([&](WriteBatch& b) {
    ASSERT_TRUE(b.remove("e9aa00000000000a").ok());
    ASSERT_TRUE(b.rename("ffff000000000001", "moved").ok());
  });
  EXPECT_EQ(read_all(*store, "again"), shared);
  EXPECT_EQ(to_hex(sha256_of(read_all(*store, "moved"))), fixture.items["ffff000000000001"].sha256);
  report = store->fsck(false);
  EXPECT_TRUE(report.clean()) << (report.problems.empty() ? "" : report.problems[0]);
  // Opened again, nothing more changes.
  store.reset();
  store = Store::open(dir.path());
  EXPECT_EQ(scalar(db, "SELECT value FROM meta WHERE key='format_version'"), kFormatVersion);
  EXPECT_EQ(read_all(*store, "new"), "{\"new\": true}");
  EXPECT_TRUE(store->fsck(false).clean());
}

// Format 3: the blob of a one-chunk item keeps no hash (the item's is its
// hash). It is still found by it, shared, and checked; and it gets its hash
// back when only items of several chunks still use it.
TEST(StoreFormatTest, AOneChunkItemsBlobIsFoundByTheItemsHash) {
  TempDir dir;
  auto db = dir.path() / "store.db";
  auto store = Store::open(dir.path());
  EXPECT_EQ(scalar(db, "SELECT value FROM meta WHERE key='format_version'"), kFormatVersion);
  // A JSON string of exactly one chunk, and an item of two chunks that
  // starts with it (JSON allows the spaces after it).
  std::string whole = "\"";
  while (whole.size() < kChunkSize - 1) whole += "abcdefghij"[whole.size() % 10];
  whole += "\"";
  ASSERT_EQ(whole.size(), kChunkSize);
  const std::string longer = whole + std::string(1000, ' ');
  const Sha256 whole_sha = sha256_of(whole);
  auto blob_of = [&](const std::string& id, int seq) {
    return scalar(db, "SELECT c.blob FROM chunks c JOIN items i ON i.ino=c.ino WHERE i.id='" + id +
                          "' AND c.seq=" + std::to_string(seq));
  };
  auto hash_length = [&](int64_t blob) {
    return scalar(db, "SELECT length(sha256) FROM blobs WHERE id=" + std::to_string(blob));
  };
  auto clean = [&] {
    FsckReport report = store->fsck(false);
    std::string all;
    for (auto& line : report.problems) all += line + "\n";
    EXPECT_TRUE(report.clean()) << all;
  };
  ASSERT_TRUE(put(*store, "one", whole).ok());
  ASSERT_TRUE(put(*store, "one-again", whole).ok());
  const int64_t blob = blob_of("one", 0);
  EXPECT_EQ(blob_of("one-again", 0), blob);
  EXPECT_EQ(hash_length(blob), 0);
  EXPECT_EQ(scalar(db, "SELECT refs FROM blobs WHERE id=" + std::to_string(blob)), 2);
  EXPECT_EQ(to_hex(store->item("one")->sha256), to_hex(whole_sha));
  // An item of two chunks shares it as its first, and gives it its hash
  // back: that item's readers check each chunk by its blob's hash.
  ASSERT_TRUE(put(*store, "two", longer).ok());
  EXPECT_EQ(blob_of("two", 0), blob);
  EXPECT_EQ(hash_length(blob), 32);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM blobs"), 2);
  EXPECT_EQ(read_all(*store, "two"), longer);
  clean();
  // The same content again in one batch, over itself, renamed over: the
  // blob keeps its hash.
  store->write([&](WriteBatch& b) {
    std::istringstream a(whole), c("[1]");
    ASSERT_TRUE(b.put("one", a, {}).ok());
    ASSERT_TRUE(b.put("other", c, {}).ok());
    ASSERT_TRUE(b.rename("one", "one-again").ok());
  });
  EXPECT_EQ(hash_length(blob), 32);
  EXPECT_EQ(scalar(db, "SELECT refs FROM blobs WHERE id=" + std::to_string(blob)), 2);
  clean();
  // The last one-chunk item goes: the blob, still in "two", keeps its hash.
  store->write([&](WriteBatch& b) { ASSERT_TRUE(b.remove("one-again").ok()); });
  EXPECT_EQ(hash_length(blob), 32);
  EXPECT_EQ(scalar(db, "SELECT refs FROM blobs WHERE id=" + std::to_string(blob)), 1);
  EXPECT_EQ(read_all(*store, "two"), longer);
  clean();
  // And is found by it.
  ASSERT_TRUE(put(*store, "one", whole).ok());
  EXPECT_EQ(blob_of("one", 0), blob);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM blobs"), 3);  // and "other"'s
  clean();
  // Removed in the same batch as it is given other content: gone with both.
  store->write([&](WriteBatch& b) {
    std::istringstream a("[2]");
    ASSERT_TRUE(b.put("one", a, {}).ok());
    ASSERT_TRUE(b.remove("two").ok());
  });
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM blobs WHERE id=" + std::to_string(blob)), 0);
  clean();
  // fsck: a blob without a hash that no one-chunk item has is reported.
  ASSERT_TRUE(put(*store, "x", "[3]").ok());
  exec(db, "UPDATE items SET size=5000000 WHERE id='x'");  // no longer an item of one chunk
  FsckReport report = store->fsck(false);
  std::string all;
  for (auto& line : report.problems) all += line + "\n";
  EXPECT_NE(all.find("stored without its SHA-256, and no one-chunk item uses it"), std::string::npos) << all;
  EXPECT_NE(all.find("item x: chunks hold 3 bytes"), std::string::npos) << all;
  // A blob whose item's hash is wrong fails its check by that hash.
  exec(db, "UPDATE items SET size=3, sha256=zeroblob(32) WHERE id='x'");
  report = store->fsck(false);
  all.clear();
  for (auto& line : report.problems) all += line + "\n";
  EXPECT_NE(all.find("content does not match its SHA-256"), std::string::npos) << all;
}

// Format 3: a blob that lost its last one-chunk item in one call of a batch
// is found again, by its hash, by a later call of the same batch; it is
// never stored twice nor left without a hash nobody holds.
TEST(StoreFormatTest, ABlobReleasedEarlyInABatchIsFoundLaterInIt) {
  TempDir dir;
  auto db = dir.path() / "store.db";
  auto store = Store::open(dir.path());
  // JSON allows leading whitespace: "big"'s second chunk is exactly "[1]".
  const std::string big = std::string(kChunkSize, ' ') + "[1]";
  auto blob_of = [&](const std::string& id, int seq) {
    return scalar(db, "SELECT c.blob FROM chunks c JOIN items i ON i.ino=c.ino WHERE i.id='" + id +
                          "' AND c.seq=" + std::to_string(seq));
  };
  auto clean = [&] {
    FsckReport report = store->fsck(false);
    std::string all;
    for (auto& line : report.problems) all += line + "\n";
    EXPECT_TRUE(report.clean()) << all;
  };
  ASSERT_TRUE(put(*store, "x", "[1]").ok());
  ASSERT_TRUE(put(*store, "y", big).ok());
  const int64_t blob = blob_of("x", 0);
  ASSERT_EQ(blob_of("y", 1), blob);
  // x gives "[1]" up, then w takes it, in one batch.
  store->write([&](WriteBatch& b) {
    std::istringstream two("[2]"), one("[1]");
    ASSERT_TRUE(b.put("x", two, {}).ok());
    ASSERT_TRUE(b.put("w", one, {}).ok());
  });
  EXPECT_EQ(blob_of("w", 0), blob);
  clean();
  // w goes, then an item of two chunks ending in "[1]" comes, in one batch.
  store->write([&](WriteBatch& b) {
    std::istringstream z(big);
    ASSERT_TRUE(b.remove("w").ok());
    ASSERT_TRUE(b.put("z", z, {}).ok());
  });
  EXPECT_EQ(blob_of("z", 1), blob);
  EXPECT_EQ(scalar(db, "SELECT length(sha256) FROM blobs WHERE id=" + std::to_string(blob)), 32);
  // x back to "[1]" and over again in one batch.
  store->write([&](WriteBatch& b) {
    std::istringstream one("[1]"), three("[3]"), again("[1]");
    ASSERT_TRUE(b.put("x", one, {}).ok());
    ASSERT_TRUE(b.put("x", three, {}).ok());
    ASSERT_TRUE(b.put("x", again, {}).ok());
  });
  EXPECT_EQ(blob_of("x", 0), blob);
  EXPECT_EQ(read_all(*store, "y"), big);
  EXPECT_EQ(read_all(*store, "z"), big);
  EXPECT_EQ(read_all(*store, "x"), "[1]");
  clean();
}

}  // namespace
}  // namespace itemfs::store
