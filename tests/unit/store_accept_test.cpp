// A store opened with a journal (store/accepting_store.h): an accepted
// write is seen at once by every read of that store and by other
// processes once committed; refusals are put()'s; a process that dies with
// writes accepted but not committed loses none of them, and one that
// removed an item after accepting it does not get it back (the journal is
// applied exactly once); an item too large for the journal is committed
// at once; one process at a time uses a store's journal; a reader keeps
// the version it opened through the commit of a newer one; an accepted item
// the store can never hold is dropped and logged, not retried in front of
// every later write, by the committer and by a replay alike.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <set>
#include <thread>
#include <sstream>
#include <string>

#include "store/store.h"
#include "tests/unit/temp_dir.h"

namespace itemfs::store {
namespace {

Options journaled() {
  Options o;
  o.journal = true;
  return o;
}

Status accept(Store& store, const std::string& id, const std::string& bytes, ItemInfo* info = nullptr) {
  std::istringstream in(bytes);
  return store.accept(id, in, {}, info);
}

std::string read_all(Store& store, const std::string& id) {
  auto info = store.item(id);
  if (!info) return "<none>";
  auto reader = store.open_item(*info);
  if (!reader) return "<stale>";
  std::string out;
  EXPECT_TRUE(reader->pread(0, info->size, out).ok());
  return out;
}

std::string doc(int k) { return R"({"k":)" + std::to_string(k) + R"(,"text":"item )" + std::to_string(k) + R"("})"; }

// A store with a journal, and shard directory `shard` made.
std::unique_ptr<Store> journaled_with_shard(const std::filesystem::path& dir, const std::string& shard) {
  auto store = Store::open(dir, journaled());
  store->write([&](WriteBatch& b) { EXPECT_TRUE(b.make_dir(shard, {0040755}).ok()); });
  return store;
}

// Runs `fn` in a child process that then dies at once, as if killed.
void in_child_that_dies(const std::function<void()>& fn) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    fn();
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
}

TEST(StoreAccept, AnAcceptedWriteIsReadAtOnceAndCommittedSoon) {
  TempDir dir;
  auto store = journaled_with_shard(dir.path(), "ab");
  ItemInfo info;
  ASSERT_TRUE(accept(*store, "abc", doc(1), &info).ok());
  EXPECT_EQ(info.id, "abc");
  EXPECT_EQ(info.size, doc(1).size());
  EXPECT_NE(info.attrs.mtime_ns, kMtimeNow);
  EXPECT_EQ(read_all(*store, "abc"), doc(1));
  auto by_ino = store->item_by_ino(info.ino);
  ASSERT_TRUE(by_ino);
  EXPECT_EQ(by_ino->id, "abc");
  auto listed = store->list_shard("ab");
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].ino, info.ino);
  // A replacement keeps the number; the newest version is what reads see.
  ItemInfo again;
  ASSERT_TRUE(accept(*store, "abc", doc(2), &again).ok());
  EXPECT_EQ(again.ino, info.ino);
  EXPECT_EQ(read_all(*store, "abc"), doc(2));
  store->sync();  // everything accepted before it is committed
  auto other = Store::open(dir.path(), Options{.read_only = true});
  auto committed = other->item("abc");
  ASSERT_TRUE(committed);
  EXPECT_EQ(committed->ino, info.ino);
  EXPECT_EQ(committed->attrs.mtime_ns, again.attrs.mtime_ns);
  EXPECT_EQ(read_all(*other, "abc"), doc(2));
}

TEST(StoreAccept, AReaderKeepsTheVersionItOpenedThroughLaterCommits) {
  TempDir dir;
  auto store = journaled_with_shard(dir.path(), "ab");
  ItemInfo first;
  ASSERT_TRUE(accept(*store, "abc", doc(1), &first).ok());
  auto reader = store->open_item(first);  // of the accepted version
  ASSERT_TRUE(reader);
  ASSERT_TRUE(accept(*store, "abc", doc(22), nullptr).ok());
  store->sync();  // both committed, the overlay empty
  std::string out;
  ASSERT_TRUE(reader->pread(0, 1000, out).ok());
  EXPECT_EQ(out, doc(1));
  EXPECT_EQ(read_all(*store, "abc"), doc(22));
}

TEST(StoreAccept, RefusalsAreThoseOfPut) {
  TempDir dir;
  Options o = journaled();
  o.max_item_size = 100;
  auto store = Store::open(dir.path(), o);
  store->write([](WriteBatch& b) { ASSERT_TRUE(b.make_dir("ab", {0040755}).ok()); });
  EXPECT_EQ(accept(*store, "abc", R"({"a":)").code, EINVAL);
  EXPECT_EQ(accept(*store, "abc", "").code, EINVAL);
  EXPECT_EQ(accept(*store, "abc", std::string(200, ' ') + "1").code, EFBIG);
  EXPECT_EQ(accept(*store, "a/b", "1").code, EINVAL);
  EXPECT_FALSE(store->item("abc"));
  store->sync();
  EXPECT_EQ(store->stats().items, 0u);
}

