// The store's basic behaviour: exact round trips, invalid JSON refused,
// dedup and reference counts, chunks, compression, previews, stale readers,
// fsck, shard directories, concurrent readers, blob packing and lookups.
#include "tests/unit/store_fixture.h"

namespace itemfs::store {
namespace {

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
