// The backup engine's state, shared by its parts: Manager::Impl holds the
// settings, the job and schedule state and the progress counters; its
// methods are defined one concept per file (catalog.cpp: the backup
// directory, scan and lock; create.cpp: a backup; verify.cpp; restore.cpp;
// repair.cpp; prune.cpp: prune and delete; jobs.cpp: running a job, its
// status and progress, the schedule). Internal to backup/.
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "backup/backup.h"
#include "backup/io.h"
#include "backup/manifest.h"
#include "backup/util.h"

namespace itemfs::backup {

namespace fs = std::filesystem;
using json = nlohmann::json;

inline constexpr const char* kManifestFile = "manifest.json";
inline constexpr const char* kVerifyFile = "verify.json";
// The most problems a verify lists (the rest are counted).
inline constexpr size_t kMaxProblems = 20;
// The largest MANIFEST.json read from an archive (a map entry takes about
// 115 bytes: some 9 million items). It is read into memory whole, so a
// header declaring more is refused before anything is allocated.
inline constexpr uint64_t kMaxManifest = uint64_t(1) << 30;

// A directory only the owner may enter: fs::create_directory leaves it to
// the umask.
void make_private_dir(const fs::path& path, std::error_code& ec);

// An opened archive of one backup: the raw file, the decryption layer if
// any, and the tar reader on top.
struct OpenArchive {
  std::unique_ptr<FileSource> raw;
  std::unique_ptr<DecryptSource> dec;
  std::unique_ptr<GunzipSource> gunzip;
  std::unique_ptr<TarReader> tar;
};

struct Manager::Impl {
  // A complete backup as found on disk.
  struct Found {
    Manifest summary;  // header fields only (no item map)
    std::string archive_name;
  };

  struct VerifyResult {
    bool ok = true;
    std::vector<std::string> problems;
    uint64_t more = 0;
    void add(std::string p) {
      ok = false;
      if (problems.size() < kMaxProblems) problems.push_back(std::move(p));
      else ++more;
    }
    std::string first() const { return problems.empty() ? "" : problems.front(); }
    // Encrypted and no key: only the archive file was checked (its .sha256,
    // its header), not what it holds.
    bool contents_checked = true;
  };

  Impl(store::Store& s, Options o) : store(s), opt(std::move(o)) {
    dir = opt.dir.empty() ? store.dir() / "backups" : opt.dir;
  }

  store::Store& store;
  Options opt;
  fs::path dir;

  std::mutex job_mu;       // held while a job runs
  std::mutex progress_mu;  // one call of Options::progress at a time

  // Guarded by state_mu:
  std::mutex state_mu;
  bool running = false;
  std::string job_name, job_id, phase;
  int64_t job_started = 0, phase_started = 0;
  int phase_number = 0;
  json last;  // null until a job finished
  json last_backup, last_prune;  // the last full or incremental, the last prune
  std::function<void(const std::vector<std::string>&)> restore_fn;
  std::function<void(std::string_view)> log_fn;
  std::map<std::string, Manifest> summary_cache;
  int64_t sched_every_s = 0, sched_next_ns = 0;

  std::atomic<uint64_t> items_done{0}, items_total{0}, bytes_done{0}, bytes_total{0};
  std::atomic<bool> cancel{false};

  // Schedule.
  std::thread sched;
  std::mutex sched_mu;
  std::condition_variable sched_cv;
  bool sched_stop = false;

  // ------------------------------------------------------------ jobs.cpp: a job, its progress and result, the schedule

  // A new phase with its own progress: the counters start again at 0.
  void set_phase(const std::string& p, uint64_t total_items, uint64_t total_bytes);

  // The running job's progress (state_mu held).
  JobProgress progress_locked() const;

  // Hands the running job's progress to Options::progress, one call at a
  // time.
  void report_progress();

  // While a job runs: report_progress about ten times a second.
  struct Reporter {
    Impl& impl;
    std::mutex mu;
    std::condition_variable cv;
    bool stop = false;
    std::thread t;
    explicit Reporter(Impl& i) : impl(i) {
      if (!impl.opt.progress) return;
      t = std::thread([this] {
        std::unique_lock lk(mu);
        while (!cv.wait_for(lk, std::chrono::milliseconds(100), [this] { return stop; })) {
          lk.unlock();
          impl.report_progress();
          lk.lock();
        }
      });
    }
    ~Reporter() {
      {
        std::lock_guard lk(mu);
        stop = true;
      }
      cv.notify_all();
      if (t.joinable()) t.join();
    }
  };

  // The same work under another name: the counters go on (and are what the
  // job's result reports when it ends).
  void rename_phase(const std::string& p);

  void check_cancel();

  // `scheduled`: an incremental that would hold nothing is skipped.
  store::Status run(std::string_view line, bool scheduled = false);

  // Manager::repair: a job like run()'s, under the same locks.
  store::Status repair(const std::string& id, const std::vector<std::string>& ids, RepairReport& report);

  void finish(const std::string& command, const std::string& name, const std::string& id, int64_t started,
              const store::Status& st, const json& detail);

  std::string status_json();

  // Wakes the schedule's thread so that it ends (cancel is set); the
  // destructor joins it.
  void stop_schedule_async();

