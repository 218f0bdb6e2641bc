// Backups that say what they did: a scheduled incremental with nothing to
// hold is skipped and logged; status keeps the last backup's result apart
// from the prune after it; prune names what it deleted and what it kept and
// why; restore of chosen items (paths or globs) restores only those.
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "backup/backup.h"
#include "store/store.h"
#include "tests/unit/temp_dir.h"

namespace itemfs::backup {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using store::Status;

class BackupReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = store::Store::open(tmp_.path() / "store");
    opts_.dir = tmp_.path() / "store" / "backups";
  }
  Manager& mgr() {
    if (!mgr_) mgr_ = std::make_unique<Manager>(*store_, opts_);
    return *mgr_;
  }
  void put(const std::string& id, const std::string& bytes) {
    store_->write([&](store::WriteBatch& b) {
      std::istringstream in(bytes);
      Status st = b.put(id, in, store::Attrs{0100644, 0, 0, 1700000000000000000});
      ASSERT_TRUE(st.ok()) << st.message;
    });
  }
  std::string content(const std::string& id) {
    auto snap = store_->snapshot();
    auto info = snap->item(id);
    if (!info) return "(none)";
    std::string out;
    snap->read_item(*info, [&](std::string_view c) { out.append(c); });
    return out;
  }
  void run_ok(const std::string& cmd) {
    Status st = mgr().run(cmd);
    ASSERT_TRUE(st.ok()) << cmd << ": " << st.message << "\n" << mgr().status_json();
  }
  std::vector<std::string> ids() {
    std::vector<std::string> out;
    for (const auto& b : mgr().list()) out.push_back(b.id);
    return out;
  }
  json status() { return json::parse(mgr().status_json()); }

  TempDir tmp_;
  std::unique_ptr<store::Store> store_;
  Options opts_;
  std::unique_ptr<Manager> mgr_;
};

// The log lines a Manager writes, waited for by what they contain.
struct LogLines {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> lines;
  void add(std::string_view line) {
    std::lock_guard lk(mu);
    lines.emplace_back(line);
    cv.notify_all();
  }
  // The first line containing `text`; "" if none came within a minute.
  std::string wait_for(const std::string& text) {
    std::unique_lock lk(mu);
    std::string found;
    cv.wait_for(lk, std::chrono::seconds(60), [&] {
      for (const auto& l : lines) {
        if (l.find(text) != std::string::npos) {
          found = l;
          return true;
        }
      }
      return false;
    });
    return found;
  }
};

TEST_F(BackupReportTest, ScheduledIncrementalWithNothingChangedIsSkippedAndLogged) {
  put("a", "{\"v\": 1}");
  run_ok("full");
  const std::string full = ids().at(0);
  LogLines log;
  mgr().on_log([&](std::string_view line) { log.add(line); });
  mgr().start_schedule(std::chrono::seconds(1), 0);
  std::string skipped = log.wait_for("skipped");
  EXPECT_EQ(skipped.rfind("backup: incremental: skipped: nothing changed since " + full, 0), 0u) << skipped;
  EXPECT_EQ(ids(), std::vector<std::string>{full}) << "a skipped backup wrote an archive";
  // Something changes: the next scheduled incremental is taken.
  put("b", "{\"v\": 2}");
  EXPECT_NE(log.wait_for("backup: incremental: ok"), "");
  mgr_.reset();  // stops the schedule
  auto left = mgr().list();
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[1].kind, "incremental");
  EXPECT_EQ(left[1].archived_count, 1u);
}

// Asked for by hand, an incremental with nothing to hold is still taken.
TEST_F(BackupReportTest, ManualIncrementalIsNeverSkipped) {
  put("a", "{\"v\": 1}");
  run_ok("full");
  run_ok("incremental");
  EXPECT_EQ(ids().size(), 2u);
  EXPECT_FALSE(status()["last"].contains("skipped"));
}

