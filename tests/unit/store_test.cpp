#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <atomic>
#include <random>
#include <thread>
#include <sstream>

#include "store/store.h"
#include "tests/unit/temp_dir.h"

namespace itemfs::store {
namespace {

Status put(Store& store, const std::string& id, const std::string& bytes, Attrs attrs = {}) {
  Status result;
  store.write([&](WriteBatch& batch) {
    std::istringstream in(bytes);
    result = batch.put(id, in, attrs);
  });
  return result;
}

std::string read_all(Store& store, const std::string& id) {
  auto info = store.item(id);
  if (!info) return "<missing>";
  auto reader = store.open_item(*info);
  if (!reader) return "<stale>";
  std::string out;
  std::string piece;
  for (uint64_t offset = 0; offset < info->size; offset += piece.size()) {
    EXPECT_TRUE(reader->pread(offset, 100000, piece).ok());
    if (piece.empty()) break;
    out += piece;
  }
  return out;
}

int64_t scalar(const std::filesystem::path& db_file, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open(db_file.c_str(), &db);
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr);
  int64_t value = sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : -1;
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return value;
}

void exec(const std::filesystem::path& db_file, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open(db_file.c_str(), &db);
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);
}

TEST(StoreTest, ExactByteRoundTripAndAttributes) {
  TempDir dir;
  auto store = Store::open(dir.path());
  // Odd but valid formatting must survive untouched: no re-serialisation.
  std::string doc = "{ \"b\" : 1,\n  \"a\":[1.50, \"\\u00e9\", null]  }\n";
  Attrs attrs{0100640, 1234, 5678, 1700000000123456789};
  ASSERT_TRUE(put(*store, "abc123", doc, attrs).ok());
  EXPECT_EQ(read_all(*store, "abc123"), doc);
  auto info = store->item("abc123");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->size, doc.size());
  EXPECT_EQ(info->attrs.mode, 0100640u);
  EXPECT_EQ(info->attrs.uid, 1234u);
  EXPECT_EQ(info->attrs.gid, 5678u);
  EXPECT_EQ(info->attrs.mtime_ns, 1700000000123456789);
  auto shard = store->list_shard("ab");
  ASSERT_EQ(shard.size(), 1u);
  EXPECT_EQ(shard[0].id, "abc123");
  EXPECT_TRUE(store->dir_info("ab"));
}

TEST(StoreTest, InvalidJsonIsRefusedAndOldVersionKept) {
  TempDir dir;
  auto store = Store::open(dir.path());
  ASSERT_TRUE(put(*store, "x1", "{\"v\":1}").ok());
  for (std::string bad : {"{", "", "{\"a\":1,}", "[1] [2]", "{\"a\":NaN}", "\"\xff\""}) {
    Status status = put(*store, "x1", bad);
    EXPECT_EQ(status.code, EINVAL) << bad;
    EXPECT_NE(status.message.find("invalid JSON"), std::string::npos) << status.message;
  }
  Status status = put(*store, "x1", "{\n  \"a\": tru\n}");
  EXPECT_NE(status.message.find("line 2, column 11"), std::string::npos) << status.message;
  EXPECT_EQ(read_all(*store, "x1"), "{\"v\":1}");
}

TEST(StoreTest, DeepNestingDoesNotOverflowTheStack) {
  TempDir dir;
  auto store = Store::open(dir.path());
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_TRUE(put(*store, "deep", deep).ok());
  EXPECT_EQ(put(*store, "deep2", std::string(100000, '[')).code, EINVAL);
}

TEST(StoreTest, SameContentUnderManyIdsIsOneBlob) {
  TempDir dir;
  auto store = Store::open(dir.path());
  std::string doc = R"({"title":"same","content":"identical content for every id"})";
  store->write([&](WriteBatch& batch) {
    for (int i = 0; i < 1000; ++i) {
      std::istringstream in(doc);
      ASSERT_TRUE(batch.put("id" + std::to_string(i), in, {}).ok());
    }
  });
  Stats stats = store->stats();
  EXPECT_EQ(stats.items, 1000u);
  EXPECT_EQ(stats.blobs, 1u);
  EXPECT_EQ(stats.logical_bytes, 1000u * doc.size());
  EXPECT_EQ(stats.unique_bytes, doc.size());
  EXPECT_DOUBLE_EQ(stats.dedup_ratio(), 1000.0);
  EXPECT_EQ(scalar(dir.path() / "store.db", "SELECT refs FROM blobs"), 1000);
}

