// The store never hands out wrong bytes: every chunk read is checked against
// its hash (one chunk's hash per chunk read), damaged content is EIO naming
// the item and counted in Stats::damaged_reads, fsck lists the damaged items,
// and WriteBatch::repair_blobs() rewrites damaged blobs from a good copy.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cerrno>
#include <sstream>
#include <string>

#include "store/store.h"
#include "tests/unit/temp_dir.h"

namespace itemfs::store {
namespace {

Status put(Store& store, const std::string& id, const std::string& bytes) {
  Status result;
  store.write([&](WriteBatch& batch) {
    std::istringstream in(bytes);
    result = batch.put(id, in, Attrs{});
  });
  return result;
}

void exec(const std::filesystem::path& db_file, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_file.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  EXPECT_EQ(rc, SQLITE_OK) << (error ? error : "") << " in " << sql;
  sqlite3_free(error);
  EXPECT_GT(sqlite3_changes(db), 0) << "changed nothing: " << sql;
  sqlite3_close(db);
}

// Reads all of item `id` through an ItemReader: its bytes, or the first
// failing Status.
Status read_all(Store& store, const std::string& id, std::string& out) {
  out.clear();
  auto info = store.item(id);
  if (!info) return Status::error(ENOENT, "no item");
  auto reader = store.open_item(*info);
  if (!reader) return Status::error(ESTALE, "stale");
  std::string piece;
  for (uint64_t offset = 0; offset < info->size; offset += piece.size()) {
    if (Status s = reader->pread(offset, 1 << 20, piece); !s.ok()) return s;
    if (piece.empty()) return Status::error(EIO, "short");
    out += piece;
  }
  return Status::success();
}

std::string text_item(int n, size_t words) {
  std::string text = "{\"n\":" + std::to_string(n) + ",\"content\":\"";
  for (size_t w = 0; w < words; ++w) text += "alpha beta gamma " + std::to_string(w * 7 + size_t(n)) + " ";
  return text + "\"}";
}

// The blob of item `id`'s chunk `seq`, as SQL.
std::string blob_of(const std::string& id, int seq = 0) {
  return "(SELECT blob FROM chunks JOIN items USING(ino) WHERE items.id='" + id + "' AND chunks.seq=" +
         std::to_string(seq) + ")";
}

// Damage that decoding cannot find: the blob is made raw, of the right size,
// but with other bytes. Only the hash can tell.
std::string swap_bytes_sql(const std::string& id, int seq = 0) {
  return "UPDATE blobs SET codec=0, data=zeroblob(raw_size), stored_size=raw_size WHERE id=" + blob_of(id, seq);
}

TEST(StoreIntegrityTest, ReadOfBytesThatDoNotMatchTheirHashIsEioNamingTheItem) {
  TempDir dir;
  const std::string good = text_item(1, 40);
  {
    auto store = Store::open(dir.path());
    ASSERT_TRUE(put(*store, "hurt", good).ok());
    ASSERT_TRUE(put(*store, "fine", text_item(2, 40)).ok());
  }
  exec(dir.path() / "store.db", swap_bytes_sql("hurt"));
  auto store = Store::open(dir.path());
  std::string out;
  Status s = read_all(*store, "hurt", out);
  EXPECT_EQ(s.code, EIO) << s.message;
  EXPECT_NE(s.message.find("item hurt"), std::string::npos) << s.message;
  EXPECT_NE(s.message.find("SHA-256"), std::string::npos) << s.message;
  EXPECT_TRUE(out.empty()) << "handed out bytes of a damaged item";
  EXPECT_TRUE(read_all(*store, "fine", out).ok());
  EXPECT_GE(store->stats().damaged_reads, 1u);

  auto snap = store->snapshot();
  auto info = snap->item("hurt");
  ASSERT_TRUE(info);
  try {
    snap->read_item(*info, [](std::string_view) { ADD_FAILURE() << "read_item handed out damaged bytes"; });
    ADD_FAILURE() << "read_item did not fail";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.code(), EIO);
    EXPECT_NE(std::string(e.what()).find("item hurt"), std::string::npos) << e.what();
  }
}

TEST(StoreIntegrityTest, ZeroedCompressedBlobIsEioNotGarbage) {
  TempDir dir;
  {
    auto store = Store::open(dir.path());
    ASSERT_TRUE(put(*store, "z", text_item(3, 200)).ok());
  }
  exec(dir.path() / "store.db", "UPDATE blobs SET data=zeroblob(length(data)) WHERE id=" + blob_of("z"));
  auto store = Store::open(dir.path());
  std::string out;
  Status s = read_all(*store, "z", out);
  EXPECT_EQ(s.code, EIO) << s.message;
  EXPECT_NE(s.message.find("item z"), std::string::npos) << s.message;
  EXPECT_EQ(store->stats().damaged_reads, 1u);
}

TEST(StoreIntegrityTest, ARangedReadChecksOnlyTheChunksItReads) {
  TempDir dir;
  // Three chunks: 1 MiB, 1 MiB and the rest.
  std::string big = "[\"";
  while (big.size() < 2 * kChunkSize + 5000) big += "lorem ipsum dolor sit amet " + std::to_string(big.size()) + " ";
  big += "\"]";
  {
    auto store = Store::open(dir.path());
    ASSERT_TRUE(put(*store, "big", big).ok());
  }
  exec(dir.path() / "store.db", swap_bytes_sql("big", 1));
  auto store = Store::open(dir.path());
  auto info = store->item("big");
  ASSERT_TRUE(info);
  auto reader = store->open_item(*info);
  ASSERT_TRUE(reader);
  std::string piece;
  ASSERT_TRUE(reader->pread(1000, 4096, piece).ok());
  EXPECT_EQ(piece, big.substr(1000, 4096));
  ASSERT_TRUE(reader->pread(2 * kChunkSize + 10, 100, piece).ok());
  EXPECT_EQ(piece, big.substr(2 * kChunkSize + 10, 100));
  EXPECT_EQ(store->stats().damaged_reads, 0u);
  Status s = reader->pread(kChunkSize + 10, 100, piece);
  EXPECT_EQ(s.code, EIO);
  EXPECT_NE(s.message.find("chunk 2 of 3"), std::string::npos) << s.message;
  EXPECT_EQ(store->stats().damaged_reads, 1u);
  // A read across the damaged chunk fails whole: no partial bytes.
  s = reader->pread(kChunkSize - 10, 100, piece);
  EXPECT_EQ(s.code, EIO);
}

TEST(StoreIntegrityTest, FsckListsDamagedItemsAndRepairBlobsHealsEveryItemSharingTheBlob) {
  TempDir dir;
  const std::string good = text_item(4, 60);
  {
    auto store = Store::open(dir.path());
    ASSERT_TRUE(put(*store, "a", good).ok());
    ASSERT_TRUE(put(*store, "b", good).ok());  // the same content: one blob
    ASSERT_TRUE(put(*store, "c", text_item(5, 60)).ok());
  }
  exec(dir.path() / "store.db", swap_bytes_sql("a"));
  auto store = Store::open(dir.path());
  FsckReport report = store->fsck(false);
  EXPECT_FALSE(report.clean());
  EXPECT_EQ(report.damaged_items, (std::vector<std::string>{"a", "b"}));
  std::string out;
  EXPECT_EQ(read_all(*store, "b", out).code, EIO);

  // Not JSON: refused, nothing changed.
  Status refused;
  store->write([&](WriteBatch& batch) { refused = batch.repair_blobs("{not json", nullptr); });
  EXPECT_EQ(refused.code, EINVAL);
  // A good copy of other content repairs nothing.
  uint64_t rewritten = 99;
  Status s;
  store->write([&](WriteBatch& batch) { s = batch.repair_blobs(text_item(5, 60), &rewritten); });
  EXPECT_TRUE(s.ok()) << s.message;
  EXPECT_EQ(rewritten, 0u);
  // The good copy of the damaged content rewrites its one blob.
  store->write([&](WriteBatch& batch) { s = batch.repair_blobs(good, &rewritten); });
  EXPECT_TRUE(s.ok()) << s.message;
  EXPECT_EQ(rewritten, 1u);
  for (const char* id : {"a", "b"}) {
    ASSERT_TRUE(read_all(*store, id, out).ok()) << id;
    EXPECT_EQ(out, good) << id;
  }
  report = store->fsck(false);
  EXPECT_TRUE(report.clean()) << report.problems.front();
  EXPECT_TRUE(report.damaged_items.empty());
}

TEST(StoreIntegrityTest, RepairBlobsHealsOneChunkOfALargeItem) {
  TempDir dir;
  std::string big = "[\"";
  while (big.size() < kChunkSize + 300000) big += "sit amet consectetur " + std::to_string(big.size()) + " ";
  big += "\"]";
  {
    auto store = Store::open(dir.path());
    ASSERT_TRUE(put(*store, "big", big).ok());
  }
  exec(dir.path() / "store.db", "UPDATE blobs SET data=zeroblob(length(data)) WHERE id=" + blob_of("big", 1));
  auto store = Store::open(dir.path());
  EXPECT_EQ(store->fsck(false).damaged_items, std::vector<std::string>{"big"});
  uint64_t rewritten = 0;
  Status s;
  store->write([&](WriteBatch& batch) { s = batch.repair_blobs(big, &rewritten); });
  ASSERT_TRUE(s.ok()) << s.message;
  EXPECT_EQ(rewritten, 1u);
  std::string out;
  ASSERT_TRUE(read_all(*store, "big", out).ok());
  EXPECT_EQ(out, big);
  EXPECT_TRUE(store->fsck(false).clean());
}

}  // namespace
}  // namespace itemfs::store