TEST_F(BackupReportTest, StatusKeepsTheLastBackupApartFromThePrune) {
  put("a", "{\"v\": 1}");
  run_ok("full");
  put("a", "{\"v\": 2}");
  run_ok("incremental");
  const std::string incr = ids().back();
  run_ok("prune keep_last=1");
  json s = status();
  EXPECT_EQ(s["last"]["job"], "prune");
  EXPECT_EQ(s["last_prune"]["job"], "prune");
  EXPECT_EQ(s["last_backup"]["job"], "incremental");
  EXPECT_EQ(s["last_backup"]["id"], incr);
  EXPECT_EQ(s["last_backup"]["ok"], true);
  EXPECT_EQ(s["last_backup"]["items_done"], 1);
  // A failed verify afterwards changes neither.
  EXPECT_EQ(mgr().run("verify nosuchbackup").code, ENOENT);
  s = status();
  EXPECT_EQ(s["last"]["job"], "verify");
  EXPECT_EQ(s["last_backup"]["id"], incr);
  EXPECT_EQ(s["last_prune"]["job"], "prune");
}

TEST_F(BackupReportTest, PruneNamesWhatItDeletedAndWhyItKeptTheRest) {
  std::vector<std::string> made;
  for (const char* cmd : {"full", "incremental", "incremental", "full", "incremental", "incremental"}) {
    put("tick", "{\"t\": " + std::to_string(made.size()) + "}");
    run_ok(cmd);
    made.push_back(ids().back());
  }
  run_ok("prune keep_last=2");  // the 2 newest need made[3]
  EXPECT_EQ(status()["last"]["message"], "deleted 3: " + made[0] + ", " + made[1] + ", " + made[2] +
                                             "; kept 3: the 2 newest and the 1 their chain needs");
  EXPECT_EQ(status()["last"]["deleted"], json({made[0], made[1], made[2]}));
  EXPECT_EQ(status()["last"]["kept"], json({made[3], made[4], made[5]}));
  run_ok("prune keep_last=1 keep_days=1");  // all are recent
  EXPECT_EQ(status()["last"]["message"], "deleted 0; kept 3: the 1 newest and 2 more of the last 1 day");
}

// Restic's --include: a path or a glob of paths in the archive; a directory
// chooses what is under it; the other items are untouched.
TEST_F(BackupReportTest, RestoreOfChosenItemsRestoresOnlyThose) {
  const std::vector<std::string> all = {"apple", "apricot", "banana", "cherry"};
  for (const auto& id : all) put(id, "{\"v\": \"old " + id + "\"}");
  run_ok("full");
  const std::string id = ids().back();
  for (const auto& i : all) put(i, "{\"v\": \"new " + i + "\"}");
  const std::string apple = "items/" + store::shard_of("apple") + "/apple.json";
  run_ok("restore " + id + " " + apple);
  EXPECT_EQ(content("apple"), "{\"v\": \"old apple\"}");
  EXPECT_EQ(content("apricot"), "{\"v\": \"new apricot\"}");
  EXPECT_EQ(content("banana"), "{\"v\": \"new banana\"}");
  EXPECT_NE(status()["last"]["message"].get<std::string>().find("the 1 item chosen by 1 pattern"), std::string::npos)
      << status()["last"]["message"];

  // A glob of names, and a directory (with a trailing '/').
  run_ok("restore " + id + " items/" + store::shard_of("apricot") + "/apr*.json items/" +
         store::shard_of("cherry") + "/");
  EXPECT_EQ(content("apricot"), "{\"v\": \"old apricot\"}");
  EXPECT_EQ(content("cherry"), "{\"v\": \"old cherry\"}");
  EXPECT_EQ(content("banana"), "{\"v\": \"new banana\"}");

  // A pattern that chooses nothing fails, naming it, and restores nothing.
  put("apple", "{\"v\": \"newer\"}");
  Status st = mgr().run("restore " + id + " " + apple + " items/zz/*");
  EXPECT_EQ(st.code, ENOENT);
  EXPECT_NE(st.message.find("items/zz/* matches nothing in backup " + id), std::string::npos) << st.message;
  EXPECT_EQ(content("apple"), "{\"v\": \"newer\"}");
  // '*' does not cross '/'.
  EXPECT_EQ(mgr().run("restore " + id + " items/*.json").code, ENOENT);
  // An item made after the backup is left alone.
  put("durian", "{}");
  run_ok("restore " + id + " items");
  EXPECT_EQ(content("banana"), "{\"v\": \"old banana\"}");
  EXPECT_EQ(content("durian"), "{}");
}

}  // namespace
}  // namespace itemfs::backup