  void stop_schedule();

  void schedule_loop(std::chrono::seconds every, int keep_last);


  // ------------------------------------------------------------ catalog.cpp: the backup directory

  std::unique_ptr<Key> need_key(const std::string& why);

  // Complete backups, oldest first.
  std::vector<Found> scan();

  // The key id of a backup's archive (hex), "" for a plain one. Older
  // manifests do not record it: the archive's header does. An encrypted
  // archive whose header cannot be read gives "?", which matches no key.
  std::string key_id_of(const Found& f);

  static const Found* find(const std::vector<Found>& all, const std::string& id);

  OpenArchive open_archive(const Found& f, const Key* key);

  // The complete manifest (with the item map) of a backup.
  Manifest full_manifest(const Found& f, const Key* key);

  // Takes the job lock of the backup directory (this process and others).
  struct DirLock {
    int fd = -1;
    ~DirLock() {
      if (fd >= 0) ::close(fd);
    }
  };

  void lock_dir(DirLock& lock);

  // The item map of backup `f`, sorted by id, and its header fields.
  void sorted_map(const Found& f, const Key* key, Manifest& header, std::vector<MapEntry>& items);

  // MANIFEST.json, the first entry of an open archive, whole. Memory follows
  // the bytes really read, never the size the tar header declares, and
  // stops at `limit` (a manifest.json beside the archive must be the same
  // bytes; else kMaxManifest).
  static std::string read_manifest_entry(TarReader& tar, const std::string& what, uint64_t limit = kMaxManifest);

  std::unique_ptr<Key> key_if_needed(const std::vector<const Found*>& backups, const std::string& why);

  void remove_backup(const std::string& id);

  // ------------------------------------------------------------ create_plan.cpp, create_archive.cpp: a backup

  // Takes a backup and returns its id; with skip_unchanged, an incremental
  // that would hold nothing (no item added, changed or removed since its
  // parent) is not written: "" is returned and `message` says so.
  std::string do_backup(bool incremental, bool skip_unchanged, std::string& message);

  // Its steps, in order (create.h: Build holds what each leaves for the
  // next). create_plan.cpp: which parent (and its map read on a second
  // core), the store's items, the new backup's id and header, its map.
  struct Build;
  void choose_parent(Build& b);
  void scan_store(Build& b);
  void name_backup(Build& b);
  void map_items(Build& b);
  bool map_by_parent_lines(Build& b);
  // create_archive.cpp: the archive with manifest.json beside it, then the
  // sidecar, the fsyncs and the rename into place.
  void write_archive(Build& b);
  void seal_backup(Build& b);

  // A backup cannot hold an item whose stored content is damaged: it says
  // which, and how to repair it.
  JobError damaged_item(const std::string& iid, const std::string& why);

  // ------------------------------------------------------------ verify.cpp

  VerifyResult verify_one(const Found& f, const std::vector<Found>& all, const Key* key);

  void verify_contents(TarReader& tar, const Found& f, VerifyResult& r);

  std::string verify_message(const std::string& id, const VerifyResult& r);

  // What verifying these backups reads: their archived items.
  static uint64_t total_items(const std::vector<const Found*>& backups);
  static uint64_t total_bytes(const std::vector<const Found*>& backups);

  void do_verify(const std::string& id, bool every, std::string& message, json& detail);

  // ------------------------------------------------------------ restore.cpp

  // Holds one item's bytes for WriteBatch::put, which needs a seekable
  // stream: in memory up to kSpoolInMemory, else in a temp file.
  std::unique_ptr<std::istream> spool(TarReader& tar, uint64_t size, Sha256Hasher& h, const fs::path& spool_dir,
                                      uint64_t& got);

  // Whether the stored bytes of `info` are the ones its sha256 names. A
  // store that finds a chunk damaged says so with StoreError(EIO); bytes of
  // another hash are damage too.
  bool reads_right(store::Snapshot& snap, const store::ItemInfo& info);

  // The current tar entry's bytes, which must be item `im`'s (checked), in
  // memory: at most the store's largest item.
  std::string read_entry(TarReader& tar, const ItemMeta& im, const std::string& what);

  // Keeps in `m.items` only the items that `include` chooses (see
  // Command::include); ENOENT naming a pattern that chooses nothing.
  static void choose_items(Manifest& m, const std::vector<std::string>& include);

  std::vector<std::string> do_restore(const std::string& id, bool clear, const std::vector<std::string>& include,
                                      std::string& message);

  // ------------------------------------------------------------ repair.cpp

  // Rewrites the stored content of the damaged items `ids` from backup
  // `id` (Manager::repair).
  void do_repair(const std::string& id, const std::vector<std::string>& ids, RepairReport& report,
                 std::string& message);

  // ------------------------------------------------------------ prune.cpp: prune and delete

  void do_delete(const std::string& id, std::string& message);

  void do_prune(int keep_last, int keep_days, std::string& message, json& detail);

  // "deleted 3: A, B, C; kept 6: the 2 newest and the 4 their chains need".
  static std::string prune_message(const std::vector<std::string>& gone, size_t kept, size_t newest, size_t recent,
                                   int keep_days);
};

}  // namespace itemfs::backup
