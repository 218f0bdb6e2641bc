// What the search index tests share: a store and its search::Index over a
// fresh directory, helpers to put, remove and rename items, run queries and
// read search.db directly, and a small corpus.
#pragma once
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "search/extract.h"
#include "search/search.h"
#include "store/store.h"

namespace fs = std::filesystem;
using itemfs::search::Index;
using itemfs::search::Results;
using itemfs::store::Store;
using itemfs::store::WriteBatch;


class SearchIndex : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("itemfs-search-" + std::to_string(rd()) + std::to_string(rd()));
    open();
  }
  void TearDown() override {
    index_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }
  void open() {
    index_.reset();
    store_.reset();
    store_ = Store::open(dir_);
    index_ = std::make_unique<Index>(*store_);
  }
  void put(const std::string& id, const nlohmann::json& doc) { put_raw(id, doc.dump()); }
  void put_raw(const std::string& id, const std::string& text) {
    store_->write([&](WriteBatch& b) {
      std::istringstream in(text);
      auto st = b.put(id, in, {});
      ASSERT_TRUE(st.ok()) << st.message;
    });
    index_->catch_up();  // each write its own batch of the index, as a query after it would see it
  }
  void remove(const std::string& id) {
    store_->write([&](WriteBatch& b) { ASSERT_TRUE(b.remove(id).ok()); });
    index_->catch_up();
  }
  void rename(const std::string& from, const std::string& to) {
    store_->write([&](WriteBatch& b) { ASSERT_TRUE(b.rename(from, to).ok()); });
    index_->catch_up();
  }
  int64_t ino(const std::string& id) { return store_->item(id)->ino; }
  Results search(const std::string& q) {
    Results r;
    auto st = index_->run(q, r);
    EXPECT_TRUE(st.ok()) << q << ": " << st.message;
    return r;
  }
  // The ids found, in rank order.
  std::vector<std::string> ids(const std::string& q) {
    std::vector<std::string> out;
    for (const auto& h : search(q).hits) out.push_back(h.id);
    return out;
  }
  std::vector<std::string> sorted_ids(const std::string& q) {
    auto v = ids(q);
    std::sort(v.begin(), v.end());
    return v;
  }
  // The index's own database (search.db), once it has applied every write.
  sqlite3* index_db() {
    index_->catch_up();
    sqlite3* db = nullptr;
    sqlite3_open((dir_ / "search.db").c_str(), &db);
    sqlite3_busy_timeout(db, 60000);
    return db;
  }
  // The first column of the first row of sql, read outside any write.
  int64_t query_int(const char* sql) {
    int64_t v = -1;
    sqlite3* db = index_db();
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(db, sql, -1, &s, nullptr);
    if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
  }
  // Rows in the full-text table: each holds one length token (U+E002 + a letter).
  int64_t fts_row_count() { return query_int("SELECT count(*) FROM search_fts('\"\xEE\x80\x82\" *')"); }
  void exec(const std::string& sql) {
    sqlite3* db = index_db();
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }

  void load_corpus() {
    put("a1", {{"title", "Solar panel prices fall"},
               {"content", "Cheaper photovoltaic modules arrived this year."},
               {"url", "https://www.example.com/news/solar"},
               {"author", "Jane Smith"},
               {"tags", {"energy", "solar power"}},
               {"lang", "en"},
               {"published_at", "2024-03-05T10:00:00Z"},
               {"metadata", {{"source", "reuters"}}}});
    put("a2", {{"title", "Wind farms"},
               {"content", "A report on wind farms, with a note on solar panel output."},
               {"url", "https://news.other.org/wind"},
               {"author", "Bob Jones"},
               {"tags", {"energy"}},
               {"lang", "en-GB"},
               {"published_at", "2023-11-20"},
               {"metadata", {{"source", "ap"}}}});
    put("a3", {{"title", "Café culture in Zürich"},
               {"content", "Les cafés de la ville sont très élégants."},
               {"url", "https://blog.example.com/cafe"},
               {"author", "Élodie Durand"},
               {"tags", {"travel"}},
               {"metadata", {{"lang", "fr"}, {"source", "blog"}}},
               {"crawled_at", "2024-06-01T00:00:00+02:00"}});
    put("a4", {{"title", "東京の天気"},
               {"content", "今日は日本語の文章です。明日は晴れるでしょう。"},
               {"url", "https://tenki.example.jp/tokyo"},
               {"lang", "ja"},
               {"published_at", "2024-01-15"}});
    put("a5", {{"title", "한국어 뉴스"}, {"content", "서울에서 한국어를 배우는 학생들"}, {"lang", "ko"}});
    put("a6", {{"title", "Battery storage"},
               {"content", "Grid batteries store solar energy for the night. Photovoltaics need storage."},
               {"url", "https://www.example.com/batteries"},
               {"author", "Jane Smith"},
               {"published_at", 1717200000}});
  }

  fs::path dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Index> index_;
};

using V = std::vector<std::string>;

// prefix + k, built with += ("x" + std::to_string(k) trips GCC 12's
// -Wrestrict false positive at -O3).
inline std::string numbered(const char* prefix, int k) {
  std::string out(prefix);
  out += std::to_string(k);
  return out;
}
