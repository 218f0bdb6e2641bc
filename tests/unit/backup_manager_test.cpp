// Backups against a real store: formats checked with plain tar/sha256sum,
// verify/restore/prune behaviour, damage, concurrency, encryption, schedule.
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

namespace itemfs::backup {
namespace {

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

std::ostream& operator<<(std::ostream& os, const Item& i) {
  return os << "{" << i.bytes.size() << " bytes, perm " << std::oct << i.perm << std::dec << ", mtime " << i.mtime_ns
            << "}";
}

void put(Store& s, const std::string& id, const std::string& bytes, uint32_t mode = 0100644,
         int64_t mtime = store::kMtimeNow) {
  s.write([&](WriteBatch& b) {
    std::istringstream in(bytes);
    Status st = b.put(id, in, Attrs{mode, 0, 0, mtime});
    ASSERT_TRUE(st.ok()) << id << ": " << st.message;
  });
}

void remove_item(Store& s, const std::string& id) {
  s.write([&](WriteBatch& b) { ASSERT_TRUE(b.remove(id).ok()); });
}

void set_attrs(Store& s, const std::string& id, uint32_t mode, int64_t mtime) {
  s.write([&](WriteBatch& b) { ASSERT_TRUE(b.set_attrs(id, Attrs{mode, 0, 0, mtime}).ok()); });
}

// What `rsync -a MNT/items/` would give, taken from the store.
Tree store_tree(Store& s) {
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

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const fs::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
}

// Every regular file under `root`, by relative path. Anything else fails.
Tree disk_tree(const fs::path& root) {
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

int sh(const std::string& cmd) {
  int rc = std::system(("LC_ALL=C.UTF-8; export LC_ALL; " + cmd).c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string q(const fs::path& p) {
  std::string s = "'";  // in steps: GCC 12 -O2 misreports "'" + string as -Wrestrict
  s += p.string();
  s += "'";
  return s;
}

json status(Manager& m) { return json::parse(m.status_json()); }

// A field of an item of a parsed format 2 manifest: its entry is [sha256,
// size, mtime_ns, archive (an index into chain), mode, uid, gid], the last
// three left out when they equal item_defaults.
json item_field(const json& m, const std::string& id, const std::string& field) {
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
TEST_F(BackupTest, FullBackupExtractsWithPlainTar) {
  fill(60);
  run_ok("full\n");
  auto list = mgr().list();
  ASSERT_EQ(list.size(), 1u);
  const BackupEntry& b = list[0];
  EXPECT_EQ(b.kind, "full");
  EXPECT_TRUE(b.parent.empty());
  EXPECT_EQ(b.item_count, 63u);
  EXPECT_EQ(b.archived_count, 63u);
  std::set<std::string> names;
  for (auto& f : b.files) names.insert(f.name);
  EXPECT_EQ(names, (std::set<std::string>{"manifest.json", b.id + ".tar.gz", b.id + ".tar.gz.sha256"}));
  EXPECT_NE(b.id.find("-full"), std::string::npos);
  EXPECT_EQ(mgr().path_of(b.id, b.id + ".tar.gz"), opts_.dir / b.id / (b.id + ".tar.gz"));
  EXPECT_EQ(mgr().path_of(b.id, "../store.db"), fs::path());
  EXPECT_EQ(mgr().path_of("nope", "manifest.json"), fs::path());

  // The sidecar and SHA256SUMS are what sha256sum -c reads.
  EXPECT_EQ(sh("cd " + q(opts_.dir / b.id) + " && sha256sum --quiet -c " + b.id + ".tar.gz.sha256"), 0);
  fs::path out = tmp_.path() / "x";
  extract(archive_of(b.id), out);
  EXPECT_EQ(sh("cd " + q(out) + " && sha256sum --quiet --strict -c SHA256SUMS"), 0);
  EXPECT_EQ(disk_tree(out / "items"), store_tree(*store_));

  json m = json::parse(slurp(out / "MANIFEST.json"));
  EXPECT_EQ(m["format_version"], 2);
  EXPECT_EQ(m["id"], b.id);
  EXPECT_EQ(m["kind"], "full");
  EXPECT_TRUE(m["parent"].is_null());
  EXPECT_EQ(m["items"].size(), 63u);
  EXPECT_EQ(item_field(m, "a", "size"), 9);
  EXPECT_EQ(item_field(m, "a", "mtime_ns"), 1600000000000000001);
  EXPECT_EQ(item_field(m, "a", "archive"), b.id);
  EXPECT_EQ(m["deleted"].size(), 0u);
  EXPECT_EQ(slurp(out / "MANIFEST.json"), slurp(opts_.dir / b.id / "manifest.json"));

  json s = status(mgr());
  EXPECT_EQ(s["state"], "idle");
  EXPECT_EQ(s["last"]["ok"], true);
  EXPECT_EQ(s["last"]["id"], b.id);
}

// 1, 4: incrementals hold only changes; a chain extracted in order with the
// deleted ids removed equals the store (checked also with diff -r).
TEST_F(BackupTest, ChainExtractsWithPlainTar) {
  fill(40);
  run_ok("full");
  std::vector<std::string> ids{last_id()};
  std::vector<Tree> states{store_tree(*store_)};

  put(*store_, "item-1", "{\"changed\": true}", 0100644, 1650000000000000000);  // content
  set_attrs(*store_, "item-2", 0100600, 1700000000123458011);                   // mode only
  set_attrs(*store_, "item-3", 0100600, 1660000000000000005);                   // mtime only
  remove_item(*store_, "item-4");
  put(*store_, "new", "{\"new\": 1}", 0100644, 1650000000000000001);
  run_ok("incremental");
  ids.push_back(last_id());
  states.push_back(store_tree(*store_));

  remove_item(*store_, "new");
  put(*store_, "item-4", "{\"back\": 4}", 0100644, 1650000000000000002);
  put(*store_, "zz", "{}", 0100644, 1650000000000000003);
  run_ok("incremental\n");
  ids.push_back(last_id());
  states.push_back(store_tree(*store_));

  run_ok("incremental");  // nothing changed
  ids.push_back(last_id());
  states.push_back(store_tree(*store_));

  auto list = mgr().list();
  ASSERT_EQ(list.size(), 4u);
  EXPECT_EQ(list[1].kind, "incremental");
  EXPECT_EQ(list[1].parent, ids[0]);
  EXPECT_EQ(list[2].parent, ids[1]);
  EXPECT_EQ(list[1].archived_count, 4u);  // item-1, item-2, item-3, new
  EXPECT_EQ(list[2].archived_count, 2u);  // item-4, zz
  EXPECT_EQ(list[3].archived_count, 0u);
  EXPECT_EQ(list[3].item_count, states[3].size());

  for (size_t upto = 0; upto < ids.size(); ++upto) {
    fs::path out = tmp_.path() / ("chain" + std::to_string(upto));
    for (size_t i = 0; i <= upto; ++i) {
      extract(archive_of(ids[i]), out);
      json m = json::parse(slurp(out / "MANIFEST.json"));
      ASSERT_EQ(m["id"], ids[i]);
      for (const auto& d : m["deleted"]) {
        std::string id = d;
        fs::path f = out / "items" / store::shard_of(id) / (id + ".json");
        fs::remove(f);
        if (fs::is_empty(f.parent_path())) fs::remove(f.parent_path());  // as rsync of the mount would show
      }
    }
    EXPECT_EQ(disk_tree(out / "items"), states[upto]) << "chain up to " << ids[upto];
  }

  json m2 = json::parse(slurp(opts_.dir / ids[1] / "manifest.json"));
  EXPECT_EQ(m2["deleted"], json::array({"item-4"}));
  EXPECT_EQ(item_field(m2, "item-1", "archive"), ids[1]);
  EXPECT_EQ(item_field(m2, "item-5", "archive"), ids[0]);
  EXPECT_EQ(m2["chain"], json::array({ids[0], ids[1]}));
  // The store is read in table order (fill() made item-10 after item-9),
  // yet every map is written in id order: the direct parse, which refuses
  // any other order, reads each of them.
  for (const auto& bid : ids) {
    Manifest header;
    std::vector<MapEntry> items;
    EXPECT_TRUE(parse_manifest_layout(slurp(opts_.dir / bid / "manifest.json"), header, items)) << bid;
    EXPECT_EQ(items.size(), header.item_count) << bid;
  }

  // The same check with diff -r against the store written out as files.
  fs::path exported = tmp_.path() / "exported";
  for (const auto& [rel, it] : store_tree(*store_)) {
    fs::create_directories((exported / rel).parent_path());
    spit(exported / rel, it.bytes);
  }
  EXPECT_EQ(sh("diff -r " + q(exported) + " " + q(tmp_.path() / "chain3" / "items")), 0);
}

// 5: verify re-hashes; the result is recorded.
// Backups of manifest format 1, written by an earlier itemfs (checked in
// under backup_v1_fixture/), stay verifiable, restorable and usable as the
// parent of a format 2 incremental; the mixed chain restores with plain tar.
TEST_F(BackupTest, FormatOneBackupsStayUsable) {
  const std::string v1_full = "20261121T132523Z-full", v1_incr = "20261121T132524Z-incr";
  fs::path fixture = fs::path(__FILE__).parent_path() / "backup_v1_fixture";
  fs::create_directories(opts_.dir);
  fs::copy(fixture, opts_.dir, fs::copy_options::recursive);
  fs::remove(opts_.dir / "README");
  EXPECT_NE(slurp(opts_.dir / v1_incr / "manifest.json").find("\"format_version\": 1,"), std::string::npos);
  run_ok("verify all");

  // The state the format 1 chain holds, restored into the empty store.
  const int64_t t = 1700000000123456789;
  run_ok("restore " + v1_incr);
  Tree want;
  want["00/a.json"] = {"{\"n\": 1}\n", 0644, t};
  want["ab/abc.json"] = {"{\"title\": \"abc changed\"}\n", 0600, t + 10};
  want["ke/keep.json"] = {"{\"keep\": true}\n", 0644, t + 2};
  want["\xc3\xa9t/\xc3\xa9t\xc3\xa9.json"] = {"{\"lang\": \"fr\"}\n", 0644, t + 4};
  want["wi/with space.json"] = {"{\"s\": \" \"}\n", 0644, t + 11};
  want["ne/new.json"] = {"{\"new\": 1}\n", 0644, t + 12};
  EXPECT_EQ(store_tree(*store_), want);

  // A format 2 incremental on the format 1 one: only what changed since.
  put(*store_, "keep", "{\"keep\": false}\n", 0100644, t + 20);
  set_attrs(*store_, "a", 0100755, t + 21);
  remove_item(*store_, "new");
  put(*store_, "v2", "{\"v\": 2}\n", 0100644, t + 22);
  run_ok("incremental");
  std::string v2 = last_id();
  ASSERT_NE(v2, v1_incr);
  json m = json::parse(slurp(opts_.dir / v2 / "manifest.json"));
  EXPECT_EQ(m["format_version"], 2);
  EXPECT_EQ(m["parent"], v1_incr);
  EXPECT_EQ(m["chain"], json::array({v1_full, v1_incr, v2}));
  EXPECT_EQ(m["deleted"], json::array({"new"}));
  EXPECT_EQ(m["archived_count"], 3);  // keep, a (its mode), v2
  EXPECT_EQ(item_field(m, "a", "archive"), v2);
  EXPECT_EQ(item_field(m, "a", "mode"), 0100755);
  EXPECT_EQ(item_field(m, "keep", "archive"), v2);
  EXPECT_EQ(item_field(m, "v2", "archive"), v2);
  EXPECT_EQ(item_field(m, "abc", "archive"), v1_incr);
  EXPECT_EQ(item_field(m, "\xc3\xa9t\xc3\xa9", "archive"), v1_full);
  run_ok("verify all");
  Tree now = store_tree(*store_);

  // Plain tar, the chain in order with deleted ids removed.
  fs::path out = tmp_.path() / "plain";
  for (const auto& id : {v1_full, v1_incr, v2}) {
    extract(archive_of(id), out);
    json mi = json::parse(slurp(out / "MANIFEST.json"));
    for (const auto& d : mi["deleted"]) {
      std::string did = d;
      fs::path f = out / "items" / store::shard_of(did) / (did + ".json");
      fs::remove(f);
      if (fs::is_empty(f.parent_path())) fs::remove(f.parent_path());
    }
  }
  EXPECT_EQ(disk_tree(out / "items"), now);

  // Restoring the mixed chain, and the format 1 one again, with clear.
  put(*store_, "stray", "{}", 0100644, t);
  put(*store_, "abc", "{}", 0100644, t);
  run_ok("restore " + v2 + " clear");
  EXPECT_EQ(store_tree(*store_), now);
  run_ok("restore " + v1_incr + " clear");
  EXPECT_EQ(store_tree(*store_), want);
}

TEST_F(BackupTest, VerifyRecordsResult) {
  fill(20);
  run_ok("full");
  std::string id = last_id();
  EXPECT_EQ(mgr().list()[0].verified_ns, 0);
  run_ok("verify " + id);
  auto b = mgr().list()[0];
  EXPECT_GT(b.verified_ns, 0);
  EXPECT_TRUE(b.verified_ok);
  json v = json::parse(slurp(opts_.dir / id / "verify.json"));
  EXPECT_EQ(v["ok"], true);
  EXPECT_FALSE(mgr().path_of(id, "verify.json").empty());
  EXPECT_EQ(mgr().run("verify 20000101T000000Z-full").code, ENOENT);
  put(*store_, "x1", "{}");
  run_ok("incremental");
  run_ok("verify all");
  EXPECT_EQ(status(mgr())["last"]["verified"].size(), 2u);
}

// 2: once a job has ended, status keeps what it did: the items and bytes it
// archived, verified or restored (a "syncing" phase once reset them to 0).
TEST_F(BackupTest, LastResultKeepsTheCounts) {
  fill(20);
  uint64_t bytes = 0;
  for (const auto& [path, it] : store_tree(*store_)) bytes += it.bytes.size();
  auto last = [&] { return status(mgr())["last"]; };
  run_ok("full");
  std::string full = last_id();
  EXPECT_EQ(last()["items_done"], 23) << last();
  EXPECT_EQ(last()["bytes_done"], bytes) << last();

  put(*store_, "item-1", "{\"changed\": 1}");   // 14 bytes
  put(*store_, "new-one", "{\"new\": 12345}");  // 14 bytes
  run_ok("incremental");
  EXPECT_EQ(last()["items_done"], 2) << last();
  EXPECT_EQ(last()["bytes_done"], 28) << last();

  run_ok("verify all");
  EXPECT_EQ(last()["items_done"], 25) << last();
  EXPECT_EQ(last()["bytes_done"], bytes + 28) << last();

  run_ok("restore " + full);
  EXPECT_EQ(last()["items_done"], 23) << last();
  EXPECT_EQ(last()["bytes_done"], bytes) << last();
}

// 5, 6: a flipped byte anywhere fails verify, says where, and restore refuses.
TEST_F(BackupTest, FlippedByteFailsVerifyAndRestore) {
  fill(80);
  run_ok("full");
  std::string id = last_id();
  fs::path archive = archive_of(id);
  std::string pristine = slurp(archive);
  Tree before = store_tree(*store_);
  put(*store_, "item-7", "{\"after\": true}");
  Tree current = store_tree(*store_);

  for (size_t pos : {size_t(20), pristine.size() / 3, pristine.size() / 2, pristine.size() - 30,
                     pristine.size() - 3}) {
    std::string bad = pristine;
    bad[pos] = static_cast<char>(bad[pos] ^ 0x10);
    spit(archive, bad);
    Status st = mgr().run("verify " + id);
    EXPECT_EQ(st.code, EIO) << "flip at " << pos;
    json s = status(mgr());
    EXPECT_EQ(s["last"]["ok"], false);
    std::string msg = s["last"]["message"];
    EXPECT_NE(msg.find(id), std::string::npos) << msg;
    EXPECT_NE(msg.find("does not match its .sha256"), std::string::npos) << msg;
    EXPECT_EQ(json::parse(slurp(opts_.dir / id / "verify.json"))["ok"], false);
    EXPECT_EQ(mgr().run("restore " + id).code, EIO) << "flip at " << pos;
    EXPECT_EQ(store_tree(*store_), current);
  }

  // Damage with a matching sidecar (rewritten by whoever damaged it): the
  // per-item hashes still catch it, naming a place in the archive.
  std::string bad = pristine;
  bad[pristine.size() / 2] = static_cast<char>(bad[pristine.size() / 2] ^ 0x01);
  spit(archive, bad);
  ASSERT_EQ(sh("cd " + q(archive.parent_path()) + " && sha256sum " + id + ".tar.gz > " + id + ".tar.gz.sha256"), 0);
  EXPECT_EQ(mgr().run("verify " + id).code, EIO);
  std::string msg = status(mgr())["last"]["message"];
  EXPECT_TRUE(msg.find("items/") != std::string::npos || msg.find("archive damaged") != std::string::npos ||
              msg.find("MANIFEST.json") != std::string::npos || msg.find("SHA256SUMS") != std::string::npos)
      << msg;
  EXPECT_EQ(mgr().run("restore " + id).code, EIO);
  EXPECT_EQ(store_tree(*store_), current);

  spit(archive, pristine);
  ASSERT_EQ(sh("cd " + q(archive.parent_path()) + " && sha256sum " + id + ".tar.gz > " + id + ".tar.gz.sha256"), 0);
  run_ok("verify " + id);
  run_ok("restore " + id);
  EXPECT_EQ(store_tree(*store_), before);
}

TEST_F(BackupTest, TruncatedArchiveFails) {
  fill(50);
  run_ok("full");
  std::string id = last_id();
  fs::path archive = archive_of(id);
  std::string pristine = slurp(archive);
  for (size_t len : {size_t(0), size_t(10), pristine.size() / 2, pristine.size() - 1}) {
    spit(archive, pristine.substr(0, len));
    EXPECT_EQ(mgr().run("verify " + id).code, EIO) << len;
    EXPECT_EQ(mgr().run("verify all").code, EIO) << len;
    EXPECT_EQ(mgr().run("restore " + id + " clear").code, EIO) << len;
  }
  EXPECT_EQ(store_tree(*store_).size(), 53u);
}

TEST_F(BackupTest, DamagedManifestFails) {
  fill(10);
  run_ok("full");
  std::string id = last_id();
  fs::path man = opts_.dir / id / "manifest.json";
  std::string text = slurp(man);
  size_t at = text.find("\",", text.find("\"items\""));  // the end of the first item's sha256: its size follows
  ASSERT_NE(at, std::string::npos);
  text[at + 2] = text[at + 2] == '9' ? '8' : '9';
  spit(man, text);
  EXPECT_EQ(mgr().run("verify " + id).code, EIO);
  EXPECT_NE(status(mgr()).dump().find("manifest.json differs"), std::string::npos);
}

// 6: restore into an empty store gives the same items.
TEST_F(BackupTest, RestoreIntoEmptyStore) {
  fill(30);
  put(*store_, "big", "[\"" + std::string(3 << 20, 'b') + "\"]", 0100644, 1700000000000000042);  // spooled to disk
  run_ok("full");
  put(*store_, "item-9", "{\"v\": 2}", 0100644, 1700000000000000077);
  put(*store_, "epoch", "{\"t\": 0}", 0100644, 0);  // the epoch is an mtime, not "now"
  remove_item(*store_, "item-8");
  run_ok("incremental");
  std::string id = last_id();
  Tree want = store_tree(*store_);
  ASSERT_EQ(want.at("ep/epoch.json").mtime_ns, 0);

  TempDir other;
  auto empty = Store::open(other.path() / "store");
  Options o;
  o.dir = opts_.dir;
  Manager m2(*empty, o);
  std::vector<std::string> changed;
  m2.on_restore([&](const std::vector<std::string>& ids) { changed = ids; });
  Status st = m2.run("restore " + id);
  ASSERT_TRUE(st.ok()) << st.message;
  EXPECT_EQ(store_tree(*empty), want);
  EXPECT_EQ(changed.size(), want.size());
}

// 6: restore adds and overwrites; clear also removes; the listener hears of
// exactly the changed ids.
TEST_F(BackupTest, RestoreChainAndClear) {
  fill(20);
  run_ok("full");
  std::string full = last_id();
  put(*store_, "item-1", "{\"v\": 2}", 0100644, 1650000000000000000);
  remove_item(*store_, "item-2");
  run_ok("incremental");
  std::string incr = last_id();
  Tree at_incr = store_tree(*store_);

  put(*store_, "item-1", "{\"v\": 3}");
  put(*store_, "extra", "{\"extra\": true}");
  set_attrs(*store_, "item-5", 0100600, 1234);
  remove_item(*store_, "item-6");

  std::vector<std::string> changed;
  int calls = 0;
  mgr().on_restore([&](const std::vector<std::string>& ids) {
    changed = ids;
    ++calls;
  });
  run_ok("restore " + incr);
  EXPECT_EQ(calls, 1);
  std::sort(changed.begin(), changed.end());
  EXPECT_EQ(changed, (std::vector<std::string>{"item-1", "item-5", "item-6"}));
  Tree now = store_tree(*store_);
  Tree expect = at_incr;
  expect["ex/extra.json"] = now["ex/extra.json"];  // not removed without clear
  EXPECT_EQ(now, expect);

  run_ok("restore " + incr + " clear");
  EXPECT_EQ(store_tree(*store_), at_incr);
  EXPECT_EQ(changed, std::vector<std::string>{"extra"});

  run_ok("restore " + full + " clear");  // older state: item-2 back, item-1 old
  Tree t = store_tree(*store_);
  EXPECT_EQ(t.size(), 23u);
  EXPECT_NE(t["it/item-1.json"].bytes.find("\"n\": 1"), std::string::npos);
  EXPECT_EQ(mgr().run("restore 20000101T000000Z-full").code, ENOENT);
}

// 6: a restore never writes outside the store, whatever the entry names say.
// 6: a manifest may not give an item another file type than a regular file
// (the tar header only carries the permission bits, so verify checks it).
TEST_F(BackupTest, RestoreRejectsAnItemThatIsNotARegularFile) {
  fill(3);
  run_ok("full");
  std::string id = last_id();
  fs::path extracted = tmp_.path() / "e";
  extract(archive_of(id), extracted);
  json m = json::parse(slurp(extracted / "MANIFEST.json"));
  ASSERT_EQ(item_field(m, "a", "mode"), 0100640);
  json& a = m["items"]["a"];
  a = {a[0], a[1], a[2], a[3], 040640, item_field(m, "a", "uid"), item_field(m, "a", "gid")};  // a directory, same permission bits
  std::string manifest = m.dump(2);
  fs::path archive = archive_of(id);
  fs::remove(archive);
  {
    FileSink file(archive);
    TarWriter tw(file, 6);
    auto entry = [&](const std::string& name, const std::string& data, uint32_t mode, int64_t mtime) {
      tw.begin(name, data.size(), mode, 0, 0, mtime);
      tw.data(data.data(), data.size());
      tw.end();
    };
    entry("MANIFEST.json", manifest, 0644, 1);
    entry("SHA256SUMS", slurp(extracted / "SHA256SUMS"), 0644, 1);
    for (const auto& [iid, im] : m["items"].items()) {
      std::string path = "items/" + store::shard_of(iid) + "/" + iid + ".json";
      entry(path, slurp(extracted / path), item_field(m, iid, "mode").get<uint32_t>(),
            item_field(m, iid, "mtime_ns").get<int64_t>());
    }
    tw.close();
  }
  spit(opts_.dir / id / "manifest.json", manifest);
  ASSERT_EQ(sh("cd " + q(archive.parent_path()) + " && sha256sum " + id + ".tar.gz > " + id + ".tar.gz.sha256"), 0);
  Tree before = store_tree(*store_);
  EXPECT_EQ(mgr().run("verify " + id).code, EIO);
  EXPECT_NE(status(mgr())["last"]["message"].get<std::string>().find("not a regular file"), std::string::npos)
      << status(mgr());
  EXPECT_EQ(mgr().run("restore " + id).code, EIO);
  EXPECT_EQ(store_tree(*store_), before);
}

TEST_F(BackupTest, RestoreRejectsHostileEntryNames) {
  fill(5);
  run_ok("full");
  std::string id = last_id();
  fs::path extracted = tmp_.path() / "e";
  extract(archive_of(id), extracted);
  // Rebuild the archive with hostile names, consistent sidecar.
  fs::path archive = archive_of(id);
  for (std::string evil : {"../../evil.json", "items/it/../../../evil.json", "/tmp/itemfs-evil.json",
                           "items/zz/item-0.json"}) {
    fs::remove(archive);
    {
      FileSink file(archive);
      TarWriter tw(file, 6);
      for (std::string name : {"MANIFEST.json", "SHA256SUMS"}) {
        std::string data = slurp(extracted / name);
        tw.begin(name, data.size(), 0644, 0, 0, 1);
        tw.data(data.data(), data.size());
        tw.end();
      }
      std::string data = "{\"evil\": 1}";
      tw.begin(evil, data.size(), 0644, 0, 0, 1);
      tw.data(data.data(), data.size());
      tw.end();
      tw.close();
    }
    ASSERT_EQ(sh("cd " + q(archive.parent_path()) + " && sha256sum " + id + ".tar.gz > " + id + ".tar.gz.sha256"), 0);
    Tree before = store_tree(*store_);
    EXPECT_EQ(mgr().run("verify " + id).code, EIO) << evil;
    EXPECT_NE(status(mgr())["last"]["message"].get<std::string>().find("unexpected entry"), std::string::npos);
    EXPECT_EQ(mgr().run("restore " + id).code, EIO) << evil;
    EXPECT_EQ(store_tree(*store_), before);
    EXPECT_FALSE(fs::exists(tmp_.path() / "evil.json"));
    EXPECT_FALSE(fs::exists(opts_.dir / "evil.json"));
    EXPECT_FALSE(fs::exists("/tmp/itemfs-evil.json"));
  }
}

// Messages quote what they were given, which need not be UTF-8 (a damaged
// archive's names, a bad command): status and verify.json stay JSON.
TEST_F(BackupTest, MessagesThatAreNotUtf8StayJson) {
  fill(3);
  run_ok("full");
  std::string id = last_id();
  EXPECT_NE(mgr().run("verify 2024\xa9\xff-full").code, 0);
  json s = status(mgr());
  EXPECT_EQ(s["last"]["ok"], false);
  EXPECT_NE(s["last"]["message"].get<std::string>().find("\xef\xbf\xbd"), std::string::npos) << s.dump();
}

// 8: one snapshot; writers keep going meanwhile; the restore is consistent.
TEST_F(BackupTest, BackupDuringWritesIsAPointInTime) {
  // Ballast makes the backup take a while; the writer rewrites all counters
  // in one batch per generation, so any point in time has one generation.
  const int counters = 20;
  std::string pad(20000, 'p');
  store_->write([&](WriteBatch& b) {
    for (int i = 0; i < 400; ++i) {
      std::istringstream in("{\"ballast\": " + std::to_string(i) + ", \"pad\": \"" + pad + std::to_string(i) + "\"}");
      ASSERT_TRUE(b.put("ballast" + std::to_string(i), in, Attrs{}).ok());
    }
  });
  auto write_gen = [&](int gen) {
    store_->write([&](WriteBatch& b) {
      for (int i = 0; i < counters; ++i) {
        std::istringstream in("{\"gen\": " + std::to_string(gen) + ", \"i\": " + std::to_string(i) + "}");
        ASSERT_TRUE(b.put("counter" + std::to_string(i), in, Attrs{}).ok());
      }
    });
  };
  write_gen(0);
  std::atomic<bool> stop{false}, backing_up{false};
  std::atomic<int> gens_during{0};
  std::thread writer([&] {
    for (int gen = 1; !stop; ++gen) {
      bool during = backing_up;
      write_gen(gen);
      if (during && backing_up) ++gens_during;  // began and committed while the backup ran
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  backing_up = true;
  run_ok("full");
  backing_up = false;
  stop = true;
  writer.join();
  std::string id = last_id();

  TempDir other;
  auto fresh = Store::open(other.path() / "s");
  Options o;
  o.dir = opts_.dir;
  Manager m2(*fresh, o);
  ASSERT_TRUE(m2.run("restore " + id).ok());
  std::set<std::string> gens_seen;
  Tree t = store_tree(*fresh);
  ASSERT_EQ(t.size(), size_t(400 + counters));
  for (auto& [k, it] : t) {
    if (k.rfind("co/", 0) == 0) gens_seen.insert(json::parse(it.bytes)["gen"].dump());
  }
  EXPECT_EQ(gens_seen.size(), 1u) << "mixed generations in one backup";
  EXPECT_GT(gens_during.load(), 0) << "writers waited for the backup";
}

// 7: prune keeps the policy plus every parent a kept backup needs; delete
// refuses to orphan a child.
TEST_F(BackupTest, PruneAndDeleteKeepNeededParents) {
  fill(5);
  std::vector<std::string> ids;
  for (const char* cmd : {"full", "incremental", "incremental", "full", "incremental", "incremental"}) {
    put(*store_, "tick", "{\"t\": " + std::to_string(ids.size()) + "}");
    run_ok(cmd);
    ids.push_back(last_id());
  }
  ASSERT_EQ(mgr().list().size(), 6u);
  EXPECT_EQ(mgr().run("delete " + ids[3]).code, ENOTEMPTY);
  EXPECT_EQ(mgr().run("delete " + ids[1]).code, ENOTEMPTY);
  EXPECT_EQ(mgr().list().size(), 6u);

  run_ok("prune keep_last=6 keep_days=0");
  EXPECT_EQ(mgr().list().size(), 6u);
  run_ok("prune keep_days=1");  // all are recent
  EXPECT_EQ(mgr().list().size(), 6u);

  run_ok("prune keep_last=1");  // the newest needs ids[4] and ids[3]
  std::vector<std::string> left;
  for (auto& b : mgr().list()) left.push_back(b.id);
  EXPECT_EQ(left, (std::vector<std::string>{ids[3], ids[4], ids[5]}));
  run_ok("verify all");
  run_ok("restore " + ids[5]);

  run_ok("delete " + ids[5]);
  EXPECT_EQ(mgr().run("delete " + ids[3]).code, ENOTEMPTY);
  run_ok("delete " + ids[4]);
  run_ok("delete " + ids[3]);
  EXPECT_TRUE(mgr().list().empty());
  EXPECT_EQ(mgr().run("delete " + ids[3]).code, ENOENT);
  // Nothing hidden left behind.
  for (auto& e : fs::directory_iterator(opts_.dir)) EXPECT_EQ(e.path().filename(), ".lock");
}

// 1: bad commands EINVAL (status says why); EBUSY while a job runs, here or
// in another process; 2: status shows progress while running.
TEST_F(BackupTest, BusyInvalidAndProgress) {
  Status st = mgr().run("bogus");
  EXPECT_EQ(st.code, EINVAL);
  EXPECT_NE(status(mgr())["last"]["message"].get<std::string>().find("unknown command"), std::string::npos);

  // Another process holds the directory's job lock.
  fs::create_directories(opts_.dir);
  int fd = ::open((opts_.dir / ".lock").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::sleep(30);
    ::_exit(0);
  }
  ::close(fd);  // the child's copy keeps the lock
  EXPECT_EQ(mgr().run("full").code, EBUSY);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  run_ok("full");

  // A job of this process.
  std::string pad(20000, 'z');
  store_->write([&](WriteBatch& b) {
    for (int i = 0; i < 1200; ++i) {
      std::istringstream in("{\"i\": " + std::to_string(i) + ", \"p\": \"" + pad + std::to_string(i) + "\"}");
      std::string id = "p";
      id += std::to_string(i);
      ASSERT_TRUE(b.put(id, in, Attrs{}).ok());
    }
  });
  std::atomic<bool> done{false};
  Status bg;
  std::thread t([&] {
    bg = mgr().run("full");
    done = true;
  });
  bool saw_running = false, saw_busy = false, saw_progress = false;
  while (!done) {
    json s = status(mgr());
    if (s["state"] == "running") {
      saw_running = true;
      if (s["items_total"].get<uint64_t>() > 0 && s["items_done"].get<uint64_t>() > 0 &&
          s.contains("bytes_done") && s.contains("bytes_total"))
        saw_progress = true;
      Status other = mgr().run("verify all");
      if (other.code == EBUSY) saw_busy = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  t.join();
  EXPECT_TRUE(bg.ok()) << bg.message;
  EXPECT_TRUE(saw_running);
  EXPECT_TRUE(saw_busy);
  EXPECT_TRUE(saw_progress);
  EXPECT_EQ(status(mgr())["state"], "idle");
}

// An incremental copies the map lines of unchanged items from its parent's
// manifest.json when that has the layout itemfs writes and the same
// item_defaults; otherwise it parses the parent's map. Every way gives the
// same map, and the archive holds exactly the changed items.
TEST_F(BackupTest, IncrementalMapsAgreeWhateverTheParentLooksLike) {
  fill(30);
  run_ok("full");
  const std::string full = last_id();
  const std::string pristine = slurp(opts_.dir / full / "manifest.json");
  // What the parent's manifest.json may look like, and each time the
  // store's changes since (the incremental is deleted again after).
  struct Case {
    std::string name;
    std::function<std::string(const std::string&)> rewrite;  // of the parent's manifest.json
    bool new_defaults;  // most items change mode: other item_defaults
  };
  std::vector<Case> cases = {
      {"as written", [](const std::string& t) { return t; }, false},
      {"as written, other defaults", [](const std::string& t) { return t; }, true},
      {"re-indented by another tool", [](const std::string& t) { return json::parse(t).dump(1) + "\n"; }, false},
      {"two entries swapped at the end",
       [](const std::string& t) {
         // The last two lines of the map traded places: still the same JSON
         // object, but not in id order.
         size_t end = t.rfind("\n  }\n}\n"), b = t.rfind(",\n", end), a = t.rfind(",\n", b - 1);
         std::string last = t.substr(b + 2, end - b - 2), before = t.substr(a + 2, b - a - 2);
         return t.substr(0, a + 2) + last + ",\n" + before + t.substr(end);
       },
       false},
      {"an entry in upper-case hex",
       [](const std::string& t) {
         std::string u = t;
         size_t at = u.find("\"item-7\":[\"") + 11;
         for (size_t i = at; i < at + 64; ++i) u[i] = char(std::toupper(static_cast<unsigned char>(u[i])));
         return u;
       },
       false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::string rewritten = c.rewrite(pristine);
    fs::permissions(opts_.dir / full / "manifest.json", fs::perms::owner_write, fs::perm_options::add);
    spit(opts_.dir / full / "manifest.json", rewritten);
    auto store_before = store_tree(*store_);
    put(*store_, "item-1", "{\"changed\": true}", 0100644, 1650000000000000000);
    set_attrs(*store_, "item-3", 0100600, 1700000000123459333);  // mode only: a non-default line
    remove_item(*store_, "item-4");
    put(*store_, "new", "{\"new\": 1}", 0100644, 1650000000000000001);
    std::set<std::string> want_archived = {"item-1", "item-3", "new"};
    if (c.new_defaults) {
      for (int i = 10; i < 30; ++i) {
        std::string id = "item-" + std::to_string(i);
        set_attrs(*store_, id, 0100444, 1700000000123456789 + i * 1111);
        want_archived.insert(id);
      }
    }
    if (c.name == "an entry in upper-case hex") want_archived.insert("item-7");  // not the canonical line: archived again
    run_ok("incremental");
    const std::string incr = last_id();
    ASSERT_NE(incr, full);
    const std::string text = slurp(opts_.dir / incr / "manifest.json");
    Manifest header;
    std::vector<MapEntry> items;
    ASSERT_TRUE(parse_manifest_layout(text, header, items)) << "itemfs's own layout";
    fs::path out = tmp_.path() / ("x-" + std::to_string(&c - cases.data()));
    extract(archive_of(incr), out);
    EXPECT_EQ(slurp(out / "MANIFEST.json"), text);
    json m = json::parse(text);
    EXPECT_EQ(m["deleted"], json::array({"item-4"}));
    EXPECT_EQ(m["items"].size(), store_tree(*store_).size());
    std::set<std::string> archived;
    auto snap = store_->snapshot();
    snap->for_each_item([&](const store::ItemInfo& info) {
      std::string a = item_field(m, info.id, "archive");
      if (a == incr) archived.insert(info.id);
      else EXPECT_EQ(a, full) << info.id;
      EXPECT_EQ(item_field(m, info.id, "sha256"), hex(info.sha256.data(), 32)) << info.id;
      EXPECT_EQ(item_field(m, info.id, "size"), info.size) << info.id;
      EXPECT_EQ(item_field(m, info.id, "mode"), info.attrs.mode) << info.id;
      EXPECT_EQ(item_field(m, info.id, "mtime_ns"), info.attrs.mtime_ns) << info.id;
    });
    EXPECT_EQ(archived, want_archived);
    EXPECT_EQ(m["archived_count"], want_archived.size());
    EXPECT_EQ(disk_tree(out / "items").size(), want_archived.size());
    run_ok("verify " + incr);
    EXPECT_EQ(json::parse(slurp(opts_.dir / incr / "verify.json"))["ok"], true);

    // Back to the state of the full backup, without this incremental.
    run_ok("delete " + incr);
    remove_item(*store_, "new");
    for (const auto& [rel, it] : store_before) {
      std::string id = rel.substr(rel.find('/') + 1);
      id.resize(id.size() - 5);
      put(*store_, id, it.bytes, 0100000 | it.perm, it.mtime_ns);
    }
    ASSERT_EQ(store_tree(*store_), store_before);
    spit(opts_.dir / full / "manifest.json", pristine);
  }
}

TEST_F(BackupTest, IncrementalWithoutParentIsFull) {
  fill(3);
  run_ok("incremental");
  auto l = mgr().list();
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].kind, "full");
  run_ok("full");
  run_ok("full");  // same second: ids stay distinct and ordered
  l = mgr().list();
  ASSERT_EQ(l.size(), 3u);
  EXPECT_LT(l[0].created_ns, l[1].created_ns);
  EXPECT_LT(l[1].created_ns, l[2].created_ns);
  EXPECT_NE(l[1].id, l[2].id);
}

// 10: encryption.
class BackupCryptoTest : public BackupTest {
 protected:
  void SetUp() override {
    BackupTest::SetUp();
    key_ = tmp_.path() / "key";
    spit(key_, std::string(64, 'a') + "\n");
    opts_.key_file = key_;
  }
  fs::path key_;
};

TEST_F(BackupCryptoTest, RoundTripAndTamper) {
  fill(40);
  run_ok("full");
  std::string full = last_id();
  put(*store_, "item-3", "{\"secret\": \"changed\"}", 0100600, 1650000000000000000);
  remove_item(*store_, "item-4");
  run_ok("incremental");
  std::string incr = last_id();
  Tree want = store_tree(*store_);

  auto l = mgr().list();
  ASSERT_EQ(l.size(), 2u);
  EXPECT_TRUE(l[1].encrypted);
  fs::path archive = archive_of(incr);
  EXPECT_EQ(archive.filename(), incr + ".tar.gz.enc");
  EXPECT_FALSE(mgr().path_of(incr, incr + ".tar.gz.enc.sha256").empty());
  std::string raw = slurp(archive);
  EXPECT_EQ(raw.substr(0, 8), "ITEMFSGC");
  EXPECT_EQ(raw.find("secret"), std::string::npos);
  std::string outer = slurp(opts_.dir / incr / "manifest.json");
  EXPECT_EQ(outer.find("item-3"), std::string::npos) << "ids leak beside an encrypted archive";
  EXPECT_EQ(sh("cd " + q(opts_.dir / incr) + " && sha256sum --quiet -c " + incr + ".tar.gz.enc.sha256"), 0);

  run_ok("verify all");

  // decrypt gives back a tar.gz that plain tar restores.
  fs::path out = tmp_.path() / "plain";
  for (const auto& id : {full, incr}) {
    fs::path plain = tmp_.path() / (id + ".tar.gz");
    {
      std::ofstream os(plain, std::ios::binary);
      Status st = decrypt(archive_of(id), key_, os);
      ASSERT_TRUE(st.ok()) << st.message;
    }
    extract(plain, out);
    json m = json::parse(slurp(out / "MANIFEST.json"));
    for (const auto& d : m["deleted"]) {
      std::string did = d;
      fs::remove(out / "items" / store::shard_of(did) / (did + ".json"));
    }
  }
  EXPECT_EQ(disk_tree(out / "items"), want);

  // Restore needs the key.
  {
    TempDir other;
    auto fresh = Store::open(other.path() / "s");
    Options nokey;
    nokey.dir = opts_.dir;
    Manager m2(*fresh, nokey);
    EXPECT_EQ(m2.run("restore " + incr).code, EACCES);
    EXPECT_EQ(m2.run("verify " + incr).code, EACCES);
    EXPECT_TRUE(store_tree(*fresh).empty());
    Options wrong = nokey;
    wrong.key_file = tmp_.path() / "wrong";
    spit(*wrong.key_file, std::string(32, '\x07'));
    Manager m3(*fresh, wrong);
    EXPECT_NE(m3.run("restore " + incr).code, 0);
    std::ostringstream sink;
    EXPECT_EQ(decrypt(archive, *wrong.key_file, sink).code, EACCES);
    Options right = nokey;
    right.key_file = key_;
    Manager m4(*fresh, right);
    ASSERT_TRUE(m4.run("restore " + incr).ok()) << m4.status_json();
    EXPECT_EQ(store_tree(*fresh), want);
  }

  // Tampering (even with a recomputed sidecar) and truncation are detected.
  fs::path farchive = archive_of(full);
  std::string pristine = slurp(farchive);
  auto resum = [&] {
    ASSERT_EQ(sh("cd " + q(farchive.parent_path()) + " && sha256sum " + full + ".tar.gz.enc > " + full +
                 ".tar.gz.enc.sha256"),
              0);
  };
  for (size_t pos : {size_t(3), size_t(30), size_t(40), pristine.size() / 2, pristine.size() - 1}) {
    std::string bad = pristine;
    bad[pos] = static_cast<char>(bad[pos] ^ 0x80);
    spit(farchive, bad);
    resum();
    EXPECT_EQ(mgr().run("verify " + full).code, EIO) << pos;
    std::ostringstream sink;
    EXPECT_NE(decrypt(farchive, key_, sink).code, 0) << pos;
    EXPECT_EQ(mgr().run("restore " + incr).code, EIO) << pos;
  }
  for (size_t len : {pristine.size() - 1, pristine.size() - 16, size_t(36 + 65536 + 16), size_t(36)}) {
    if (len > pristine.size()) continue;
    spit(farchive, pristine.substr(0, len));
    resum();
    EXPECT_EQ(mgr().run("verify " + full).code, EIO) << len;
    std::ostringstream sink;
    EXPECT_NE(decrypt(farchive, key_, sink).code, 0) << len;
  }
  spit(farchive, pristine + "x");
  resum();
  EXPECT_EQ(mgr().run("verify " + full).code, EIO);
  spit(farchive, pristine);
  resum();
  run_ok("verify all");
}

TEST_F(BackupCryptoTest, ChunkBoundaries) {
  // Plaintexts of 0, 1, exactly one chunk and one chunk + 1 byte.
  auto key = load_key(key_);
  for (size_t size : {size_t(0), size_t(1), kEncChunk - 1, kEncChunk, kEncChunk + 1, 3 * kEncChunk}) {
    fs::path p = tmp_.path() / ("enc" + std::to_string(size));
    std::string plain(size, '\0');
    for (size_t i = 0; i < size; ++i) plain[i] = static_cast<char>(i * 7 + 3);
    {
      FileSink file(p);
      EncryptSink enc(file, *key);
      enc.write(plain.data(), plain.size());
      enc.finish();
    }
    std::ostringstream out;
    Status st = decrypt(p, key_, out);
    ASSERT_TRUE(st.ok()) << size << ": " << st.message;
    EXPECT_EQ(out.str(), plain) << size;
    // Dropping the final chunk must be detected even at a chunk boundary.
    std::string whole = slurp(p);
    size_t chunks_end = whole.size() - (size % kEncChunk) - kEncTag;
    if (chunks_end > kEncHeader) {
      spit(p, whole.substr(0, chunks_end));
      std::ostringstream o2;
      EXPECT_NE(decrypt(p, key_, o2).code, 0) << size;
    }
  }
  spit(tmp_.path() / "badkey", "short");
  std::ostringstream o3;
  EXPECT_EQ(decrypt(tmp_.path() / "enc1", tmp_.path() / "badkey", o3).code, EINVAL);
}

// 9: scheduled backups: incrementals, a full when the chain would get too
// long, pruning to keep_last with parents kept.
TEST_F(BackupTest, ScheduleTakesBackups) {
  fill(5);
  opts_.chain_max = 2;
  mgr().start_schedule(std::chrono::seconds(1), 3);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::vector<BackupEntry> l;
  int ticks = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    put(*store_, "tick", "{\"t\": " + std::to_string(++ticks) + "}");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    l = mgr().list();
    bool seen_second_full = l.size() >= 3 && l.back().kind == "full" && l.front().kind == "full";
    if (seen_second_full) break;
  }
  ASSERT_GE(l.size(), 3u) << mgr().status_json();
  // chain_max = 2: full, incremental, full, ...
  for (const auto& b : l) {
    if (b.kind == "incremental") {
      auto p = std::find_if(l.begin(), l.end(), [&](const BackupEntry& e) { return e.id == b.parent; });
      ASSERT_NE(p, l.end());
      EXPECT_EQ(p->kind, "full");
    }
  }
  EXPECT_LE(l.size(), 4u);  // pruned to 3 (+ a parent)
  EXPECT_TRUE(status(mgr()).contains("schedule"));
  mgr_.reset();  // stops the thread
}

// A tar header (ustar) for one regular file of `size` bytes, as a hostile
// archive would have it: the size is whatever the header says.
std::string tar_header(const std::string& name, uint64_t size) {
  std::string h(512, '\0');
  auto field = [&](size_t off, size_t len, const std::string& v) { h.replace(off, v.size(), v.substr(0, len)); };
  auto octal = [](uint64_t v, int digits) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%0*llo", digits, static_cast<unsigned long long>(v));
    return std::string(buf);
  };
  field(0, 100, name);
  field(100, 8, octal(0644, 7));
  field(108, 8, octal(0, 7));
  field(116, 8, octal(0, 7));
  field(124, 12, octal(size, 11));
  field(136, 12, octal(1, 11));
  field(148, 8, std::string(8, ' '));
  h[156] = '0';
  field(257, 6, std::string("ustar\0", 6));
  field(263, 2, "00");
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  field(148, 8, octal(sum, 6) + std::string("\0 ", 2));
  return h;
}

// A MANIFEST.json whose tar header declares 1 GiB (and holds a few bytes)
// is refused before anything of that size is allocated: verify runs in a
// child whose address space is limited to what it uses plus 256 MiB, so an
// allocation of the declared size fails there ("out of memory") instead of
// passing unnoticed.
TEST_F(BackupTest, ManifestDeclaringAHugeSizeIsRefusedWithoutAllocatingIt) {
  fill(3);
  run_ok("full");
  std::string id = last_id();
  fs::path archive = archive_of(id);
  std::string manifest = slurp(opts_.dir / id / "manifest.json");
  for (uint64_t declared : {uint64_t(1) << 30, uint64_t(3) << 30}) {
    fs::remove(archive);
    {
      FileSink file(archive);
      GzipSink gz(file, 6);
      std::string tar = tar_header("MANIFEST.json", declared) + manifest;
      gz.write(tar.data(), tar.size());
      gz.finish();
    }
    ASSERT_EQ(sh("cd " + q(archive.parent_path()) + " && sha256sum " + id + ".tar.gz > " + id + ".tar.gz.sha256"), 0);
    // verify, then restore (which verifies first), in a child with a bounded
    // address space (not under AddressSanitizer, whose shadow memory needs
    // terabytes of it).
    for (std::string cmd : {"verify " + id, "restore " + id}) {
      pid_t pid = ::fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
#if !defined(__SANITIZE_ADDRESS__)
        std::ifstream statm("/proc/self/statm");
        uint64_t pages = 0;
        statm >> pages;
        uint64_t limit = pages * uint64_t(::sysconf(_SC_PAGESIZE)) + (uint64_t(256) << 20);
        struct rlimit rl {limit, limit};
        if (::setrlimit(RLIMIT_AS, &rl) != 0) ::_exit(3);
#endif
        Manager m(*store_, opts_);
        Status st = m.run(cmd);
        std::string msg = json::parse(m.status_json())["last"]["message"].get<std::string>();
        bool ok = st.code == EIO && msg.find("MANIFEST.json declares") != std::string::npos &&
                  msg.find("out of memory") == std::string::npos;
        if (!ok) std::fprintf(stderr, "%s: code %d: %s\n", cmd.c_str(), st.code, msg.c_str());
        ::_exit(ok ? 0 : 1);
      }
      int wstatus = 0;
      ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
      ASSERT_TRUE(WIFEXITED(wstatus)) << cmd << ": " << declared;
      EXPECT_EQ(WEXITSTATUS(wstatus), 0) << cmd << " with MANIFEST.json declaring " << declared << " bytes";
    }
  }
}

// An incremental chains only onto a backup made with the same key (or none):
// a key where there was none, another key, or no key where there was one
// starts a new full backup, and the manifest records the key's id. A backup
// whose manifest.json does not record it (older ones) is judged by its
// archive's header.
TEST_F(BackupTest, AKeyChangeStartsANewFullBackup) {
  fill(10);
  run_ok("full");
  auto manifest = [&](const std::string& id) { return json::parse(slurp(opts_.dir / id / "manifest.json")); };
  auto message = [&] { return status(mgr())["last"]["message"].get<std::string>(); };
  fs::path key1 = tmp_.path() / "key1", key2 = tmp_.path() / "key2";
  spit(key1, std::string(64, '1'));
  spit(key2, std::string(64, '2'));

  opts_.key_file = key1;
  mgr_.reset();
  put(*store_, "item-1", "{\"changed\": 1}");
  run_ok("incremental");
  std::string e1 = last_id();
  json m1 = manifest(e1);
  EXPECT_EQ(m1["kind"], "full") << m1.dump();
  EXPECT_EQ(m1["encrypted"], true);
  EXPECT_EQ(m1["chain"].size(), 1u);
  EXPECT_EQ(m1["archived_count"], m1["item_count"]) << "every item is in the encrypted archive";
  ASSERT_TRUE(m1.contains("key_id"));
  EXPECT_EQ(m1["key_id"].get<std::string>().size(), 16u);
  EXPECT_NE(message().find("not encrypted and a backup key is given"), std::string::npos) << message();

  put(*store_, "item-2", "{\"changed\": 2}");
  run_ok("incremental");
  std::string e2 = last_id();
  EXPECT_EQ(manifest(e2)["kind"], "incremental");
  EXPECT_EQ(manifest(e2)["parent"], e1);
  EXPECT_EQ(manifest(e2)["key_id"], m1["key_id"]);

  opts_.key_file = key2;
  mgr_.reset();
  run_ok("incremental");
  std::string e3 = last_id();
  EXPECT_EQ(manifest(e3)["kind"], "full");
  EXPECT_NE(manifest(e3)["key_id"], m1["key_id"]);
  EXPECT_NE(message().find("not the one the newest backup was encrypted with"), std::string::npos) << message();

  opts_.key_file.reset();
  mgr_.reset();
  run_ok("incremental");
  std::string p1 = last_id();
  EXPECT_EQ(manifest(p1)["kind"], "full");
  EXPECT_EQ(manifest(p1)["encrypted"], false);
  EXPECT_NE(message().find("encrypted and no backup key is given"), std::string::npos) << message();

  // An encrypted backup whose manifest.json names no key id.
  opts_.key_file = key2;
  mgr_.reset();
  run_ok("incremental");
  std::string e4 = last_id();
  json m4 = manifest(e4);
  ASSERT_EQ(m4["kind"], "full");
  m4.erase("key_id");
  spit(opts_.dir / e4 / "manifest.json", m4.dump(2));
  mgr_.reset();
  run_ok("incremental");
  EXPECT_EQ(manifest(last_id())["kind"], "incremental");
  EXPECT_EQ(manifest(last_id())["parent"], e4);
  opts_.key_file = key1;
  mgr_.reset();
  run_ok("incremental");
  EXPECT_EQ(manifest(last_id())["kind"], "full");
}

// Without the key, verify of an encrypted backup checks what it can (the
// archive against its .sha256, the key id in its header) and says what it
// could not: EACCES when that much is right, EIO when it is not.
TEST_F(BackupCryptoTest, VerifyWithoutTheKeyChecksTheSidecar) {
  fill(5);
  run_ok("full");
  std::string id = last_id();
  Options nokey = opts_;
  nokey.key_file.reset();
  Manager m2(*store_, nokey);
  EXPECT_EQ(m2.run("verify " + id).code, EACCES);
  std::string msg = status(m2)["last"]["message"];
  EXPECT_NE(msg.find("matches its .sha256"), std::string::npos) << msg;
  EXPECT_NE(msg.find("were not checked"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(opts_.dir / id / "verify.json")) << "a partial check is not recorded as a verify";
  fs::path archive = archive_of(id);
  std::string pristine = slurp(archive);
  std::string bad = pristine;
  bad[bad.size() / 2] = static_cast<char>(bad[bad.size() / 2] ^ 1);
  spit(archive, bad);
  EXPECT_EQ(m2.run("verify " + id).code, EIO);
  msg = status(m2)["last"]["message"];
  EXPECT_NE(msg.find("does not match its .sha256"), std::string::npos) << msg;
  spit(archive, pristine);
  EXPECT_EQ(m2.run("verify all").code, EACCES);
  run_ok("verify " + id);
}

// Stored content that no longer matches its hash (a disk fault: the item's
// blobs zeroed with the sqlite3 CLI, the store closed meanwhile).
class DamageTest : public BackupTest {
 protected:
  void damage(const std::vector<std::string>& ids) {
    mgr_.reset();
    store_.reset();
    for (const auto& id : ids) {
      ASSERT_EQ(sh("sqlite3 " + q(tmp_.path() / "store" / "store.db") +
                   " \"update blobs set data = zeroblob(length(data)) where id in (select blob from chunks where "
                   "ino = (select ino from items where id = '" + id + "'))\""),
                0);
    }
    store_ = Store::open(tmp_.path() / "store");
  }
  // The item's bytes as the store gives them, or "EIO" if it refuses them.
  std::string read(const std::string& id) {
    auto snap = store_->snapshot();
    auto info = snap->item(id);
    if (!info) return "ENOENT";
    std::string out;
    try {
      snap->read_item(*info, [&](std::string_view c) { out.append(c); });
    } catch (const store::StoreError& e) {
      return e.code() == EIO ? "EIO" : e.what();
    }
    return out;
  }
  std::string message() { return status(mgr())["last"]["message"].get<std::string>(); }
};

// restore of a backup that holds the version an item records rewrites that
// item when its stored content is damaged, rather than skipping it as
// unchanged; a full backup names a damaged item and says how to repair it.
TEST_F(DamageTest, RestoreRepairsContentThatDoesNotMatchItsHash) {
  fill(5);
  put(*store_, "victim", "{\"victim\": \"the good version of a damaged item\"}", 0100600, 1600000000000000000);
  run_ok("full");
  std::string id = last_id();
  Tree want = store_tree(*store_);
  damage({"victim"});
  ASSERT_NE(read("victim"), "{\"victim\": \"the good version of a damaged item\"}");

  EXPECT_EQ(mgr().run("full").code, EIO);
  EXPECT_NE(message().find("victim"), std::string::npos) << message();
  EXPECT_NE(message().find("--repair --from-backup ID"), std::string::npos) << message();
  EXPECT_NE(message().find("or remove the item"), std::string::npos) << message();

  run_ok("restore " + id);
  EXPECT_NE(message().find("1 repaired"), std::string::npos) << message();
  EXPECT_EQ(read("victim"), "{\"victim\": \"the good version of a damaged item\"}");
  EXPECT_EQ(store_tree(*store_), want);
  run_ok("full");
}

// Manager::repair (fsck --repair --from-backup) rewrites the damaged items
// the backup holds in their recorded version and names the others: not in
// the backup, or held there in another version (a restore, the user's
// choice).
TEST_F(DamageTest, RepairFromABackupSaysWhatItCouldNot) {
  fill(3);
  put(*store_, "victim", "{\"victim\": 1}");
  put(*store_, "changed", "{\"changed\": \"the backed-up version\"}");
  run_ok("full");
  std::string id = last_id();
  put(*store_, "changed", "{\"changed\": \"a later version\"}");
  put(*store_, "fresh", "{\"fresh\": \"made after the backup\"}");
  damage({"victim", "changed", "fresh"});
  RepairReport report;
  Status st = mgr().repair(id, {"victim", "changed", "fresh"}, report);
  ASSERT_TRUE(st.ok()) << st.message;
  EXPECT_EQ(report.repaired, std::vector<std::string>{"victim"});
  ASSERT_EQ(report.not_repaired.size(), 2u);
  std::string lines = report.not_repaired[0] + "\n" + report.not_repaired[1];
  EXPECT_NE(lines.find("changed: backup " + id + " holds another version"), std::string::npos) << lines;
  EXPECT_NE(lines.find("your choice"), std::string::npos) << lines;
  EXPECT_NE(lines.find("fresh: not in backup " + id), std::string::npos) << lines;
  EXPECT_EQ(read("victim"), "{\"victim\": 1}");
  EXPECT_EQ(read("changed") == "{\"changed\": \"a later version\"}", false) << "left as it was: damaged";
  EXPECT_NE(mgr().repair("no-such", {"victim"}, report).code, 0);
}

}  // namespace
}  // namespace itemfs::backup
