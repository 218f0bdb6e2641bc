// Progress of backup jobs: the callback of Options::progress sees each
// phase with its totals while a job runs and never after run() returned;
// status carries percent (and the time left) while a job runs; the percent
// and time left come from the phase's bytes, else its items; phase_hook
// holds a job at a phase so that a running job can be looked at, and
// job_running() and EBUSY say it runs.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "backup/backup.h"
#include "store/store.h"
#include "tests/unit/temp_dir.h"

namespace itemfs::backup {
namespace {

using json = nlohmann::json;
using store::Status;

class BackupProgressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = store::Store::open(tmp_.path() / "store");
    opts_.dir = tmp_.path() / "store" / "backups";
    store_->write([&](store::WriteBatch& b) {
      for (int i = 0; i < 200; ++i) {
        std::istringstream in("{\"i\": " + std::to_string(i) + ", \"p\": \"" + std::string(2000, 'x') + "\"}");
        ASSERT_TRUE(b.put("p" + std::to_string(i), in, store::Attrs{}).ok());
      }
    });
  }
  TempDir tmp_;
  std::unique_ptr<store::Store> store_;
  Options opts_;
};

TEST(BackupEstimate, PercentAndTimeLeftFromBytesElseItems) {
  JobProgress p;
  estimate(p);
  EXPECT_EQ(p.percent, -1);
  EXPECT_EQ(p.eta_s, -1);
  p.items_done = 1;
  p.items_total = 4;
  p.phase_elapsed_s = 10;
  estimate(p);
  EXPECT_EQ(p.percent, 25);
  EXPECT_DOUBLE_EQ(p.eta_s, 30);
  p.bytes_done = 750;
  p.bytes_total = 1000;  // bytes win over items
  estimate(p);
  EXPECT_EQ(p.percent, 75);
  EXPECT_NEAR(p.eta_s, 10.0 / 3, 1e-9);
  p.phase_elapsed_s = 0.1;  // too early for a rate
  estimate(p);
  EXPECT_EQ(p.eta_s, -1);
  p.bytes_done = 1200;  // more than the total: 100%, nothing left
  p.phase_elapsed_s = 1;
  estimate(p);
  EXPECT_EQ(p.percent, 100);
  EXPECT_EQ(p.eta_s, 0);
}

TEST_F(BackupProgressTest, CallbackSeesEveryPhaseWhileTheJobRuns) {
  std::mutex mu;
  std::vector<JobProgress> seen;
  std::atomic<bool> returned{false}, late{false};
  opts_.progress = [&](const JobProgress& p) {
    if (returned) late = true;
    std::lock_guard lk(mu);
    seen.push_back(p);
  };
  Manager m(*store_, opts_);
  ASSERT_TRUE(m.run("full").ok());
  ASSERT_TRUE(m.run("verify all").ok());
  returned = true;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a reporter left running would call now
  EXPECT_FALSE(late);
  std::set<std::string> phases;
  std::lock_guard lk(mu);
  for (const auto& p : seen) {
    phases.insert(p.job + ": " + p.phase);
    EXPECT_LE(p.items_done, std::max(p.items_total, p.items_done));
    if (p.phase == "writing archive") {
      EXPECT_EQ(p.items_total, 200u);
      EXPECT_GT(p.bytes_total, 200u * 2000);
      EXPECT_GE(p.percent, 0);
      EXPECT_LE(p.percent, 100);
    }
  }
  EXPECT_TRUE(phases.count("full: scanning")) << seen.size();
  EXPECT_TRUE(phases.count("full: writing archive"));
  EXPECT_TRUE(phases.count("verify: verifying"));
}

// A job held at the start of its archive phase: status says running with
// its percent, job_running() is true, a second job (here or through another
// Manager on the same directory, as another process) gets EBUSY.
TEST_F(BackupProgressTest, AJobHeldByThePhaseHookIsSeenRunning) {
  std::mutex mu;
  std::condition_variable cv;
  bool at_phase = false, release = false;
  opts_.phase_hook = [&](std::string_view phase) {
    if (phase != "writing archive") return;
    std::unique_lock lk(mu);
    at_phase = true;
    cv.notify_all();
    cv.wait(lk, [&] { return release; });
  };
  Manager m(*store_, opts_);
  EXPECT_FALSE(m.job_running());
  Status bg;
  std::thread t([&] { bg = m.run("full"); });
  {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return at_phase; });
  }
  EXPECT_TRUE(m.job_running());
  json s = json::parse(m.status_json());
  EXPECT_EQ(s["state"], "running");
  EXPECT_EQ(s["job"], "full");
  EXPECT_EQ(s["phase"], "writing archive");
  EXPECT_EQ(s["items_total"], 200);
  EXPECT_EQ(s["percent"], 0);
  EXPECT_FALSE(s.contains("eta_s"));  // nothing done yet: no rate
  Status busy = m.run("incremental");
  EXPECT_EQ(busy.code, EBUSY);
  Options other_opts = opts_;
  other_opts.phase_hook = nullptr;
  Manager other(*store_, other_opts);
  Status busy2 = other.run("verify all");
  EXPECT_EQ(busy2.code, EBUSY) << busy2.message;
  {
    std::lock_guard lk(mu);
    release = true;
  }
  cv.notify_all();
  t.join();
  EXPECT_TRUE(bg.ok()) << bg.message;
  EXPECT_FALSE(m.job_running());
  s = json::parse(m.status_json());
  EXPECT_EQ(s["state"], "idle");
  EXPECT_EQ(s["last"]["job"], "full");
  EXPECT_FALSE(s.contains("percent"));
}

// cancel() ends a held job with ECANCELED as soon as the hook lets it go on.
TEST_F(BackupProgressTest, CancelEndsAHeldJob) {
  std::mutex mu;
  std::condition_variable cv;
  bool at_phase = false, release = false;
  opts_.phase_hook = [&](std::string_view phase) {
    if (phase != "writing archive") return;
    std::unique_lock lk(mu);
    at_phase = true;
    cv.notify_all();
    cv.wait(lk, [&] { return release; });
  };
  Manager m(*store_, opts_);
  Status bg;
  std::thread t([&] { bg = m.run("full"); });
  {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return at_phase; });
  }
  m.cancel();
  {
    std::lock_guard lk(mu);
    release = true;
  }
  cv.notify_all();
  t.join();
  EXPECT_EQ(bg.code, EIO);
  EXPECT_NE(bg.message.find("cancelled"), std::string::npos) << bg.message;
  EXPECT_TRUE(m.list().empty());
}

}  // namespace
}  // namespace itemfs::backup
