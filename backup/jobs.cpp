// Running a job: one at a time, its result (status_json, the log), its
// progress, and the schedule.
#include <cmath>

#include "backup/impl.h"

namespace itemfs::backup {

namespace {

std::string errno_name(int code) {
  switch (code) {
    case 0: return "";
    case EINVAL: return "EINVAL";
    case EBUSY: return "EBUSY";
    case ENOENT: return "ENOENT";
    case EIO: return "EIO";
    case ENOSPC: return "ENOSPC";
    case EACCES: return "EACCES";
    case ENOTEMPTY: return "ENOTEMPTY";
    case ECANCELED: return "ECANCELED";
    default: return "errno " + std::to_string(code);
  }
}

}  // namespace

void estimate(JobProgress& p) {
  // The phase's share done, by bytes when it counts them, and the time left
  // at the rate so far (once there is a rate to go by).
  const bool by_bytes = p.bytes_total > 0;
  const uint64_t done = by_bytes ? p.bytes_done : p.items_done, total = by_bytes ? p.bytes_total : p.items_total;
  p.percent = -1;
  p.eta_s = -1;
  if (total == 0) return;
  p.percent = done >= total ? 100 : int(100.0 * double(done) / double(total));
  if (done > 0 && p.phase_elapsed_s > 0.2) p.eta_s = double(total - std::min(done, total)) * p.phase_elapsed_s / double(done);
}

void Manager::Impl::set_phase(const std::string& p, uint64_t total_items, uint64_t total_bytes) {
  {
    std::lock_guard lk(state_mu);
    phase = p;
    phase_started = now_ns();
    ++phase_number;
    items_done = 0;
    bytes_done = 0;
    items_total = total_items;
    bytes_total = total_bytes;
  }
  if (opt.phase_hook) opt.phase_hook(p);
  report_progress();
}

JobProgress Manager::Impl::progress_locked() const {
  JobProgress j;
  j.job = job_name;
  j.phase = phase;
  j.phase_number = phase_number;
  j.id = job_id;
  j.items_done = items_done.load();
  j.items_total = items_total.load();
  j.bytes_done = bytes_done.load();
  j.bytes_total = bytes_total.load();
  const int64_t now = now_ns();
  j.elapsed_s = double(now - job_started) / 1e9;
  j.phase_elapsed_s = phase_started ? double(now - phase_started) / 1e9 : 0;
  estimate(j);
  return j;
}

void Manager::Impl::report_progress() {
  if (!opt.progress) return;
  std::lock_guard one(progress_mu);
  JobProgress j;
  {
    std::lock_guard lk(state_mu);
    if (!running) return;
    j = progress_locked();
  }
  try {
    opt.progress(j);
  } catch (...) {
  }
}

void Manager::Impl::rename_phase(const std::string& p) {
  {
    std::lock_guard lk(state_mu);
    phase = p;
  }
  report_progress();
}

void Manager::Impl::check_cancel() {
  if (cancel.load(std::memory_order_relaxed)) throw JobError(ECANCELED, "cancelled: itemfs is shutting down");
}

store::Status Manager::Impl::run(std::string_view line, bool scheduled) {
  Command cmd;
  store::Status st = parse_command(line, cmd);
  std::string text(line.substr(0, std::min<size_t>(line.size(), 200)));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (!st.ok()) {
    finish(text, "", "", 0, st, json::object());
    return st;
  }
  std::unique_lock job(job_mu, std::try_to_lock);
  if (!job.owns_lock()) {
    std::string running_job;
    {
      std::lock_guard lk(state_mu);
      running_job = job_name;
    }
    return store::Status::error(EBUSY, "a backup job is running: " + running_job);
  }
  static const char* names[] = {"full", "incremental", "verify", "verify", "restore", "prune", "delete"};
  std::string name = names[static_cast<int>(cmd.kind)];
  int64_t started = now_ns();
  {
    std::lock_guard lk(state_mu);
    running = true;
    job_name = name;
    job_id = cmd.id;
    phase = "starting";
    job_started = phase_started = started;
    phase_number = 0;
    items_done = items_total = bytes_done = bytes_total = 0;
  }
  std::string message, id = cmd.id;
  std::vector<std::string> changed;
  bool restored = false, skipped = false;
  json detail = json::object();
  try {
    Reporter reporter(*this);
    DirLock lock;
    lock_dir(lock);
    switch (cmd.kind) {
      case Command::Kind::kFull: id = do_backup(false, false, message); break;
      case Command::Kind::kIncremental:
        id = do_backup(true, scheduled, message);
        skipped = id.empty();
        break;
      case Command::Kind::kVerify: do_verify(cmd.id, false, message, detail); break;
      case Command::Kind::kVerifyAll: do_verify("", true, message, detail); break;
      case Command::Kind::kRestore:
        changed = do_restore(cmd.id, cmd.clear, cmd.include, message);
        restored = true;
        break;
      case Command::Kind::kPrune: do_prune(cmd.keep_last, cmd.keep_days, message, detail); break;
      case Command::Kind::kDelete: do_delete(cmd.id, message); break;
    }
  } catch (const JobError& e) {
    st = store::Status::error(e.code() == ENOENT || e.code() == EBUSY || e.code() == ENOTEMPTY ||
                                      e.code() == EACCES || e.code() == ENOSPC || e.code() == EINVAL
                                  ? e.code()
                                  : EIO,
                              e.what());
  } catch (const store::StoreError& e) {
    st = store::Status::error(e.code() == ENOSPC ? ENOSPC : EIO, std::string("store: ") + e.what());
  } catch (const std::filesystem::filesystem_error& e) {
    st = store::Status::error(e.code().value() == ENOSPC ? ENOSPC : EIO, e.what());
  } catch (const std::bad_alloc&) {
    st = store::Status::error(EIO, "out of memory");
  } catch (const std::exception& e) {
    st = store::Status::error(EIO, e.what());
  } catch (...) {
    st = store::Status::error(EIO, "unknown failure");
  }
  if (st.ok()) st.message = message;
  if (skipped) detail["skipped"] = true;
  finish(text, name, id, started, st, detail);
  job.unlock();
  if (st.ok() && restored) {
    std::function<void(const std::vector<std::string>&)> fn;
    {
      std::lock_guard lk(state_mu);
      fn = restore_fn;
    }
    if (fn) {
      try {
        fn(changed);
      } catch (...) {
      }
    }
  }
  return st;
}

store::Status Manager::Impl::repair(const std::string& id, const std::vector<std::string>& ids, RepairReport& report) {
  std::string text = "repair from " + id;
  std::unique_lock job(job_mu, std::try_to_lock);
  if (!job.owns_lock()) return store::Status::error(EBUSY, "a backup job is running");
  int64_t started = now_ns();
  {
    std::lock_guard lk(state_mu);
    running = true;
    job_name = "repair";
    job_id = id;
    phase = "starting";
    job_started = phase_started = started;
    phase_number = 0;
    items_done = items_total = bytes_done = bytes_total = 0;
  }
  store::Status st;
  std::string message;
  try {
    Reporter reporter(*this);
    DirLock lock;
    lock_dir(lock);
    do_repair(id, ids, report, message);
  } catch (const JobError& e) {
    st = store::Status::error(e.code() == ENOENT || e.code() == EBUSY || e.code() == EACCES ? e.code() : EIO,
                              e.what());
  } catch (const store::StoreError& e) {
    st = store::Status::error(EIO, std::string("store: ") + e.what());
  } catch (const std::exception& e) {
    st = store::Status::error(EIO, e.what());
  }
  if (st.ok()) st.message = message;
  finish(text, "repair", id, started, st, json::object());
  return st;
}

void Manager::Impl::finish(const std::string& command, const std::string& name, const std::string& id, int64_t started,
            const store::Status& st, const json& detail) {
  int64_t end = now_ns();
  json r = {{"command", command},
            {"job", name},
            {"ok", st.ok()},
            {"error", errno_name(st.code)},
            {"message", st.message},
            {"finished", iso_time(end)},
            {"duration_ms", started ? (end - started) / 1000000 : 0}};
  if (!id.empty()) r["id"] = id;
  const bool skipped = detail.value("skipped", false);
  if (started) {
    r["items_done"] = items_done.load();
    r["bytes_done"] = bytes_done.load();
  }
  for (auto it = detail.begin(); it != detail.end(); ++it) r[it.key()] = it.value();
  std::function<void(std::string_view)> log;
  {
    std::lock_guard lk(state_mu);
    running = false;
    if (name == "full" || name == "incremental") last_backup = r;
    else if (name == "prune") last_prune = r;
    last = std::move(r);
    log = log_fn;
  }
  if (log) {
    try {
      // A skipped backup's message starts with "skipped: ".
      log("backup: " + command + ": " + (skipped ? "" : st.ok() ? "ok: " : errno_name(st.code) + ": ") + st.message);
    } catch (...) {
    }
  }
}

std::string Manager::Impl::status_json() {
  std::lock_guard lk(state_mu);
  json j;
  if (running) {
    const JobProgress p = progress_locked();
    j = {{"state", "running"},
         {"job", p.job},
         {"phase", p.phase},
         {"items_done", p.items_done},
         {"items_total", p.items_total},
         {"bytes_done", p.bytes_done},
         {"bytes_total", p.bytes_total},
         {"started", iso_time(job_started)},
         {"elapsed_s", p.elapsed_s}};
    if (p.percent >= 0) j["percent"] = p.percent;
    if (p.eta_s >= 0) j["eta_s"] = std::round(p.eta_s * 10) / 10;
    if (!job_id.empty()) j["id"] = job_id;
  } else {
    j = {{"state", "idle"}, {"last", last}};
  }
  if (!last_backup.is_null()) j["last_backup"] = last_backup;
  if (!last_prune.is_null()) j["last_prune"] = last_prune;
  if (sched_every_s > 0) j["schedule"] = {{"every_s", sched_every_s}, {"next", iso_time(sched_next_ns)}};
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

void Manager::Impl::stop_schedule_async() {
  {
    std::lock_guard lk(sched_mu);
    sched_stop = true;
  }
  sched_cv.notify_all();
}

void Manager::Impl::stop_schedule() {
  {
    std::lock_guard lk(sched_mu);
    sched_stop = true;
  }
  sched_cv.notify_all();
  if (sched.joinable()) sched.join();
  std::lock_guard lk(sched_mu);
  sched_stop = false;
}

void Manager::Impl::schedule_loop(std::chrono::seconds every, int keep_last) {
  int64_t every_ns = int64_t(every.count()) * 1000000000;
  int64_t retry_ns = std::min<int64_t>(every_ns, int64_t(600) * 1000000000);
  int64_t last_attempt = 0, last_skip = 0;
  for (;;) {
    std::vector<Found> all;
    try {
      all = scan();
    } catch (...) {
    }
    int64_t due = all.empty() ? now_ns() : all.back().summary.created_ns + every_ns;
    if (last_attempt) due = std::max(due, last_attempt + retry_ns);
    if (last_skip) due = std::max(due, last_skip + every_ns);
    {
      std::lock_guard lk(state_mu);
      sched_next_ns = due;
    }
    {
      std::unique_lock lk(sched_mu);
      auto deadline = std::chrono::system_clock::time_point(
          std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(due)));
      if (sched_cv.wait_until(lk, deadline, [&] { return sched_stop; })) return;
    }
    // Re-read: a manual backup may have happened while we slept.
    try {
      all = scan();
    } catch (...) {
    }
    if (!all.empty() && all.back().summary.created_ns + every_ns > now_ns()) continue;
    if (last_skip && last_skip + every_ns > now_ns()) continue;
    bool full = all.empty() || int(all.back().summary.chain.size()) + 1 > opt.chain_max;
    last_attempt = now_ns();
    store::Status st = run(full ? "full" : "incremental", true);
    if (st.code == EBUSY) {
      last_attempt = now_ns() - retry_ns + int64_t(60) * 1000000000;  // try again in a minute
      continue;
    }
    if (st.ok()) {
      last_attempt = 0;
      bool skipped = false;
      {
        std::lock_guard lk(state_mu);
        skipped = last.is_object() && last.value("skipped", false);
      }
      last_skip = skipped ? now_ns() : 0;
      if (!skipped && keep_last > 0) run("prune keep_last=" + std::to_string(keep_last));
    }
  }
}

}  // namespace itemfs::backup