TEST(StoreTest, ReferenceCountsStayExactThroughOverwriteRenameDelete) {
  TempDir dir;
  auto store = Store::open(dir.path());
  auto db = dir.path() / "store.db";
  ASSERT_TRUE(put(*store, "aa1", "[1]").ok());
  ASSERT_TRUE(put(*store, "aa2", "[1]").ok());
  EXPECT_EQ(scalar(db, "SELECT refs FROM blobs"), 2);
  ASSERT_TRUE(put(*store, "aa2", "[2]").ok());  // overwrite
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM blobs"), 2);
  EXPECT_EQ(scalar(db, "SELECT sum(refs) FROM blobs"), 2);
  store->write([&](WriteBatch& batch) { ASSERT_TRUE(batch.rename("aa2", "bb2").ok()); });
  EXPECT_FALSE(store->item("aa2"));
  EXPECT_EQ(read_all(*store, "bb2"), "[2]");
  // Rename onto an existing item replaces it and frees what it used.
  store->write([&](WriteBatch& batch) { ASSERT_TRUE(batch.rename("bb2", "aa1").ok()); });
  EXPECT_EQ(read_all(*store, "aa1"), "[2]");
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM blobs"), 1);
  store->write([&](WriteBatch& batch) { ASSERT_TRUE(batch.remove("aa1").ok()); });
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM blobs"), 0);
  EXPECT_EQ(store->stats().items, 0u);
  EXPECT_TRUE(store->fsck(false).clean());
}

TEST(StoreTest, InoIsStableAcrossRename) {
  TempDir dir;
  auto store = Store::open(dir.path());
  ASSERT_TRUE(put(*store, "abc", "{}").ok());
  int64_t ino = store->item("abc")->ino;
  store->write([&](WriteBatch& batch) { ASSERT_TRUE(batch.rename("abc", "xyz").ok()); });
  EXPECT_EQ(store->item("xyz")->ino, ino);
  EXPECT_EQ(store->item_by_ino(ino)->id, "xyz");
}

TEST(StoreTest, CompressesAndKeepsIncompressibleRaw) {
  TempDir dir;
  auto store = Store::open(dir.path());
  std::string text = "{\"content\":\"";
  for (int i = 0; i < 200; ++i) text += "the quick brown fox jumps over the lazy dog ";
  text += "\"}";
  ASSERT_TRUE(put(*store, "text", text).ok());
  std::mt19937 rng(42);
  std::string noise = "\"";
  for (int i = 0; i < 4000; ++i) noise += char('a' + rng() % 26) , noise += char('0' + rng() % 10);
  noise += "\"";
  ASSERT_TRUE(put(*store, "noise", noise).ok());
  auto db = dir.path() / "store.db";
  EXPECT_LT(scalar(db, "SELECT stored_size FROM blobs WHERE raw_size=" + std::to_string(text.size())),
            int64_t(text.size() / 10));
  EXPECT_LE(scalar(db, "SELECT stored_size FROM blobs WHERE raw_size=" + std::to_string(noise.size())),
            int64_t(noise.size()));
  EXPECT_EQ(read_all(*store, "text"), text);
  EXPECT_EQ(read_all(*store, "noise"), noise);
  EXPECT_GT(store->stats().compression_ratio(), 1.0);
}

TEST(StoreTest, UnicodeIdsAndShards) {
  TempDir dir;
  auto store = Store::open(dir.path());
  EXPECT_EQ(shard_of("日本語"), "日本");
  EXPECT_EQ(shard_of("é"), "00");
  EXPECT_EQ(shard_of("ab"), "ab");
  EXPECT_EQ(shard_of("שלום"), "של");
  for (std::string id : {"日本語の記事", "café", "שלום עולם", "a b 'quoted' \"x\"", "-dash", ".dot"}) {
    ASSERT_TRUE(put(*store, id, "{\"id\":1}").ok()) << id;
    EXPECT_EQ(store->list_shard(shard_of(id)).at(0).id, id);
  }
  EXPECT_EQ(check_id("a/b").code, EINVAL);
  EXPECT_EQ(check_id("").code, EINVAL);
  EXPECT_EQ(check_id("\xc3\x28").code, EINVAL);
  EXPECT_EQ(check_id(std::string(251, 'a')).code, ENAMETOOLONG);
  EXPECT_TRUE(check_id(std::string(250, 'a')).ok());
}