TEST(StoreAccept, AProcessThatDiesLosesNoAcceptedWriteAndResurrectsNoRemovedOne) {
  TempDir dir;
  {
    auto store = Store::open(dir.path());
    store->write([](WriteBatch& b) { ASSERT_TRUE(b.make_dir("it", {0040755}).ok()); });
  }
  in_child_that_dies([&] {
    auto store = Store::open(dir.path(), journaled()).release();  // never closed
    for (int k = 0; k < 300; ++k)
      if (!accept(*store, "item" + std::to_string(k), doc(k)).ok()) _exit(2);
    // Removed after it was accepted (and so committed first): it must stay gone.
    store->write([](WriteBatch& b) {
      if (!b.remove("item7").ok()) _exit(3);
    });
    for (int k = 300; k < 400; ++k)
      if (!accept(*store, "item" + std::to_string(k), doc(k)).ok()) _exit(2);
    if (!accept(*store, "item5", doc(5000)).ok()) _exit(2);
  });
  for (int round = 0; round < 2; ++round) {  // and a second open finds nothing more to do
    auto store = Store::open(dir.path());
    EXPECT_EQ(store->stats().items, 399u);
    EXPECT_FALSE(store->item("item7"));
    EXPECT_EQ(read_all(*store, "item5"), doc(5000));
    EXPECT_EQ(read_all(*store, "item399"), doc(399));
    EXPECT_TRUE(store->fsck(false).clean());
  }
}

TEST(StoreAccept, AJournalDeletedByHandStartsAfterWhatTheStoreApplied) {
  TempDir dir;
  {
    auto store = Store::open(dir.path(), journaled());
    store->write([](WriteBatch& b) { ASSERT_TRUE(b.make_dir("it", {0040755}).ok()); });
    for (int k = 0; k < 20; ++k) ASSERT_TRUE(accept(*store, "item" + std::to_string(k), doc(k)).ok());
  }
  std::filesystem::remove(dir.path() / "journal");
  in_child_that_dies([&] {
    auto store = Store::open(dir.path(), journaled()).release();
    if (!accept(*store, "item99", doc(99)).ok()) _exit(2);
  });
  auto store = Store::open(dir.path());
  EXPECT_EQ(read_all(*store, "item99"), doc(99));
  EXPECT_EQ(store->stats().items, 21u);
}

TEST(StoreAccept, ItemNumbersGivenAtAcceptanceAreKeptAndNeverShared) {
  TempDir dir;
  ItemInfo mine;
  {
    auto store = Store::open(dir.path(), journaled());
    store->write([](WriteBatch& b) { ASSERT_TRUE(b.make_dir("it", {0040755}).ok()); });
    ASSERT_TRUE(accept(*store, "item1", doc(1), &mine).ok());
    // Another writer (an import beside the mount) adds items meanwhile.
    auto other = Store::open(dir.path());
    other->write([](WriteBatch& b) {
      for (int k = 2; k < 10; ++k) {
        std::istringstream in(doc(k));
        ASSERT_TRUE(b.put("item" + std::to_string(k), in, {}).ok());
      }
    });
    for (int k = 2; k < 10; ++k) EXPECT_NE(other->item("item" + std::to_string(k))->ino, mine.ino);
  }
  auto store = Store::open(dir.path());
  EXPECT_EQ(store->item("item1")->ino, mine.ino);
  EXPECT_EQ(store->stats().items, 9u);
}

TEST(StoreAccept, ALargeItemOrANewShardIsCommittedAtOnce) {
  TempDir dir;
  auto store = Store::open(dir.path(), journaled());
  auto other = Store::open(dir.path(), Options{.read_only = true});
  // No shard "zz" yet: the put makes it, before accept returns.
  ASSERT_TRUE(accept(*store, "zz1", doc(1)).ok());
  EXPECT_TRUE(other->item("zz1"));
  EXPECT_TRUE(other->dir_info("zz"));
  const std::string big = "[" + std::string(3u << 20, ' ') + "1]";
  ASSERT_TRUE(accept(*store, "zz2", big).ok());
  EXPECT_EQ(other->item("zz2")->size, big.size());
}

