// PutPipeline and WriteBatch::put_prepared against WriteBatch::put: the same
// items put both ways must leave byte-identical stores (items, chunks, blobs
// with their compression and dictionary, search index rows) and the same
// statuses, in the same order.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cerrno>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "search/search.h"
#include "store/pipeline.h"
#include "store/store.h"
#include "tests/unit/temp_dir.h"

namespace itemfs::store {
namespace {

struct Source {
  std::string origin;
  Status load_status;  // a failed read
  std::string id;
  std::string bytes;
  Attrs attrs;
};

std::string words(std::mt19937& rng, size_t n) {
  static const char* const kWords[] = {"solar", "panel",  "wind",  "bread",  "sourdough", "river", "garden",
                                       "roof",  "kernel", "fuse",  "python", "notes",     "été",   "日本語",
                                       "crawl", "index",  "store", "photo",  "voltaic",   "tree",  "zlib"};
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    if (i) out += ' ';
    out += kWords[rng() % (sizeof kWords / sizeof kWords[0])];
  }
  return out;
}

// The import test's store trains its dictionaries sooner than a default one,
// so that its corpus (and its time under the sanitizers) can be small.
constexpr int64_t kTrainAfter = 700;
constexpr size_t kBigBeforeDictionary = 300, kBigAfterDictionary = 1000, kCorpusItems = 1300;

Options import_test_options() {
  Options options;
  options.train_dictionary_after = kTrainAfter;
  return options;
}

// Items as a crawl gives them, with what goes wrong: duplicate content under
// new ids, ids put again, invalid JSON, a bad id, unreadable files, items of
// several chunks (two sharing their first chunk), ASCII data strings.
std::vector<Source> corpus(size_t n) {
  std::mt19937 rng(42);
  std::vector<Source> out;
  std::vector<std::string> earlier;
  const char* const hosts[] = {"docs.python.org", "help.gnome.org", "www.debian.org", "example.com"};
  for (size_t i = 0; i < n; ++i) {
    Source s;
    s.origin = "item " + std::to_string(i);
    s.id = "id" + std::to_string(i * 7919 % 100003);
    s.attrs = {uint32_t(i % 3 ? 0100644 : 0100600), uint32_t(1000 + i % 2), uint32_t(100), int64_t(1e18) + int64_t(i)};
    if (i % 11 == 5 && !earlier.empty()) {
      s.bytes = earlier[rng() % earlier.size()];  // the same content again
    } else {
      std::string data;
      if (i % 13 == 0) data = ", \"blob\": \"" + std::string(300, char('A' + i % 26)) + "\"";
      s.bytes = "{\"title\": \"" + words(rng, 4) + " #" + std::to_string(i) + "\", \"url\": \"https://" +
                hosts[i % 4] + "/p/" + std::to_string(i) + "\", \"author\": \"Author " + std::to_string(i % 17) +
                "\", \"tags\": [\"t" + std::to_string(i % 5) + "\", \"" + words(rng, 1) + "\"], \"lang\": \"" +
                (i % 3 ? "en" : "fr-CA") + "\", \"published_at\": \"2024-0" + std::to_string(1 + i % 9) +
                "-1" + std::to_string(i % 10) + "\", \"content\": \"" + words(rng, 40 + rng() % 400) +
                "\", \"metadata\": {\"source\": \"s" + std::to_string(i % 4) + "\", \"fetch_ms\": " +
                std::to_string(rng() % 1000) + "}" + data + "}";
      earlier.push_back(s.bytes);
    }
    if (i % 50 == 49) s.id = out[i - 30].id;                          // put again, later batch or same
    if (i % 97 == 3) s.bytes = "{\"title\": \"broken\", ";            // invalid JSON
    if (i == 333) s.id = "a/b";                                        // bad id
    if (i % 89 == 7) s.load_status = Status::error(EIO, "unreadable");  // cannot be read
    if (i == kBigBeforeDictionary || i == kBigAfterDictionary) {
      std::string big = "{\"title\": \"big\", \"content\": \"";
      std::mt19937 fixed(7);  // the same first megabytes for both
      while (big.size() < (5u << 19)) big += words(fixed, 64) + " ";
      if (i == kBigAfterDictionary) big += words(rng, 100);
      big += "\"}";
      s.bytes = big;
    }
    out.push_back(std::move(s));
  }
  return out;
}

struct Report {
  std::vector<std::string> lines;
  void add(const std::string& origin, const Status& status, uint64_t size) {
    lines.push_back(origin + " " + std::to_string(status.code) + " " + status.message + " " + std::to_string(size));
  }
};

// What `itemfs import` did before it had worker threads: batches of
// WriteBatch::put(), a failed read reported at once. Both ways wait for the
// store's background training after each batch, so that the dictionaries
// come at the same point of both.
void import_one_by_one(Store& store, const std::vector<Source>& items, size_t batch_items, Report& report) {
  std::vector<const Source*> batch;
  auto flush = [&] {
    if (batch.empty()) return;
    store.write([&](WriteBatch& b) {
      for (const Source* s : batch) {
        std::istringstream in(s->bytes);
        report.add(s->origin, b.put(s->id, in, s->attrs), s->bytes.size());
      }
    });
    store.wait_idle();
    batch.clear();
  };
  for (const auto& s : items) {
    if (!s.load_status.ok()) {
      report.add(s.origin, s.load_status, 0);
      continue;
    }
    batch.push_back(&s);
    if (batch.size() >= batch_items) flush();
  }
  flush();
}

void import_pipelined(Store& store, const std::vector<Source>& items, PutPipeline::Options options, Report& report) {
  PutPipeline pipeline(
      store, options,
      [&](const std::string& origin, const Status& status, uint64_t size, bool) { report.add(origin, status, size); },
      [&] { store.wait_idle(); });
  for (const auto& s : items) {
    pipeline.add(s.origin, [&s](std::string& id, std::string& bytes, Attrs& attrs) {
      if (!s.load_status.ok()) return s.load_status;
      id = s.id;
      bytes = s.bytes;
      attrs = s.attrs;
      return Status::success();
    });
  }
  pipeline.finish();
}

// Every row of `sql`, blobs in hex (of search.db for the search index's tables).
std::vector<std::string> rows(const std::filesystem::path& dir, const std::string& sql) {
  sqlite3* db = nullptr;
  const char* file = sql.find("search_") != std::string::npos ? "search.db" : "store.db";
  EXPECT_EQ(sqlite3_open_v2((dir / file).c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sql << ": " << sqlite3_errmsg(db);
  std::vector<std::string> out;
  while (stmt && sqlite3_step(stmt) == SQLITE_ROW) {
    std::string row;
    for (int c = 0; c < sqlite3_column_count(stmt); ++c) {
      if (sqlite3_column_type(stmt, c) == SQLITE_BLOB) {
        auto* p = static_cast<const unsigned char*>(sqlite3_column_blob(stmt, c));
        static const char* const kHex = "0123456789abcdef";
        row += "x'";
        for (int i = 0; i < sqlite3_column_bytes(stmt, c); ++i) {
          row += kHex[p[i] >> 4];
          row += kHex[p[i] & 15];
        }
        row += "'";
      } else if (sqlite3_column_type(stmt, c) == SQLITE_NULL) {
        row += "NULL";
      } else {
        auto* text = sqlite3_column_text(stmt, c);
        row += reinterpret_cast<const char*>(text);
      }
      row += '|';
    }
    out.push_back(std::move(row));
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return out;
}

// Everything an import decides (not the times it ran at).
const char* const kCompared[] = {
    "SELECT ino, id, shard, size, sha256, mode, uid, gid, mtime_ns FROM items ORDER BY ino",
    "SELECT ino, seq, blob FROM chunks ORDER BY ino, seq",
    "SELECT id, sha256, raw_size, stored_size, codec, dict_id, refs, data FROM blobs ORDER BY id",
    "SELECT id, data FROM dicts ORDER BY id",
    "SELECT key, value FROM meta ORDER BY key",
    "SELECT ino, name, mode, uid, gid FROM dirs ORDER BY ino",
    // The search index's own tables, whatever their columns.
    "SELECT * FROM search_doc ORDER BY gen",
    "SELECT * FROM search_value ORDER BY id",
    "SELECT key, value FROM search_meta ORDER BY key",
    "SELECT term, doc, cnt FROM search_vocab ORDER BY term",
    "SELECT rowid FROM search_fts('solar OR \"t3\" OR 日本') ORDER BY rank, rowid",
};

void expect_same_store(const std::filesystem::path& a, const std::filesystem::path& b) {
  for (const char* sql : kCompared) {
    auto ra = rows(a, sql), rb = rows(b, sql);
    EXPECT_FALSE(ra.empty()) << sql;
    ASSERT_EQ(ra.size(), rb.size()) << sql;
    for (size_t i = 0; i < ra.size(); ++i) ASSERT_EQ(ra[i], rb[i]) << sql << ", row " << i;
  }
}

void expect_healthy(Store& store, search::Index& index) {
  FsckReport report = store.fsck(false);
  EXPECT_TRUE(report.clean()) << (report.problems.empty() ? "" : report.problems[0]);
  EXPECT_EQ(index.check(), std::vector<std::string>{});
}

class ImportTest : public ::testing::TestWithParam<PutPipeline::Options> {};

TEST_P(ImportTest, PipelineStoresExactlyWhatPutsOneByOneStore) {
  const PutPipeline::Options options = GetParam();
  const auto items = corpus(kCorpusItems);
  TempDir a, b;
  Report ra, rb;
  Stats sa, sb;
  {
    auto store = Store::open(a.path(), import_test_options());
    search::Index index(*store);
    import_one_by_one(*store, items, options.batch_items, ra);
    sa = store->stats();
    expect_healthy(*store, index);
  }
  {
    auto store = Store::open(b.path(), import_test_options());
    search::Index index(*store);
    import_pipelined(*store, items, options, rb);
    sb = store->stats();
    expect_healthy(*store, index);
    search::Results hits;
    ASSERT_TRUE(index.run("solar author:\"author 3\"", hits).ok());
    EXPECT_GT(hits.total, 0u);
  }
  // The corpus covers what it should: dictionaries trained mid-import (the
  // items stored before compressed again with them, but for those of several
  // chunks), dedup, refusals of every kind.
  EXPECT_EQ(rows(a.path(), "SELECT count(*) > 1 FROM dicts"), std::vector<std::string>{"1|"});
  EXPECT_EQ(rows(a.path(), "SELECT count(*) > 0 FROM blobs WHERE refs > 1"), std::vector<std::string>{"1|"});
  EXPECT_EQ(rows(a.path(), "SELECT count(*) > 0 FROM blobs WHERE dict_id IS NULL AND codec = 1"),
            std::vector<std::string>{"1|"});
  EXPECT_EQ(rows(a.path(), "SELECT count(*) FROM blobs WHERE dict_id IS NULL AND codec = 1 AND id IN "
                           "(SELECT blob FROM chunks WHERE ino NOT IN (SELECT ino FROM chunks WHERE seq > 0))"),
            std::vector<std::string>{"0|"});
  EXPECT_EQ(rows(a.path(), "SELECT count(*) > 100 FROM blobs WHERE dict_id IS NOT NULL"),
            std::vector<std::string>{"1|"});
  EXPECT_EQ(rows(a.path(), "SELECT count(*) FROM chunks WHERE seq > 0"), std::vector<std::string>{"4|"});
  // The two items of several chunks share their first ones.
  EXPECT_EQ(rows(a.path(), "SELECT count(*) FROM blobs WHERE refs > 1 AND raw_size > 65536"),
            std::vector<std::string>{"2|"});
  ASSERT_EQ(ra.lines.size(), items.size());
  EXPECT_EQ(ra.lines, rb.lines);
  EXPECT_EQ(sa.items, sb.items);
  EXPECT_EQ(sa.logical_bytes, sb.logical_bytes);
  EXPECT_EQ(sa.unique_bytes, sb.unique_bytes);
  EXPECT_EQ(sa.stored_bytes, sb.stored_bytes);
  EXPECT_EQ(sa.blobs, sb.blobs);
  expect_same_store(a.path(), b.path());
}

PutPipeline::Options options_of(unsigned workers, size_t batch, size_t window, uint64_t window_bytes) {
  PutPipeline::Options o;
  o.workers = workers;
  o.batch_items = batch;
  o.window_items = window;
  o.window_bytes = window_bytes;
  return o;
}

INSTANTIATE_TEST_SUITE_P(
    Windows, ImportTest,
    ::testing::Values(options_of(2, 1000, 2000, 128u << 20),  // as `itemfs import` runs it
                      options_of(4, 300, 1200, 256u << 20),   // many items in flight when the dictionary comes
                      options_of(8, 300, 7, 1),               // workers held back by bytes; a tiny window
                      options_of(1, 50, 1, 256u << 20)),      // one at a time
    [](const ::testing::TestParamInfo<PutPipeline::Options>& param_info) {
      const auto& o = param_info.param;
      return "workers" + std::to_string(o.workers) + "_batch" + std::to_string(o.batch_items) + "_window" +
             std::to_string(o.window_items);
    });

TEST(PutPrepared, KeepsTheDictionaryItWasCompressedWith) {
  TempDir dir;
  auto store = Store::open(dir.path());
  search::Index index(*store);
  std::string text;
  for (int i = 0; i < 40; ++i) text += "a repeated sentence about solar panels number " + std::to_string(i) + ". ";
  const std::string early_bytes = "{\"title\": \"early\", \"content\": \"" + text + "\"}";
  PreparedItem early = store->prepare("early", early_bytes, Attrs{0100644, 0, 0, 5});
  ASSERT_TRUE(early.status().ok());
  EXPECT_EQ(early.dictionary_id(), 0);
  // Enough items for the store to train its dictionary.
  std::mt19937 rng(1);
  for (int batch = 0; batch < 9; ++batch) {
    store->write([&](WriteBatch& b) {
      for (int i = 0; i < 300; ++i) {
        std::istringstream in("{\"n\": " + std::to_string(batch * 300 + i) + ", \"content\": \"" + words(rng, 60) +
                              "\"}");
        ASSERT_TRUE(b.put("x" + std::to_string(batch * 300 + i), in, {}).ok());
      }
    });
  }
  store->wait_idle();
  auto dict = rows(dir.path(), "SELECT value FROM meta WHERE key='current_dict'");
  ASSERT_EQ(dict.size(), 1u) << "no dictionary was trained";
  PreparedItem late = store->prepare("late", early_bytes + " ", Attrs{0100644, 0, 0, 6});
  EXPECT_EQ(std::to_string(late.dictionary_id()) + "|", dict[0]);
  PreparedItem stale = store->prepare("stale", early_bytes + "  ", Attrs{});
  Status s1, s2;
  store->write([&](WriteBatch& b) {
    s1 = b.put_prepared(early);  // compressed without a dictionary, stored so
    s2 = b.put_prepared(late);
  });
  ASSERT_TRUE(s1.ok()) << s1.message;
  ASSERT_TRUE(s2.ok()) << s2.message;
  EXPECT_EQ(rows(dir.path(), "SELECT b.codec, b.dict_id FROM items i JOIN chunks c ON c.ino=i.ino "
                             "JOIN blobs b ON b.id=c.blob WHERE i.id='early'"),
            std::vector<std::string>{"1|NULL|"});
  EXPECT_EQ(rows(dir.path(), "SELECT b.codec, b.dict_id IN (SELECT id FROM dicts) FROM items i JOIN chunks c "
                             "ON c.ino=i.ino JOIN blobs b ON b.id=c.blob WHERE i.id='late'"),
            std::vector<std::string>{"1|1|"});
  EXPECT_FALSE(store->recompress_if_stale(late));
  EXPECT_FALSE(store->recompress_if_stale(stale));  // prepared with the current one
  auto snap = store->snapshot();
  std::string back;
  snap->read_item(*snap->item("early"), [&](std::string_view bytes) { back += bytes; });
  EXPECT_EQ(back, early_bytes);
  snap.reset();
  search::Results hits;
  ASSERT_TRUE(index.run("title:early", hits).ok());
  EXPECT_EQ(hits.total, 2u);  // early and late share the title
  expect_healthy(*store, index);
}

TEST(PutPrepared, RecompressesAnItemPreparedBeforeTheDictionary) {
  TempDir dir;
  auto store = Store::open(dir.path());
  const std::string bytes = "{\"content\": \"" + std::string(2000, 'q') + "\"}";
  PreparedItem item = store->prepare("one", bytes, {});
  std::mt19937 rng(2);
  for (int batch = 0; batch < 9; ++batch) {
    store->write([&](WriteBatch& b) {
      for (int i = 0; i < 300; ++i) {
        std::istringstream in("{\"content\": \"" + words(rng, 60) + "\"}");
        ASSERT_TRUE(b.put("y" + std::to_string(batch * 300 + i), in, {}).ok());
      }
    });
  }
  store->wait_idle();
  ASSERT_NE(rows(dir.path(), "SELECT value FROM meta WHERE key='current_dict'"), std::vector<std::string>{});
  EXPECT_TRUE(store->recompress_if_stale(item));
  EXPECT_NE(item.dictionary_id(), 0);
  Status status;
  store->write([&](WriteBatch& b) { status = b.put_prepared(item); });
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(rows(dir.path(), "SELECT b.dict_id IS NOT NULL FROM chunks c JOIN blobs b ON b.id=c.blob "
                             "JOIN items i ON i.ino=c.ino WHERE i.id='one'"),
            std::vector<std::string>{"1|"});
  EXPECT_TRUE(store->fsck(false).clean());
}

TEST(PutPrepared, RefusesWhatPutRefusesWithTheSameStatus) {
  TempDir dir;
  Options options;
  options.max_item_size = 100;
  auto store = Store::open(dir.path(), options);
  const std::pair<std::string, std::string> cases[] = {
      {"a/b", "{}"}, {"", "{}"}, {"ok", "{\"x\": 1,}"}, {"ok", ""}, {"big", "[" + std::string(200, ' ') + "]"},
      {"ok", "{\"x\": 1}"}};
  for (const auto& [id, bytes] : cases) {
    Status by_put, by_prepared;
    PreparedItem prepared = store->prepare(id, bytes, {});
    store->write([&](WriteBatch& b) {
      std::istringstream in(bytes);
      by_put = b.put(id, in, {});
      by_prepared = b.put_prepared(prepared);
    });
    EXPECT_EQ(by_put.code, by_prepared.code) << id << ": " << bytes;
    EXPECT_EQ(by_put.message, by_prepared.message) << id << ": " << bytes;
    EXPECT_EQ(prepared.status().code, by_put.code);
  }
  EXPECT_TRUE(store->fsck(false).clean());
}

}  // namespace
}  // namespace itemfs::store
