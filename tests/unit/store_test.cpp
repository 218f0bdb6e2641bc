#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <map>
#include <algorithm>
#include <array>
#include <atomic>
#include <memory>
#include <random>
#include <set>
#include <thread>
#include <sstream>

#include "store/codec.h"
#include "store/dictionary.h"
#include "store/hash.h"
#include "store/parallel.h"
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

// What read_items_until gives a sink: which bytes, from which thread, in
// which order, and whether done() came once after an item's last piece.
class RecordingPreview final : public Snapshot::PreviewSink {
 public:
  // stop_after: an item's sink says stop once it has this many bytes.
  RecordingPreview(size_t items, size_t threads, size_t stop_after)
      : threads_(threads), stop_after_(stop_after), items_(items) {}
  bool piece(size_t thread, size_t k, std::string_view bytes) override {
    Item& item = enter(thread, k);
    EXPECT_FALSE(item.done) << "a piece after done(), item " << k;
    item.bytes += bytes;
    item.pieces += 1;
    item.busy = false;
    return item.bytes.size() < stop_after_;
  }
  void done(size_t thread, size_t k) override {
    Item& item = enter(thread, k);
    item.done_calls += 1;
    item.done = true;
    item.busy = false;
  }
  struct Item {
    std::atomic<bool> busy{false};
    std::string bytes;
    size_t pieces = 0;
    int done_calls = 0;
    bool done = false;
  };
  const Item& item(size_t k) const { return items_[k]; }

 private:
  Item& enter(size_t thread, size_t k) {
    EXPECT_LT(thread, threads_);
    Item& item = items_[k];
    EXPECT_FALSE(item.busy.exchange(true)) << "two calls at once for item " << k;
    return item;
  }
  size_t threads_;
  size_t stop_after_;
  std::vector<Item> items_;
};

