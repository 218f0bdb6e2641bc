// Backups against a real store: formats checked with plain tar/sha256sum,
// verify/restore/prune behaviour, concurrency, the schedule.
#include "tests/unit/backup_fixture.h"

namespace itemfs::backup::test {
namespace {

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

}  // namespace
}  // namespace itemfs::backup::test
