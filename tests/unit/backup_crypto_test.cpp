// Encrypted backups: round trip, tampering, chunk boundaries, a key change
// starting a new chain, verify without the key.
#include "tests/unit/backup_fixture.h"

namespace itemfs::backup::test {
namespace {

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

}  // namespace
}  // namespace itemfs::backup::test