TEST(StoreTest, PreviewsOfManyItemsOnTwoThreadsGiveEachItsOwnBytesInOrder) {
  TempDir dir;
  Options options;
  options.max_item_size = 8 << 20;
  auto store = Store::open(dir.path(), options);
  std::vector<std::string> ids, contents;
  std::mt19937 rng(11);
  // First, items of one chunk that come to more than the stored bytes read
  // ahead: the items after them are read afterwards.
  const std::string letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int i = 0; i < 14; ++i) {
    std::string noise = "\"";
    while (noise.size() < kChunkSize - 100) noise += letters[rng() % 64];
    ids.push_back("noise" + std::to_string(i));
    contents.push_back(noise + "\"");
  }
  for (int i = 0; i < 60; ++i) {
    std::string text = "{\"n\":" + std::to_string(i) + ",\"content\":\"";
    const int words = i % 3 == 0 ? 2000 : 40;  // some items of several pieces
    for (int w = 0; w < words; ++w) text += "word" + std::to_string(rng() % 1000) + " ";
    ids.push_back("item" + std::to_string(i));
    contents.push_back(text + "\"}");
  }
  ids.push_back("tiny");  // under 16 bytes: stored raw
  contents.push_back("[1]");
  std::string big = "[";
  while (big.size() < 2 * kChunkSize + 4321) big += std::to_string(rng()) + ",";
  ids.push_back("big");  // three chunks
  contents.push_back(big + "0]");
  for (size_t k = 0; k < ids.size(); ++k) ASSERT_TRUE(put(*store, ids[k], contents[k]).ok()) << ids[k];
  std::vector<ItemInfo> items;
  for (const auto& id : ids) items.push_back(*store->item(id));
  EXPECT_GT(scalar(dir.path() / "store.db",
                   "SELECT sum(stored_size) FROM blobs WHERE id IN (SELECT blob FROM chunks JOIN items USING(ino) "
                   "WHERE items.id LIKE 'noise%')"),
            int64_t(Snapshot::kPreviewReadAhead));

  for (size_t threads : {1, 2}) {
    for (size_t stop_after : {size_t(1), size_t(3000), kChunkSize + 10, size_t(SIZE_MAX)}) {
      SCOPED_TRACE("threads " + std::to_string(threads) + ", stop after " + std::to_string(stop_after));
      RecordingPreview sink(items.size(), threads, stop_after);
      store->snapshot()->read_items_until(items, threads, sink);
      for (size_t k = 0; k < items.size(); ++k) {
        const auto& got = sink.item(k);
        EXPECT_EQ(got.done_calls, 1) << ids[k];
        // A prefix of the item, as long as the sink wanted and no more
        // than one piece (at most twice the one before) beyond.
        ASSERT_EQ(got.bytes, contents[k].substr(0, got.bytes.size())) << ids[k];
        if (stop_after >= contents[k].size()) {
          EXPECT_EQ(got.bytes.size(), contents[k].size()) << ids[k];
        } else {
          EXPECT_GE(got.bytes.size(), std::min(stop_after, contents[k].size())) << ids[k];
          EXPECT_LT(got.bytes.size(), std::max<size_t>(3 * stop_after, Snapshot::kFirstPiece + 1)) << ids[k];
        }
      }
    }
  }
  // The same items from several threads at once: the helper serves one
  // caller at a time, the others do their work alone.
  std::vector<std::thread> callers;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      for (int round = 0; round < 2; ++round) {
        RecordingPreview sink(items.size(), 2, SIZE_MAX);
        store->snapshot()->read_items_until(items, 2, sink);
        for (size_t k = 0; k < items.size(); ++k) {
          if (sink.item(k).bytes != contents[k] || sink.item(k).done_calls != 1) ++wrong;
        }
      }
    });
  }
  for (auto& c : callers) c.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(HelperThreadTest, SharesWorkAndPassesOnWhatEitherSideThrew) {
  HelperThread helper;
  for (int round = 0; round < 200; ++round) {
    std::atomic<size_t> next{0};
    std::vector<std::atomic<int>> seen(64);
    std::atomic<int> bad_thread{0};
    helper.share([&](size_t thread) {
      if (thread > 1) ++bad_thread;
      for (size_t k = next++; k < seen.size(); k = next++) ++seen[k];
    });
    EXPECT_EQ(bad_thread.load(), 0);
    for (auto& s : seen) ASSERT_EQ(s.load(), 1) << "round " << round;
  }
  // Thread 1 may not get to run (the caller finished first): then it is
  // not waited for, and nothing it would have thrown comes back.
  for (size_t thrower : {0, 1}) {
    bool ran_on_thrower = false;
    try {
      helper.share([&](size_t thread) {
        if (thread != thrower) {
          if (thrower == 1) std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let the helper start
          return;
        }
        ran_on_thrower = true;
        throw StoreError(EIO, "from thread " + std::to_string(thread));
      });
      EXPECT_FALSE(ran_on_thrower) << thrower;
    } catch (const StoreError& e) {
      EXPECT_TRUE(ran_on_thrower);
      EXPECT_EQ(std::string(e.what()), "from thread " + std::to_string(thrower));
    }
  }
  // Still serves after a failure.
  std::atomic<int> calls{0};
  helper.share([&](size_t) { ++calls; });
  EXPECT_GE(calls.load(), 1);
}

