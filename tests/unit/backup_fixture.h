// What the backup tests share: a store with a backup Manager over a fresh
// directory, items of every kind of id and mode, and helpers to look at
// archives with the system's own tar.
#pragma once
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "backup/backup.h"
#include "backup/io.h"
#include "backup/manifest.h"
#include "store/store.h"
#include "tests/unit/temp_dir.h"

namespace itemfs::backup::test {

namespace fs = std::filesystem;
using json = nlohmann::json;
using store::Attrs;
using store::Status;
using store::Store;
using store::WriteBatch;

struct Item {
  std::string bytes;
  uint32_t perm = 0;  // mode & 07777
  int64_t mtime_ns = 0;
  bool operator==(const Item& o) const { return bytes == o.bytes && perm == o.perm && mtime_ns == o.mtime_ns; }
};
using Tree = std::map<std::string, Item>;  // "<shard>/<id>.json" -> item

inline std::ostream& operator<<(std::ostream& os, const Item& i) {
  return os << "{" << i.bytes.size() << " bytes, perm " << std::oct << i.perm << std::dec << ", mtime " << i.mtime_ns
            << "}";
}

inline void put(Store& s, const std::string& id, const std::string& bytes, uint32_t mode = 0100644,
         int64_t mtime = store::kMtimeNow) {
  s.write([&](WriteBatch& b) {
    std::istringstream in(bytes);
    Status st = b.put(id, in, Attrs{mode, 0, 0, mtime});
    ASSERT_TRUE(st.ok()) << id << ": " << st.message;
  });
}

inline void remove_item(Store& s, const std::string& id) {
  s.write([&](WriteBatch& b) { ASSERT_TRUE(b.remove(id).ok()); });
}

inline void set_attrs(Store& s, const std::string& id, uint32_t mode, int64_t mtime) {
  s.write([&](WriteBatch& b) { ASSERT_TRUE(b.set_attrs(id, Attrs{mode, 0, 0, mtime}).ok()); });
}

// What `rsync -a MNT/items/` would give, taken from the store.
inline Tree store_tree(Store& s) {
  Tree out;
  auto snap = s.snapshot();
  snap->for_each_item([&](const store::ItemInfo& info) {
    Item it;
    snap->read_item(info, [&](std::string_view c) { it.bytes.append(c); });
    it.perm = info.attrs.mode & 07777;
    it.mtime_ns = info.attrs.mtime_ns;
    out[store::shard_of(info.id) + "/" + info.id + ".json"] = it;
  });
  return out;
}

inline std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void spit(const fs::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
}

// Every regular file under `root`, by relative path. Anything else fails.
inline Tree disk_tree(const fs::path& root) {
  Tree out;
  if (!fs::exists(root)) return out;
  for (auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_directory()) continue;
    EXPECT_TRUE(e.is_regular_file()) << e.path();
    struct stat st {};
    EXPECT_EQ(::lstat(e.path().c_str(), &st), 0);
    Item it;
    it.bytes = slurp(e.path());
    it.perm = st.st_mode & 07777;
    it.mtime_ns = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    out[fs::relative(e.path(), root).string()] = it;
  }
  return out;
}

inline int sh(const std::string& cmd) {
  int rc = std::system(("LC_ALL=C.UTF-8; export LC_ALL; " + cmd).c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

inline std::string q(const fs::path& p) {
  std::string s = "'";  // in steps: GCC 12 -O2 misreports "'" + string as -Wrestrict
  s += p.string();
  s += "'";
  return s;
}

inline json status(Manager& m) { return json::parse(m.status_json()); }

// A field of an item of a parsed format 2 manifest: its entry is [sha256,
// size, mtime_ns, archive (an index into chain), mode, uid, gid], the last
// three left out when they equal item_defaults.
inline json item_field(const json& m, const std::string& id, const std::string& field) {
  static const std::vector<std::string> names = {"sha256", "size", "mtime_ns", "archive", "mode", "uid", "gid"};
  size_t i = std::find(names.begin(), names.end(), field) - names.begin();
  const json& e = m.at("items").at(id);
  if (i < e.size()) return field == "archive" ? m.at("chain").at(e[i].get<size_t>()) : e[i];
  return m.at("item_defaults").at(field);
}

class BackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = Store::open(tmp_.path() / "store");
    opts_.dir = tmp_.path() / "store" / "backups";
  }

  Manager& mgr() {
    if (!mgr_) mgr_ = std::make_unique<Manager>(*store_, opts_);
    return *mgr_;
  }

  void run_ok(const std::string& cmd) {
    Status st = mgr().run(cmd);
    ASSERT_TRUE(st.ok()) << cmd << ": " << st.message << "\n" << mgr().status_json();
  }

  std::string last_id() {
    auto l = mgr().list();
    return l.empty() ? "" : l.back().id;
  }

  // A mix: shards of one and two code points, UTF-8, odd modes, ns mtimes.
  void fill(int n, int64_t base_mtime = 1700000000123456789) {
    for (int i = 0; i < n; ++i) {
      std::string id = "item-" + std::to_string(i);
      put(*store_, id, "{\"n\": " + std::to_string(i) + ", \"text\": \"" + std::string(size_t(i % 50) * 7, 'x') + "\"}\n",
          i % 3 == 0 ? 0100600 : 0100644, base_mtime + i * 1111);
    }
    put(*store_, "a", "[1, 2, 3]", 0100640, 1600000000000000001);
    put(*store_, "\xc3\xa9t\xc3\xa9-caf\xc3\xa9", "{\"utf8\": \"\xc3\xa9\"}", 0100644, 1600000000999999999);
    put(*store_, "with space", "\"s\"", 0100444, 1500000000000000000);
  }

  fs::path archive_of(const std::string& id) {
    fs::path p = opts_.dir / id / (id + ".tar.gz");
    if (!fs::exists(p)) p += ".enc";
    return p;
  }

  // tar xzf of `archive` into `into` (as a user would, keeping permissions).
  void extract(const fs::path& archive, const fs::path& into) {
    fs::create_directories(into);
    ASSERT_EQ(sh("tar -xzpf " + q(archive) + " -C " + q(into)), 0) << archive;
  }

  TempDir tmp_;
  std::unique_ptr<Store> store_;
  Options opts_;
  std::unique_ptr<Manager> mgr_;
};

// 1, 3, 4: a full backup is one directory with manifest, archive and sidecar,
// and the archive extracted by plain tar equals the store, byte for byte.
}  // namespace itemfs::backup::test
