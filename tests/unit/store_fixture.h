// What the store's unit tests share: putting and reading whole items, and
// looking into store.db with plain SQLite, documents in two made-up
// languages.
#pragma once
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
#include "base/sha256.h"
#include "store/parallel.h"
#include "store/store.h"
#include "tests/unit/temp_dir.h"

namespace itemfs::store {

using base::sha256_of;

inline Status put(Store& store, const std::string& id, const std::string& bytes, Attrs attrs = {}) {
  Status result;
  store.write([&](WriteBatch& batch) {
    std::istringstream in(bytes);
    result = batch.put(id, in, attrs);
  });
  return result;
}

inline std::string read_all(Store& store, const std::string& id) {
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

inline int64_t scalar(const std::filesystem::path& db_file, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open(db_file.c_str(), &db);
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr);
  int64_t value = sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : -1;
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return value;
}

inline void exec(const std::filesystem::path& db_file, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open(db_file.c_str(), &db);
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);
}

// Two made-up languages of twenty long words each, from letters of their
// own: documents of one share their words and letter sequences, not those
// of the other.
inline std::string text_in(int language, std::mt19937& rng, int n) {
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

inline std::string doc_in(int language, int i, std::mt19937& rng) {
  return "{\"title\":\"" + text_in(language, rng, 3) + " " + std::to_string(i) + "\",\"url\":\"https://" +
         (language ? "werkstatt.example.de/anleitung/" : "energy.example.com/guide/") + std::to_string(i) +
         "\",\"content\":\"" + text_in(language, rng, 120) + "\"}";
}

}  // namespace itemfs::store