TEST(StoreTest, APreviewOfADamagedItemFailsNamingIt) {
  TempDir dir;
  auto db = dir.path() / "store.db";
  std::vector<ItemInfo> items;
  {
    auto store = Store::open(dir.path());
    for (int i = 0; i < 30; ++i) {
      std::string text = "{\"n\":" + std::to_string(i) + ",\"content\":\"";
      for (int w = 0; w < 50; ++w) text += "alpha beta gamma " + std::to_string(w * i) + " ";
      ASSERT_TRUE(put(*store, "item" + std::to_string(i), text + "\"}").ok());
    }
  }
  exec(db, "UPDATE blobs SET data=zeroblob(length(data)) WHERE id=(SELECT blob FROM chunks JOIN items USING(ino) "
           "WHERE items.id='item17')");
  auto store = Store::open(dir.path());
  for (int i = 0; i < 30; ++i) items.push_back(*store->item("item" + std::to_string(i)));
  for (size_t threads : {1, 2}) {
    RecordingPreview sink(items.size(), threads, SIZE_MAX);
    try {
      store->snapshot()->read_items_until(items, threads, sink);
      ADD_FAILURE() << "no error for a damaged item";
    } catch (const StoreError& e) {
      EXPECT_EQ(e.code(), EIO);
      EXPECT_NE(std::string(e.what()).find("item item17"), std::string::npos) << e.what();
    }
    EXPECT_EQ(sink.item(17).done_calls, 0);
  }
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
  auto doc = [](int i) {
    return "{\"url\":\"https://docs.example.org/manual/chapter-" + std::to_string(i % 37) + "/page-" +
           std::to_string(i) + ".html\",\"title\":\"Page " + std::to_string(i) +
           "\",\"metadata\":{\"source\":\"example-docs\",\"lang\":\"en\",\"http_status\":200,"
           "\"content_type\":\"text/html; charset=utf-8\"},\"content\":\"Item " +
           std::to_string(i * 7919) + " of the manual.\"}";
  };
  // The same items in a store that trains no dictionary, for comparison.
  TempDir plain_dir;
  {
    Options options;
    options.train_dictionary = false;
    auto plain = Store::open(plain_dir.path(), options);
    plain->write([&](WriteBatch& batch) {
      for (int i = 0; i < 2500; ++i) {
        std::istringstream in(doc(i));
        ASSERT_TRUE(batch.put(std::string("p").append(std::to_string(i)), in, {}).ok());
      }
    });
  }
  TempDir dir;
  auto store = Store::open(dir.path());
  store->write([&](WriteBatch& batch) {
    for (int i = 0; i < 2500; ++i) {
      std::istringstream in(doc(i));
      ASSERT_TRUE(batch.put(std::string("p").append(std::to_string(i)), in, {}).ok());
    }
  });
  auto db = dir.path() / "store.db";
  ASSERT_GE(scalar(db, "SELECT count(*) FROM dicts"), 1);
  EXPECT_EQ(scalar(plain_dir.path() / "store.db", "SELECT count(*) FROM dicts"), 0);
  // The items stored before the dictionaries were trained are compressed
  // again with them: none is left without one.
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM blobs WHERE dict_id IS NULL"), 0);
  int64_t with = scalar(db, "SELECT sum(stored_size) FROM blobs");
  int64_t without = scalar(plain_dir.path() / "store.db", "SELECT sum(stored_size) FROM blobs");
  EXPECT_LT(with * 10, without * 8) << "the dictionary should save at least a fifth";
  ASSERT_TRUE(put(*store, "q100", doc(100) + " ").ok());
  EXPECT_EQ(scalar(db, "SELECT dict_id IS NOT NULL FROM blobs b JOIN chunks c ON c.blob=b.id JOIN items i ON "
                       "i.ino=c.ino WHERE i.id='q100'"),
            1);
  EXPECT_EQ(read_all(*store, "q100"), doc(100) + " ");
  for (int i = 0; i < 2500; i += 7) ASSERT_EQ(read_all(*store, "p" + std::to_string(i)), doc(i));
  EXPECT_TRUE(store->fsck(false).clean());
  // A reopened store reads both and keeps using the dictionaries.
  int64_t dict_of_q100 = scalar(db, "SELECT dict_id FROM blobs b JOIN chunks c ON c.blob=b.id JOIN items i ON "
                                    "i.ino=c.ino WHERE i.id='q100'");
  store.reset();
  store = Store::open(dir.path());
  EXPECT_EQ(read_all(*store, "q100"), doc(100) + " ");
  ASSERT_TRUE(put(*store, "q101", doc(100) + "  ").ok());
  EXPECT_EQ(scalar(db, "SELECT dict_id FROM blobs b JOIN chunks c ON c.blob=b.id JOIN items i ON "
                       "i.ino=c.ino WHERE i.id='q101'"),
            dict_of_q100);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM blobs WHERE dict_id IS NULL"), 0);
}

// Two made-up languages of twenty long words each, from letters of their
// own: documents of one share their words and letter sequences, not those
// of the other.
std::string text_in(int language, std::mt19937& rng, int n) {
  static const std::array<std::vector<std::string>, 2> kWords = [] {
    std::array<std::vector<std::string>, 2> words;
    std::mt19937 make(99);
    for (int l = 0; l < 2; ++l)
      for (int w = 0; w < 20; ++w) {
        std::string word;
        for (int c = 0; c < 8 + w % 5; ++c) word += char((l ? 'n' : 'a') + make() % 13);
        words[l].push_back(word);
      }
    return words;
  }();
  std::string out;
  for (int i = 0; i < n; ++i) {
    if (i) out += ' ';
    out += kWords[language][rng() % 20];
  }
  return out;
}