namespace itemfs::store {
namespace {

// fsck tells how far it is: from 0 to the number of blobs and items, never
// past it, ending there.
TEST(StoreIntegrityTest, FsckReportsProgressUpToItsTotal) {
  TempDir dir;
  auto store = Store::open(dir.path());
  for (int i = 0; i < 3000; ++i) ASSERT_TRUE(put(*store, "p" + std::to_string(i), text_item(i, 3)).ok());
  std::vector<std::pair<uint64_t, uint64_t>> calls;
  FsckReport report = store->fsck(false, [&](uint64_t done, uint64_t total) { calls.emplace_back(done, total); });
  ASSERT_TRUE(report.clean());
  const uint64_t total = report.blobs_checked + report.items_checked;
  ASSERT_GE(calls.size(), 3u);
  EXPECT_EQ(calls.front(), std::make_pair(uint64_t(0), total));
  EXPECT_EQ(calls.back(), std::make_pair(total, total));
  for (size_t i = 1; i < calls.size(); ++i) {
    EXPECT_GE(calls[i].first, calls[i - 1].first);
    EXPECT_LE(calls[i].first, total);
    EXPECT_EQ(calls[i].second, total);
  }
}

}  // namespace
}  // namespace itemfs::store

namespace itemfs::store {
namespace {

std::string exactly_one_chunk() {
  std::string s = "[\"";
  while (s.size() < kChunkSize - 2) s += "x";
  return s + "\"]";
}

// A chunk of a larger item may be the very bytes of a one-chunk item, whose
// blob is stored without its hash: reading the larger item checks that
// chunk against the right hash, in a store written now and in one written
// before such blobs got their hash back.
TEST(StoreIntegrityTest, AChunkSharedWithAOneChunkItemReadsRight) {
  TempDir dir;
  const std::string one = exactly_one_chunk();
  ASSERT_EQ(one.size(), kChunkSize);
  const std::string two = one + "  ";  // its first chunk is one's bytes
  {
    auto store = Store::open(dir.path());
    ASSERT_TRUE(put(*store, "one", one).ok());
    ASSERT_TRUE(put(*store, "two", two).ok());
  }
  for (bool old_store : {false, true}) {
    // A store of before: the shared blob without its hash.
    if (old_store) exec(dir.path() / "store.db", "UPDATE blobs SET sha256=x'' WHERE id=" + blob_of("one"));
    auto store = Store::open(dir.path());
    std::string out;
    ASSERT_TRUE(read_all(*store, "two", out).ok()) << old_store;
    EXPECT_EQ(out, two);
    ASSERT_TRUE(read_all(*store, "one", out).ok()) << old_store;
    EXPECT_EQ(out, one);
    EXPECT_EQ(store->stats().damaged_reads, 0u);
    EXPECT_TRUE(store->fsck(false).clean());
  }
}

// repair_blobs() finds a damaged blob by its place in the items of the good
// copy's content too, whatever the blob's own hash column says.
TEST(StoreIntegrityTest, RepairFindsABlobByItsPlaceInTheItem) {
  TempDir dir;
  const std::string big = exactly_one_chunk() + "   ";
  {
    auto store = Store::open(dir.path());
    ASSERT_TRUE(put(*store, "big", big).ok());
  }
  exec(dir.path() / "store.db", "UPDATE blobs SET data=zeroblob(length(data)), sha256=zeroblob(32) WHERE id=" +
                                    blob_of("big", 1));
  auto store = Store::open(dir.path());
  std::string out;
  EXPECT_EQ(read_all(*store, "big", out).code, EIO);
  uint64_t rewritten = 0;
  Status s;
  store->write([&](WriteBatch& batch) { s = batch.repair_blobs(big, &rewritten); });
  ASSERT_TRUE(s.ok()) << s.message;
  EXPECT_EQ(rewritten, 1u);
  ASSERT_TRUE(read_all(*store, "big", out).ok());
  EXPECT_EQ(out, big);
  EXPECT_TRUE(store->fsck(false).clean());
}

// Good bytes written over a damaged item, or as another item of the same
// content, heal the blob they would share instead of sharing the damage.
TEST(StoreIntegrityTest, WritingTheGoodBytesAgainHealsTheSharedBlob) {
  TempDir dir;
  const std::string good = text_item(7, 50);
  {
    auto store = Store::open(dir.path());
    ASSERT_TRUE(put(*store, "a", good).ok());
  }
  exec(dir.path() / "store.db", swap_bytes_sql("a"));
  auto store = Store::open(dir.path());
  std::string out;
  ASSERT_EQ(read_all(*store, "a", out).code, EIO);
  ASSERT_TRUE(put(*store, "b", good).ok());
  ASSERT_TRUE(read_all(*store, "b", out).ok());
  EXPECT_EQ(out, good);
  ASSERT_TRUE(read_all(*store, "a", out).ok());
  EXPECT_EQ(out, good);
  EXPECT_TRUE(store->fsck(false).clean());
}

// The chunk list itself is checked: a missing blob, or a chunk row that
// points at another item's blob (as damage or a bug might leave it), is
// EIO, never another item's bytes or a short read.
TEST(StoreIntegrityTest, AChunkListThatIsWrongIsEio) {
  TempDir dir;
  {
    auto store = Store::open(dir.path());
    ASSERT_TRUE(put(*store, "a", "{\"v\":\"aaaa\"}").ok());
    ASSERT_TRUE(put(*store, "b", "{\"v\":\"bbbb\"}").ok());  // the same size as a
    ASSERT_TRUE(put(*store, "c", text_item(9, 30)).ok());
  }
  exec(dir.path() / "store.db",
       "UPDATE chunks SET blob=" + blob_of("b") + " WHERE ino=(SELECT ino FROM items WHERE id='a')");
  exec(dir.path() / "store.db", "DELETE FROM blobs WHERE id=" + blob_of("c"));
  auto store = Store::open(dir.path());
  std::string out;
  Status s = read_all(*store, "a", out);
  EXPECT_EQ(s.code, EIO) << s.message;
  EXPECT_TRUE(out.empty()) << "handed out another item's bytes: " << out;
  s = read_all(*store, "c", out);
  EXPECT_EQ(s.code, EIO) << s.message;
  EXPECT_NE(s.message.find("missing"), std::string::npos) << s.message;
  ASSERT_TRUE(read_all(*store, "b", out).ok());
  EXPECT_EQ(out, "{\"v\":\"bbbb\"}");
}

}  // namespace
}  // namespace itemfs::store