TEST(StoreTest, LargeItemsAreChunkedAndRoundTrip) {
  TempDir dir;
  Options options;
  options.max_item_size = 8 << 20;
  auto store = Store::open(dir.path(), options);
  std::string big = "[";
  std::mt19937 rng(7);
  while (big.size() < 3 * kChunkSize + 12345) big += std::to_string(rng()) + ",";
  big += "0]";
  std::string file = (dir.path() / "big.json").string();
  std::ofstream(file) << big;
  Status status;
  store->write([&](WriteBatch& batch) {
    std::ifstream in(file);
    status = batch.put("bigone", in, {});
  });
  ASSERT_TRUE(status.ok()) << status.message;
  EXPECT_EQ(scalar(dir.path() / "store.db", "SELECT count(*) FROM chunks"), 4);
  EXPECT_EQ(read_all(*store, "bigone"), big);
  // Reads across a chunk boundary.
  auto reader = store->open_item(*store->item("bigone"));
  std::string piece;
  ASSERT_TRUE(reader->pread(kChunkSize - 10, 20, piece).ok());
  EXPECT_EQ(piece, big.substr(kChunkSize - 10, 20));
  std::string too_big(9 << 20, ' ');
  too_big[0] = '0';
  EXPECT_EQ(put(*store, "huge", too_big).code, EFBIG);
  EXPECT_TRUE(store->fsck(false).clean());
}

TEST(StoreTest, StaleReaderAfterOverwrite) {
  TempDir dir;
  auto store = Store::open(dir.path());
  ASSERT_TRUE(put(*store, "s1", "[\"old\"]").ok());
  auto old_info = *store->item("s1");
  ASSERT_TRUE(put(*store, "s1", "[\"new\"]").ok());
  EXPECT_EQ(store->open_item(old_info), nullptr);
}

TEST(StoreTest, FsckFindsDamageAndRepairsCounts) {
  TempDir dir;
  auto db = dir.path() / "store.db";
  {
    auto store = Store::open(dir.path());
    ASSERT_TRUE(put(*store, "good", "{\"a\":\"good good good good good good good good\"}").ok());
    ASSERT_TRUE(put(*store, "bad", "{\"b\":\"bad bad bad bad bad bad bad bad bad\"}").ok());
    EXPECT_TRUE(store->fsck(false).clean());
  }
  // Damage one blob's bytes and another's count, as a disk fault or a bug would.
  exec(db, "UPDATE blobs SET data=zeroblob(length(data)) WHERE id=(SELECT blob FROM chunks JOIN items USING(ino) "
           "WHERE items.id='bad')");
  exec(db, "UPDATE blobs SET refs=7 WHERE id=(SELECT blob FROM chunks JOIN items USING(ino) WHERE items.id='good')");
  auto store = Store::open(dir.path());
  FsckReport report = store->fsck(false);
  ASSERT_FALSE(report.clean());
  std::string all;
  for (auto& line : report.problems) all += line + "\n";
  EXPECT_NE(all.find("item bad: content damaged"), std::string::npos) << all;
  EXPECT_NE(all.find("reference count 7, used 1"), std::string::npos) << all;
  report = store->fsck(true);
  EXPECT_EQ(report.repaired, 1u);
  report = store->fsck(false);
  EXPECT_EQ(report.problems.size(), 2u);  // the damaged blob and its item stay reported
}