TEST(StoreAccept, OneProcessAtATimeUsesTheJournal) {
  TempDir dir;
  auto first = journaled_with_shard(dir.path(), "it");
  // A second open (a second mount of the store) writes straight through.
  auto second = Store::open(dir.path(), journaled());
  auto reader = Store::open(dir.path(), Options{.read_only = true});
  ASSERT_TRUE(accept(*second, "item1", doc(1)).ok());
  EXPECT_TRUE(reader->item("item1"));
}

TEST(StoreAccept, ASnapshotInsideAWriteDoesNotWaitForWritesAcceptedSince) {
  TempDir dir;
  auto store = journaled_with_shard(dir.path(), "ab");
  ASSERT_TRUE(accept(*store, "abc", doc(1)).ok());
  store->sync();
  // A restore takes its snapshot inside its write, while the mount goes on
  // accepting: the write cannot wait for what can commit only after it.
  const auto started = std::chrono::steady_clock::now();
  store->write([&](WriteBatch&) {
    std::thread([&] { EXPECT_TRUE(accept(*store, "abc", doc(2)).ok()); }).join();
    auto snapshot = store->snapshot();
    ASSERT_TRUE(snapshot->item("abc"));
    EXPECT_EQ(snapshot->item("abc")->size, doc(1).size());
  });
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
  store->sync();
  EXPECT_EQ(read_all(*store, "abc"), doc(2));
}

TEST(StoreAccept, NewItemsNeedNoTransactionOfTheirOwnWhileTheCommitterKeepsUp) {
  TempDir dir;
  auto store = journaled_with_shard(dir.path(), "it");
  ASSERT_TRUE(accept(*store, "item0", doc(0)).ok());
  store->sync();  // its group reserved the next range of numbers
  // Another process holds the store's write lock (a long restore, an
  // import): accepting more new items than one range holds must not wait.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open((dir.path() / "store.db").c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  std::atomic<int> accepted{0};
  std::set<int64_t> numbers;
  std::thread writer([&] {
    for (int k = 1; k <= 6000; ++k) {
      ItemInfo info;
      if (!accept(*store, "item" + std::to_string(k), doc(k), &info).ok()) break;
      numbers.insert(info.ino);
      ++accepted;
    }
  });
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (accepted < 6000 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(accepted.load(), 6000) << "accept() waited for the store's write lock";
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  writer.join();
  EXPECT_EQ(numbers.size(), 6000u);
  store->sync();
  EXPECT_EQ(store->stats().items, 6001u);
}

// Makes the store refuse to hold an item named "poison" (a constraint no
// retry can pass), as a store whose limits changed since a write was
// accepted would.
void poison_store(const std::filesystem::path& dir) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "store.db").c_str(), &db), SQLITE_OK);
  EXPECT_EQ(sqlite3_exec(db,
                         "CREATE TRIGGER poison BEFORE INSERT ON items WHEN NEW.id='poison' "
                         "BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
}

TEST(StoreAccept, AnItemThatCanNeverBeCommittedIsDroppedAndHoldsBackNothing) {
  TempDir dir;
  auto store = journaled_with_shard(dir.path(), "po");
  poison_store(dir.path());
  ASSERT_TRUE(accept(*store, "pox1", doc(1)).ok());
  ASSERT_TRUE(accept(*store, "poison", doc(2)).ok());
  ASSERT_TRUE(accept(*store, "pox3", doc(3)).ok());
  store->sync();  // returns: nothing is stuck
  EXPECT_FALSE(store->item("poison"));
  EXPECT_EQ(read_all(*store, "pox1"), doc(1));
  EXPECT_EQ(read_all(*store, "pox3"), doc(3));
  ASSERT_TRUE(accept(*store, "pox4", doc(4)).ok());
  store->sync();
  store.reset();
  auto again = Store::open(dir.path());  // the journal holds nothing more to apply
  EXPECT_FALSE(again->item("poison"));
  EXPECT_EQ(again->stats().items, 3u);
  EXPECT_EQ(read_all(*again, "pox4"), doc(4));
}

TEST(StoreAccept, AReplayDropsARecordTheStoreCanNeverHoldAndAppliesTheRest) {
  TempDir dir;
  journaled_with_shard(dir.path(), "po").reset();
  poison_store(dir.path());
  in_child_that_dies([&] {
    auto store = Store::open(dir.path(), journaled()).release();  // never closed
    for (const char* id : {"pox1", "poison", "pox3"})
      if (!accept(*store, id, doc(7)).ok()) _exit(2);
  });
  for (int round = 0; round < 2; ++round) {
    auto store = Store::open(dir.path());
    EXPECT_FALSE(store->item("poison"));
    EXPECT_EQ(read_all(*store, "pox1"), doc(7));
    EXPECT_EQ(read_all(*store, "pox3"), doc(7));
  }
}

}  // namespace
}  // namespace itemfs::store