std::string doc_in(int language, int i, std::mt19937& rng) {
  return "{\"title\":\"" + text_in(language, rng, 3) + " " + std::to_string(i) + "\",\"url\":\"https://" +
         (language ? "werkstatt.example.de/anleitung/" : "energy.example.com/guide/") + std::to_string(i) +
         "\",\"content\":\"" + text_in(language, rng, 120) + "\"}";
}

TEST(StoreDictionaryTest, GroupsOfAlikeItemsGetTheirOwnDictionaries) {
  TempDir dir;
  auto store = Store::open(dir.path());
  std::mt19937 rng(3);
  std::vector<std::string> docs;
  for (int i = 0; i < 2600; ++i) docs.push_back(doc_in(i % 2, i, rng));
  for (int batch = 0; batch < 13; ++batch) {
    store->write([&](WriteBatch& b) {
      for (int i = batch * 200; i < batch * 200 + 200; ++i) {
        std::istringstream in(docs[size_t(i)]);
        ASSERT_TRUE(b.put("d" + std::to_string(i), in, {}).ok());
      }
    });
  }
  auto db = dir.path() / "store.db";
  // A general dictionary and one for each language.
  ASSERT_GE(scalar(db, "SELECT count(*) FROM dicts"), 3);
  EXPECT_EQ(scalar(db, "SELECT value FROM meta WHERE key='current_dict'"), scalar(db, "SELECT max(id) FROM dicts"));
  auto dict_of = [&](const std::string& id) {
    return scalar(db, "SELECT b.dict_id FROM blobs b JOIN chunks c ON c.blob=b.id JOIN items i ON i.ino=c.ino "
                      "WHERE i.id='" + id + "'");
  };
  // Most items of one language share a dictionary of its own (a few may
  // find the general one, which holds both languages, as good).
  std::set<int64_t> used[2];
  std::map<int64_t, int> uses[2];
  for (int i = 0; i < 2600; i += 13) {
    int64_t d = dict_of("d" + std::to_string(i));
    used[i % 2].insert(d);
    ++uses[i % 2][d];
  }
  const int64_t general = scalar(db, "SELECT value FROM meta WHERE key='current_dict'");
  int64_t most[2];
  for (int l = 0; l < 2; ++l) {
    auto top = std::max_element(uses[l].begin(), uses[l].end(),
                                [](const auto& a, const auto& b) { return a.second < b.second; });
    most[l] = top->first;
    EXPECT_GT(top->second * 4, 100 * 3) << "language " << l << ": " << top->second << " of 100 items";
    EXPECT_NE(most[l], general);
    EXPECT_EQ(uses[l].count(0), 0u);
  }
  EXPECT_NE(most[0], most[1]);
  EXPECT_EQ(uses[0].count(most[1]), 0u);
  EXPECT_EQ(uses[1].count(most[0]), 0u);
  for (int i = 0; i < 2600; i += 11) ASSERT_EQ(read_all(*store, "d" + std::to_string(i)), docs[size_t(i)]);
  EXPECT_TRUE(store->fsck(false).clean());
  // The same choice after a restart, for new items as for old ones.
  int64_t first = dict_of("d2");
  store.reset();
  store = Store::open(dir.path());
  std::mt19937 later(4);
  const std::string new0 = doc_in(0, 9000, later), new1 = doc_in(1, 9001, later);
  ASSERT_TRUE(put(*store, "new0", new0).ok());
  ASSERT_TRUE(put(*store, "new1", new1).ok());
  EXPECT_TRUE(used[0].count(dict_of("new0")));
  EXPECT_TRUE(used[1].count(dict_of("new1")));
  EXPECT_EQ(dict_of("d2"), first);
  EXPECT_EQ(read_all(*store, "new0"), new0);
  EXPECT_EQ(read_all(*store, "new1"), new1);
}