TEST(StoreTest, ShardDirectories) {
  TempDir dir;
  auto store = Store::open(dir.path());
  store->write([&](WriteBatch& batch) {
    EXPECT_TRUE(batch.make_dir("zz", {040700, 1, 2, 1600000000000000000}).ok());
    EXPECT_EQ(batch.make_dir("zz", {}).code, EEXIST);
    EXPECT_EQ(batch.make_dir("toolong", {}).code, EINVAL);
  });
  auto zz = store->dir_info("zz");
  ASSERT_TRUE(zz);
  EXPECT_EQ(zz->attrs.mtime_ns, 1600000000000000000);
  ASSERT_TRUE(put(*store, "zzz", "1").ok());
  store->write([&](WriteBatch& batch) { EXPECT_EQ(batch.remove_dir("zz").code, ENOTEMPTY); });
  store->write([&](WriteBatch& batch) {
    EXPECT_TRUE(batch.remove("zzz").ok());
    EXPECT_TRUE(batch.remove_dir("zz").ok());
  });
  EXPECT_FALSE(store->dir_info("zz"));
}

TEST(StoreTest, ConcurrentReadersDuringWrites) {
  TempDir dir;
  auto store = Store::open(dir.path());
  ASSERT_TRUE(put(*store, "k", "[0]").ok());
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::thread reader([&] {
    while (!stop) {
      std::string v = read_all(*store, "k");
      if (v != "<stale>" && (v.size() < 3 || v.front() != '[' || v.back() != ']')) ++bad;
    }
  });
  for (int i = 1; i < 300; ++i) ASSERT_TRUE(put(*store, "k", std::string("[").append(std::to_string(i)).append("]")).ok());
  stop = true;
  reader.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(read_all(*store, "k"), "[299]");
}

}  // namespace
}  // namespace itemfs::store

namespace itemfs::store {
namespace {

TEST(StoreDictionaryTest, TrainedFromTheStoreAndUsedForNewBlobs) {
  TempDir dir;
  auto store = Store::open(dir.path());
  auto doc = [](int i) {
    return "{\"url\":\"https://docs.example.org/manual/chapter-" + std::to_string(i % 37) + "/page-" +
           std::to_string(i) + ".html\",\"title\":\"Page " + std::to_string(i) +
           "\",\"metadata\":{\"source\":\"example-docs\",\"lang\":\"en\",\"http_status\":200,"
           "\"content_type\":\"text/html; charset=utf-8\"},\"content\":\"Item " +
           std::to_string(i * 7919) + " of the manual.\"}";
  };
  store->write([&](WriteBatch& batch) {
    for (int i = 0; i < 2500; ++i) {
      std::istringstream in(doc(i));
      ASSERT_TRUE(batch.put(std::string("p").append(std::to_string(i)), in, {}).ok());
    }
  });
  auto db = dir.path() / "store.db";
  ASSERT_EQ(scalar(db, "SELECT count(*) FROM dicts"), 1);
  int64_t before = scalar(db, "SELECT stored_size FROM blobs b JOIN chunks c ON c.blob=b.id JOIN items i ON "
                              "i.ino=c.ino WHERE i.id='p100'");
  ASSERT_TRUE(put(*store, "q100", doc(100) + " ").ok());
  int64_t after = scalar(db, "SELECT stored_size FROM blobs b JOIN chunks c ON c.blob=b.id JOIN items i ON "
                             "i.ino=c.ino WHERE i.id='q100'");
  EXPECT_EQ(scalar(db, "SELECT dict_id IS NOT NULL FROM blobs b JOIN chunks c ON c.blob=b.id JOIN items i ON "
                       "i.ino=c.ino WHERE i.id='q100'"),
            1);
  EXPECT_LT(after * 10, before * 8) << "the dictionary should save at least a fifth";
  EXPECT_EQ(read_all(*store, "q100"), doc(100) + " ");
  EXPECT_EQ(read_all(*store, "p100"), doc(100));
  EXPECT_TRUE(store->fsck(false).clean());
  // A reopened store reads both kinds and keeps using the dictionary.
  store.reset();
  store = Store::open(dir.path());
  EXPECT_EQ(read_all(*store, "q100"), doc(100) + " ");
  ASSERT_TRUE(put(*store, "q101", doc(101) + " ").ok());
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM blobs WHERE dict_id IS NOT NULL"), 2);
}

}  // namespace
}  // namespace itemfs::store
