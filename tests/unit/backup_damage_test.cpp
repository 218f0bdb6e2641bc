// Hostile and damaged input to backups: a manifest declaring a huge size, and
// restore/repair of store content that does not match its hash.
#include "tests/unit/backup_fixture.h"

namespace itemfs::backup::test {
namespace {

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
}  // namespace itemfs::backup::test