// Trained again from ten times the items: every blob (of one-chunk items)
// moves to the new dictionaries and the older ones are dropped; no third
// training; a store trained by an older build (no meta.dict_trained_blobs)
// is not trained again.
TEST(StoreDictionaryTest, TrainedAgainFromMoreItems) {
  for (bool older_build : {false, true}) {
    TempDir dir;
    Options options;
    options.train_dictionary_after = 300;
    options.train_dictionary_again_after = 1500;
    auto store = Store::open(dir.path(), options);
    std::mt19937 rng(7);
    std::vector<std::string> docs;
    for (int i = 0; i < 2600; ++i) docs.push_back(doc_in(i % 2, i, rng));
    auto db = dir.path() / "store.db";
    auto put_batch = [&](int from, int to) {
      store->write([&](WriteBatch& b) {
        for (int i = from; i < to; ++i) {
          std::istringstream in(docs[size_t(i)]);
          ASSERT_TRUE(b.put("d" + std::to_string(i), in, {}).ok());
        }
      });
    };
    for (int i = 0; i < 600; i += 200) put_batch(i, i + 200);
    const int64_t first = scalar(db, "SELECT count(*) FROM dicts");
    ASSERT_GE(first, 2);
    const int64_t first_newest = scalar(db, "SELECT max(id) FROM dicts");
    if (older_build) {
      store.reset();
      exec(db, "DELETE FROM meta WHERE key='dict_trained_blobs'");
      store = Store::open(dir.path(), options);
    } else {
      EXPECT_GE(scalar(db, "SELECT value FROM meta WHERE key='dict_trained_blobs'"), 300);
    }
    for (int i = 600; i < 2600; i += 200) put_batch(i, i + 200);
    if (older_build) {
      EXPECT_EQ(scalar(db, "SELECT max(id) FROM dicts"), first_newest);
    } else {
      EXPECT_GE(scalar(db, "SELECT value FROM meta WHERE key='dict_trained_blobs'"), 1500);
      EXPECT_GT(scalar(db, "SELECT min(id) FROM dicts"), first_newest) << "the first dictionaries are gone";
      EXPECT_EQ(scalar(db, "SELECT count(*) FROM blobs WHERE dict_id IS NULL OR dict_id <= " +
                               std::to_string(first_newest)), 0);
    }
    for (int i = 0; i < 2600; i += 7) ASSERT_EQ(read_all(*store, "d" + std::to_string(i)), docs[size_t(i)]);
    EXPECT_TRUE(store->fsck(false).clean());
    // No third time, after a restart either.
    const int64_t newest = scalar(db, "SELECT max(id) FROM dicts");
    store.reset();
    store = Store::open(dir.path(), options);
    std::mt19937 later(8);
    store->write([&](WriteBatch& b) {
      for (int i = 0; i < 1600; ++i) {
        std::istringstream in(doc_in(i % 2, 10000 + i, later));
        ASSERT_TRUE(b.put("e" + std::to_string(i), in, {}).ok());
      }
    });
    EXPECT_EQ(scalar(db, "SELECT max(id) FROM dicts"), newest);
  }
}

// What many documents share goes into the dictionary, what one document
// holds does not: a random body per document between a shared header and
// footer leaves the header and footer, within the size asked for.
TEST(StoreDictionaryTest, TrainingKeepsWhatTheSamplesShare) {
  std::mt19937 rng(11);
  const std::string header = "{\"url\": \"https://help.example.org/7.4/en-US/text/shared/guide/\", \"metadata\": ";
  const std::string footer = "\"content_type\": \"text/html; charset=utf-8\", \"http_status\": 200}";
  std::vector<std::string> samples;
  for (int i = 0; i < 300; ++i) {
    std::string body;
    for (int k = 0; k < 400; ++k) body += char('a' + rng() % 26);
    samples.push_back(header + body + footer);
  }
  const std::string dictionary = train_dictionary(samples, 4096);
  EXPECT_LE(dictionary.size(), 4096u);
  EXPECT_NE(dictionary.find(header.substr(0, 48)), std::string::npos);
  EXPECT_NE(dictionary.find(footer.substr(footer.size() - 48)), std::string::npos);
  // A random body is nobody else's: little of it is kept.
  size_t bodies = 0;
  for (const std::string& sample : samples)
    if (dictionary.find(sample.substr(header.size() + 100, 32)) != std::string::npos) ++bodies;
  EXPECT_LT(bodies, 2u) << bodies;
  EXPECT_EQ(dictionary, train_dictionary(samples, 4096));
  // Samples that all fit are kept whole.
  std::vector<std::string> few(samples.begin(), samples.begin() + 3);
  EXPECT_EQ(train_dictionary(few, 4096), few[2] + few[1] + few[0]);
}

