// Dictionary training in the background: a write that makes training due
// returns while the training is held; Store::wait_idle() then finds the
// dictionaries trained and the older blobs compressed again with them;
// writers going on while older blobs are compressed again keep their bytes;
// a store closed or stopped part way through the recompression goes on
// with it when opened next (not when opened read-only).
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>

#include "tests/unit/store_fixture.h"

namespace itemfs::store {
namespace {

using Step = Options::TrainingStep;

// A guard against a test that hangs, not a measure of speed: each wait is
// for something that takes well under a second.
constexpr auto kHang = std::chrono::minutes(5);

// A gate the trainer's hook waits at until the test opens it.
class Gate {
 public:
  void reach() {
    std::unique_lock lock(mutex_);
    reached_ = true;
    changed_.notify_all();
    changed_.wait(lock, [&] { return open_; });
  }
  bool wait_reached() {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, kHang, [&] { return reached_; });
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool reached_ = false, open_ = false;
};

std::string doc(int i) {
  return "{\"url\":\"https://docs.example.org/manual/chapter-" + std::to_string(i % 37) + "/page-" +
         std::to_string(i) + ".html\",\"title\":\"Page " + std::to_string(i) +
         "\",\"metadata\":{\"source\":\"example-docs\",\"lang\":\"en\",\"http_status\":200,"
         "\"content_type\":\"text/html; charset=utf-8\"},\"content\":\"Item " + std::to_string(i * 7919) +
         " of the manual.\"}";
}

void put_docs(Store& store, int from, int to) {
  store.write([&](WriteBatch& batch) {
    for (int i = from; i < to; ++i) {
      std::istringstream in(doc(i));
      ASSERT_TRUE(batch.put("p" + std::to_string(i), in, {}).ok());
    }
  });
}

int64_t blobs_without_dictionary(const std::filesystem::path& dir) {
  return scalar(dir / "store.db", "SELECT count(*) FROM blobs WHERE dict_id IS NULL");
}

int64_t pending_keys(const std::filesystem::path& dir) {
  return scalar(dir / "store.db", "SELECT count(*) FROM meta WHERE key IN ('recompress_next', 'recompress_last')");
}

TEST(StoreTrainingTest, AWriteReturnsWhileTheTrainingIsHeld) {
  TempDir dir;
  Gate gate;
  Options options;
  options.training_hook = [&](Step step) {
    if (step == Step::kTrain) gate.reach();
  };
  auto store = Store::open(dir.path(), options);
  std::future<void> write;
  // Whatever happens below, the trainer is let go before the store closes
  // (and before a write that waits for it is waited for).
  std::shared_ptr<void> let_go(nullptr, [&](void*) { gate.open(); });
  write = std::async(std::launch::async, [&] { put_docs(*store, 0, 2500); });
  ASSERT_EQ(write.wait_for(kHang), std::future_status::ready) << "the write waited for the training";
  write.get();
  ASSERT_TRUE(gate.wait_reached()) << "no training started";
  // Held: nothing trained yet, and writes go on.
  EXPECT_EQ(scalar(dir.path() / "store.db", "SELECT count(*) FROM dicts"), 0);
  EXPECT_EQ(blobs_without_dictionary(dir.path()), 2500);
  ASSERT_TRUE(put(*store, "during", doc(9999)).ok());
  gate.open();
  store->wait_idle();
  EXPECT_GE(scalar(dir.path() / "store.db", "SELECT count(*) FROM dicts"), 1);
  // Every older blob compressed again, into a new row, with the same bytes.
  EXPECT_EQ(blobs_without_dictionary(dir.path()), 0);
  EXPECT_EQ(pending_keys(dir.path()), 0);
  EXPECT_GT(scalar(dir.path() / "store.db", "SELECT min(id) FROM blobs"), 2501);
  for (int i = 0; i < 2500; i += 3) ASSERT_EQ(read_all(*store, "p" + std::to_string(i)), doc(i));
  EXPECT_EQ(read_all(*store, "during"), doc(9999));
  EXPECT_TRUE(store->fsck(false).clean());
}

// Between the trainer's batches, writers replace, share and remove the
// very blobs it is compressing again.
TEST(StoreTrainingTest, WritersKeepTheirBytesWhileOlderBlobsAreCompressedAgain) {
  TempDir dir;
  std::mutex mutex;
  std::condition_variable changed;
  int batches = 0, writes = 0;
  constexpr int kWriters = 4, kWritesEach = 60;
  Options options;
  // Each batch after the first waits for ten more writes (of all there are).
  options.training_hook = [&](Step step) {
    if (step != Step::kRecompress) return;
    std::unique_lock lock(mutex);
    const int want = std::min(batches++ * 10, kWriters * kWritesEach);
    changed.wait(lock, [&] { return writes >= want; });
  };
  auto store = Store::open(dir.path(), options);
  put_docs(*store, 0, 2500);
  std::map<std::string, std::string> expected;
  for (int i = 0; i < 2500; ++i) expected["p" + std::to_string(i)] = doc(i);
  std::vector<std::map<std::string, std::optional<std::string>>> wrote(kWriters);
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w)
    writers.emplace_back([&, w] {
      for (int k = 0; k < kWritesEach; ++k) {
        const int i = (w * kWritesEach + k) * 7 % 2500;
        const std::string id = "p" + std::to_string(i);
        if (k % 3 == 0) {  // new content for an older item
          EXPECT_TRUE(put(*store, id, doc(i + 10000)).ok());
          wrote[size_t(w)][id] = doc(i + 10000);
        } else if (k % 3 == 1) {  // an older item's content again, shared
          const std::string copy = "copy" + std::to_string(w) + "-" + std::to_string(k);
          const std::string bytes = doc((i + 1) % 2500);
          EXPECT_TRUE(put(*store, copy, bytes).ok());
          wrote[size_t(w)][copy] = bytes;
        } else {
          Status removed;
          store->write([&](WriteBatch& b) { removed = b.remove(id); });
          if (removed.ok()) wrote[size_t(w)][id] = std::nullopt;
        }
        std::lock_guard lock(mutex);
        ++writes;
        changed.notify_all();
      }
    });
  for (auto& t : writers) t.join();
  store->wait_idle();
  EXPECT_GT(batches, 2) << "the recompression took too few batches to interleave";
  // Each writer's items are its own but for the copies' sources: apply in
  // order of writers is enough, as no two writers touch one item.
  for (const auto& mine : wrote)
    for (const auto& [id, bytes] : mine) {
      if (bytes) expected[id] = *bytes;
      else expected.erase(id);
    }
  for (const auto& [id, bytes] : expected) ASSERT_EQ(read_all(*store, id), bytes) << id;
  EXPECT_EQ(scalar(dir.path() / "store.db", "SELECT count(*) FROM items"), int64_t(expected.size()));
  EXPECT_EQ(blobs_without_dictionary(dir.path()), 0);
  EXPECT_EQ(pending_keys(dir.path()), 0);
  EXPECT_TRUE(store->fsck(false).clean());
}

// A run that ends part way (here the hook throws, as a failure or a crash
// between two batches would end it) leaves a consistent store; a read-only
// open leaves the rest alone, the next read-write open finishes it.
TEST(StoreTrainingTest, ARecompressionLeftPartWayGoesOnWhenTheStoreIsOpenedAgain) {
  TempDir dir;
  const auto db = dir.path() / "store.db";
  {
    int batches = 0;
    Options options;
    options.training_hook = [&](Step step) {
      if (step == Step::kRecompress && ++batches == 3) throw StoreError(EIO, "stopped for the test");
    };
    auto store = Store::open(dir.path(), options);
    put_docs(*store, 0, 2500);
    store->wait_idle();
    EXPECT_EQ(batches, 3);
    EXPECT_EQ(pending_keys(dir.path()), 2);
    EXPECT_GT(blobs_without_dictionary(dir.path()), 0);
    EXPECT_LT(blobs_without_dictionary(dir.path()), 2500);
    for (int i = 0; i < 2500; i += 3) ASSERT_EQ(read_all(*store, "p" + std::to_string(i)), doc(i));
    EXPECT_TRUE(store->fsck(false).clean());
  }
  const int64_t next = scalar(db, "SELECT value FROM meta WHERE key='recompress_next'");
  const int64_t left = blobs_without_dictionary(dir.path());
  {
    bool called = false;
    Options options;
    options.read_only = true;
    options.training_hook = [&](Step) { called = true; };
    auto store = Store::open(dir.path(), options);
    store->wait_idle();
    EXPECT_FALSE(called);
    EXPECT_EQ(read_all(*store, "p7"), doc(7));
  }
  EXPECT_EQ(scalar(db, "SELECT value FROM meta WHERE key='recompress_next'"), next);
  EXPECT_EQ(blobs_without_dictionary(dir.path()), left);
  auto store = Store::open(dir.path());
  store->wait_idle();
  EXPECT_EQ(pending_keys(dir.path()), 0);
  EXPECT_EQ(blobs_without_dictionary(dir.path()), 0);
  for (int i = 0; i < 2500; ++i) ASSERT_EQ(read_all(*store, "p" + std::to_string(i)), doc(i));
  EXPECT_TRUE(store->fsck(false).clean());
}

// Closing the store while the trainer is between two batches returns (it
// stops the trainer, which does not start another); the store opened next
// finishes the recompression.
TEST(StoreTrainingTest, ClosingMidRecompressionStopsTheTrainerAndTheNextOpenFinishes) {
  TempDir dir;
  Gate gate;
  int batches = 0;
  Options options;
  options.training_hook = [&](Step step) {
    if (step == Step::kRecompress && ++batches == 2) gate.reach();
  };
  auto store = Store::open(dir.path(), options);
  std::shared_ptr<void> let_go(nullptr, [&](void*) { gate.open(); });
  put_docs(*store, 0, 2500);
  ASSERT_TRUE(gate.wait_reached());
  EXPECT_EQ(pending_keys(dir.path()), 2);
  auto close = std::async(std::launch::async, [&] { store.reset(); });
  gate.open();
  ASSERT_EQ(close.wait_for(kHang), std::future_status::ready) << "closing the store did not stop the trainer";
  close.get();
  store = Store::open(dir.path());
  store->wait_idle();
  EXPECT_EQ(pending_keys(dir.path()), 0);
  EXPECT_EQ(blobs_without_dictionary(dir.path()), 0);
  for (int i = 0; i < 2500; i += 5) ASSERT_EQ(read_all(*store, "p" + std::to_string(i)), doc(i));
  EXPECT_TRUE(store->fsck(false).clean());
}

}  // namespace
}  // namespace itemfs::store