TEST(StoreDictionaryTest, DictionaryChoiceDependsOnlyOnTheBytes) {
  std::mt19937 rng(5);
  std::vector<std::string> samples;
  for (int i = 0; i < 400; ++i) samples.push_back(doc_in(i % 2, i, rng));
  const std::string general = train_dictionary(samples);
  auto groups = train_group_dictionaries(samples, general, 8);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups, train_group_dictionaries(samples, general, 8));
  std::vector<std::shared_ptr<const Dictionary>> dictionaries;
  for (size_t i = 0; i < groups.size(); ++i) {
    auto d = std::make_shared<Dictionary>();
    d->id = int64_t(i + 1);
    d->data = groups[i];
    d->fingerprint.add(d->data);
    dictionaries.push_back(d);
  }
  DictionarySet set(dictionaries);
  EXPECT_EQ(set.generation(), 2);
  std::mt19937 other(6);
  const Dictionary* zero = set.choose(doc_in(0, 1, other));
  const Dictionary* one = set.choose(doc_in(1, 2, other));
  ASSERT_TRUE(zero && one);
  EXPECT_NE(zero->id, one->id);
  EXPECT_EQ(set.choose(doc_in(0, 3, other)), zero);
  // The one whose fingerprint has the most of the sampled sequences.
  for (int i = 0; i < 60; ++i) {
    std::string doc = doc_in(i % 2, 1000 + i, other) + text_in(1 - i % 2, other, i);
    auto hashes = sample_hashes(doc);
    size_t best = 0;
    for (size_t d = 1; d < dictionaries.size(); ++d)
      if (dictionaries[d]->fingerprint.count(hashes) > dictionaries[best]->fingerprint.count(hashes)) best = d;
    EXPECT_EQ(set.choose(doc), dictionaries[best].get()) << doc;
  }
  EXPECT_EQ(DictionarySet().choose("{}"), nullptr);
  EXPECT_EQ(set.choose("{}"), dictionaries[0].get());  // nothing to go by: the first
}

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

TEST(StoreTest, ABatchsNewBlobsFillTheirPages) {
  TempDir dir;
  auto db = dir.path() / "store.db";
  Options options;
  options.train_dictionary = false;
  auto store = Store::open(dir.path(), options);
  std::mt19937 rng(11);
  std::map<std::string, std::string> items;
  auto hex = [&](size_t n) {
    std::string out;
    while (out.size() < n) out += "0123456789abcdef"[rng() % 16];
    return out;
  };
  store->write([&](WriteBatch& batch) {
    for (int i = 0; i < 600; ++i) {
      std::string id = "p" + std::to_string(i);
      items[id] = "[\"" + hex(100 + rng() % 7000) + "\"]";
      std::istringstream in(items[id]);
      ASSERT_TRUE(batch.put(id, in, {}).ok());
    }
    // Changes within the batch to what it added: a blob replaced, one
    // dropped, one shared, one item renamed.
    items["p1"] = "[\"" + hex(3000) + "\"]";
    std::istringstream in1(items["p1"]);
    ASSERT_TRUE(batch.put("p1", in1, {}).ok());
    ASSERT_TRUE(batch.remove("p2").ok());
    items.erase("p2");
    items["p3-again"] = items["p3"];
    std::istringstream in3(items["p3"]);
    ASSERT_TRUE(batch.put("p3-again", in3, {}).ok());
    ASSERT_TRUE(batch.rename("p4", "p4-moved").ok());
    items["p4-moved"] = items["p4"];
    items.erase("p4");
  });
  for (const auto& [id, bytes] : items) ASSERT_EQ(read_all(*store, id), bytes) << id;
  EXPECT_TRUE(store->fsck(false).clean());
  // Stored in the order that fills pages, not the order they came: the
  // same items put one a batch leave far more room unused.
  TempDir one_dir;
  {
    auto one_by_one = Store::open(one_dir.path(), options);
    for (const auto& [id, bytes] : items) ASSERT_TRUE(put(*one_by_one, id, bytes).ok());
  }
  const char* const kUnused = "SELECT sum(unused) FROM dbstat WHERE name='blobs' AND pagetype='leaf'";
  int64_t pages = scalar(db, "SELECT sum(pgsize) FROM dbstat WHERE name='blobs' AND pagetype='leaf'");
  int64_t unused = scalar(db, kUnused), unused_one_by_one = scalar(one_dir.path() / "store.db", kUnused);
  ASSERT_GT(pages, 0);
  EXPECT_LT(unused * 100, pages * 6) << unused << " of " << pages << " bytes of leaf pages unused";
  EXPECT_LT(unused * 3, unused_one_by_one) << unused << " bytes unused, one by one " << unused_one_by_one;
  // A batch of one blob is left as it is.
  ASSERT_TRUE(put(*store, "one", "[1]").ok());
  EXPECT_EQ(read_all(*store, "one"), "[1]");
}

TEST(StoreTest, BlobsAreFoundByTheFirstBytesOfTheirHash) {
  TempDir dir;
  auto db = dir.path() / "store.db";
  auto store = Store::open(dir.path());
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM sqlite_master WHERE name='blobs_by_sha'"), 1);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM sqlite_master WHERE tbl_name='blobs' AND name LIKE 'sqlite_autoindex%'"),
            0);
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(put(*store, "a" + std::to_string(i), "[" + std::to_string(i % 10) + "]").ok());
  }
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM blobs"), 10);
  EXPECT_EQ(scalar(db, "SELECT max(refs) FROM blobs"), 5);
  EXPECT_TRUE(store->fsck(false).clean());
  // Nothing but the store keeps a content from being stored twice: fsck looks.
  // (The blobs of these one-chunk items keep no hash: their items have it.)
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM blobs WHERE length(sha256) = 0"), 10);
  exec(db, "INSERT INTO blobs(sha256, raw_size, stored_size, codec, dict_id, refs, data) "
           "SELECT (SELECT sha256 FROM items WHERE id='a0'), raw_size, stored_size, codec, dict_id, 0, data "
           "FROM blobs WHERE id=(SELECT blob FROM chunks JOIN items USING(ino) WHERE items.id='a0')");
  FsckReport report = store->fsck(false);
  std::string all;
  for (auto& line : report.problems) all += line + "\n";
  EXPECT_NE(all.find("stored 2 times"), std::string::npos) << all;
}

TEST(StoreTest, AShardIsTheRangeOfItsIds) {
  TempDir dir;
  auto store = Store::open(dir.path());
  for (std::string id :
       {"ab", "ab1", "abz", "ac", "a", "aé", "é", "0", "00", "00x", "01", "日本語", "日本", "日", "a\x7f"})
    ASSERT_TRUE(put(*store, id, "1").ok()) << id;
  auto ids = [&](const std::string& shard) {
    std::vector<std::string> out;
    for (const auto& info : store->list_shard(shard)) out.push_back(info.id);
    return out;
  };
  EXPECT_EQ(ids("ab"), (std::vector<std::string>{"ab", "ab1", "abz"}));
  EXPECT_EQ(ids("a\x7f"), (std::vector<std::string>{"a\x7f"}));
  EXPECT_EQ(ids("aé"), (std::vector<std::string>{"aé"}));
  EXPECT_EQ(ids("00"), (std::vector<std::string>{"0", "00", "00x", "a", "é", "日"}));
  EXPECT_EQ(ids("日本"), (std::vector<std::string>{"日本", "日本語"}));
  EXPECT_EQ(ids("zz"), std::vector<std::string>{});
  for (std::string id : {"0", "00", "00x", "a", "é"}) {
    store->write([&](WriteBatch& batch) { EXPECT_EQ(batch.remove_dir("00").code, ENOTEMPTY); });
    store->write([&](WriteBatch& batch) { ASSERT_TRUE(batch.remove(id).ok()); });
  }
  store->write([&](WriteBatch& batch) { EXPECT_EQ(batch.remove_dir("00").code, ENOTEMPTY); });  // 日
  store->write([&](WriteBatch& batch) {
    ASSERT_TRUE(batch.remove("日").ok());
    EXPECT_TRUE(batch.remove_dir("00").ok());
    EXPECT_EQ(batch.remove_dir("ab").code, ENOTEMPTY);
  });
  EXPECT_EQ(ids("00"), std::vector<std::string>{});
  EXPECT_TRUE(store->fsck(false).clean());
}

}  // namespace
}  // namespace itemfs::store
