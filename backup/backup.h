// itemfs backups: point-in-time archives of a store that need no itemfs to
// restore.
//
// The contract:
//  - A backup is one plain tar.gz (optionally wrapped in AES-256-GCM, see
//    docs/FORMAT.md §3) holding MANIFEST.json, SHA256SUMS and
//    items/<shard>/<id>.json with each item's exact bytes, mode, owner and
//    mtime. A full backup holds every item; an incremental holds the items
//    whose sha256, mode, owner or mtime differ from its parent (the newest
//    backup when it was taken) and lists the ids deleted since. Every
//    MANIFEST.json carries the complete id -> {sha256, size, mode, mtime} map
//    of the store at that moment, and for each id the backup whose archive
//    holds those bytes.
//  - On disk, backup ID is the directory DIR/ID/ with manifest.json,
//    ID.tar.gz (or ID.tar.gz.enc), a sidecar "<archive>.sha256" in
//    `sha256sum -c` form and, once verified, verify.json. A backup is written
//    under DIR/.tmp-ID/, fsynced and renamed into place: a directory without
//    a leading dot is always complete. Ids sort by creation time.
//  - A backup reads one store::Snapshot, so it is one point in time and
//    writers never wait for it.
//  - A restore verifies the archives of the chain first, then applies the
//    chain in ONE store write batch: a crash leaves the old state or the new
//    one. It writes nothing but store items, whatever the archive says.
//  - One job at a time per backup directory, also across processes (a lock
//    file); a second one fails with EBUSY. Memory use does not grow with item
//    or archive sizes (metadata of the items is held, never their bytes).
//  - Every method is thread-safe and none throws; failures are Status values
//    (EINVAL bad command, EBUSY, EIO with a sentence that status_json repeats).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/store.h"

namespace itemfs::backup {

// MANIFEST.json's format_version, as written. Format 1 manifests (one JSON
// object per item) are still read: verified, restored and used as parents.
inline constexpr int kFormatVersion = 2;

// Where a running job is. A phase has its own counters (they start again at
// 0); percent and eta_s are for the phase, from its bytes when it counts
// bytes, else its items; -1 when unknown.
struct JobProgress {
  std::string job;    // "full", "incremental", "verify", "restore", "prune", ...
  std::string phase;  // "scanning", "writing archive", "verifying", "restoring", ...
  std::string id;     // the backup it is about, once known
  int phase_number = 0;  // 1, 2, ...: a new one with each new set of counters
  uint64_t items_done = 0, items_total = 0, bytes_done = 0, bytes_total = 0;
  double elapsed_s = 0;        // since the job started
  double phase_elapsed_s = 0;  // since the phase started
  int percent = -1;
  double eta_s = -1;
};

// Sets p.percent and p.eta_s from its counters and phase_elapsed_s: the
// phase's bytes when it counts them, else its items; the time left at the
// rate so far, once the phase has run 0.2 s and done something. Pure.
void estimate(JobProgress& p);

struct Options {
  // Where backups live; empty means STORE/backups.
  std::filesystem::path dir;
  // 32 raw bytes or 64 hex digits. When set, new archives are encrypted and
  // encrypted ones can be verified and restored.
  std::optional<std::filesystem::path> key_file;
  // Scheduled backups take a full backup instead of an incremental when the
  // chain (full + incrementals) would get longer than this.
  int chain_max = 7;
  // zlib level of the gzip layer (1 fastest .. 9 smallest). 4 is about twice
  // as fast as 6 for ~10% larger archives of JSON.
  int gzip_level = 4;
  // Progress of a running job (see JobProgress): called at the start of each
  // phase and about ten times a second while it runs, one call at a time,
  // from the job's thread or a reporter thread; never after run() returned.
  // Must not call back into the Manager.
  std::function<void(const JobProgress&)> progress;
  // Called on the job's thread at the start of each phase, with its name,
  // before its work. May block (the job waits); for tests that look at a
  // running job. Empty in the product.
  std::function<void(std::string_view phase)> phase_hook;
};

struct FileEntry {
  std::string name;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
};

struct BackupEntry {
  std::string id;
  std::vector<FileEntry> files;  // manifest.json, the archive, its .sha256, verify.json
  // From manifest.json / verify.json:
  std::string kind;    // "full" | "incremental"
  std::string parent;  // "" for a full backup
  int64_t created_ns = 0;
  bool encrypted = false;
  uint64_t item_count = 0;      // items in the store at that moment
  uint64_t archived_count = 0;  // items whose bytes are in this archive
  int64_t verified_ns = 0;      // 0: never verified
  bool verified_ok = false;
};

// One parsed ctl command line.
struct Command {
  enum class Kind { kFull, kIncremental, kVerify, kVerifyAll, kRestore, kPrune, kDelete };
  Kind kind = Kind::kFull;
  std::string id;            // verify / restore / delete
  bool clear = false;        // restore ID clear
  // restore ID PATTERN...: only the items whose path in the archive
  // (items/<shard>/<id>.json) or one of its directories matches one of these
  // globs (fnmatch, '*' does not cross '/'); empty: every item.
  std::vector<std::string> include;
  int keep_last = 0;         // prune; 0 = not by count
  int keep_days = 0;         // prune; 0 = not by age
};

// What Manager::repair did, item by item.
struct RepairReport {
  std::vector<std::string> repaired;      // ids whose stored content reads right again
  std::vector<std::string> not_repaired;  // "id: why", one line each
};

// Parses one command line (one trailing "\n" or "\r\n" allowed):
//   full | incremental | verify ID | verify all
//   | restore ID [clear | PATTERN...] (patterns start with "items")
//   | prune [keep_last=N] [keep_days=D] (at least one) | delete ID
// EINVAL with a sentence on anything else. Pure; never throws.
store::Status parse_command(std::string_view line, Command& out);

// True when `id` has the shape of a backup id (so it is safe as a file name).
bool valid_backup_id(std::string_view id);

// Writes the plain tar.gz inside an encrypted archive to `out`. Fails (EIO /
// EACCES for a wrong key) if any chunk was tampered with or the file is
// truncated; bytes already written to `out` must then be discarded.
store::Status decrypt(const std::filesystem::path& archive, const std::filesystem::path& key_file,
                      std::ostream& out);

class Manager {
 public:
  Manager(store::Store& store, Options options);
  ~Manager();  // stops the schedule; waits for (and cancels) a running job
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  // Cancels the running job and every later one (they fail with
  // ECANCELED within moments: every loop of a job checks for it) and stops
  // the schedule. For shutting down: the daemon calls it when it is asked
  // to unmount, so that a job never holds the exit up. Thread-safe; does
  // not wait.
  void cancel();

  // Runs one ctl command line synchronously. EINVAL bad command, EBUSY while
  // another job runs (here or in another process), ENOENT unknown backup,
  // EIO on failure; status_json() says why.
  store::Status run(std::string_view command_line);

  // Repairs the stored content of items `ids` (damaged: their stored bytes
  // do not match their recorded sha256, as store::FsckReport::damaged_items
  // lists them) from backup `backup_id` and its chain: an item whose
  // recorded sha256 the backup holds is rewritten from the archive's bytes
  // (store::WriteBatch::repair_blobs), after the archives it reads from were
  // verified. The others are listed with why: not in the backup, or the
  // backup holds another version of it (going back to that version is a
  // restore, the user's choice). A job like run()'s (EBUSY, status_json);
  // ENOENT unknown backup, EACCES an encrypted one without the key, EIO.
  store::Status repair(std::string_view backup_id, const std::vector<std::string>& ids, RepairReport& out);

  // Whether a job runs now (in this process).
  bool job_running();

  // {"state":"running", "job":..., "phase":..., "items_done":..,
  //  "items_total":.., "bytes_done":..,"bytes_total":.., "percent":..,
  //  "eta_s":..} while a job runs (percent and eta_s once known), else
  // {"state":"idle"}; both with "last" (the last job's result, when one
  // ended), "last_backup" (the last full or incremental, taken or skipped)
  // and "last_prune" (the last prune), so a prune that follows a backup
  // does not hide what the backup did. Ends in "\n".
  std::string status_json();

  // Complete backups only, oldest first.
  std::vector<BackupEntry> list();

  // The real file behind DIR/<id>/<file>, for serving read-only; empty if
  // there is no such backup or file.
  std::filesystem::path path_of(std::string_view id, std::string_view file);

  // Called after a restore committed, with the ids whose content, attributes
  // or existence changed (so caches can be invalidated). Not under any lock.
  void on_restore(std::function<void(const std::vector<std::string>& changed_ids)> fn);
  // Called with one line per finished job (success or failure), for the log.
  void on_log(std::function<void(std::string_view line)> fn);

  // Starts a background thread that takes a backup whenever the newest one is
  // older than `every` (an incremental; a full when there is none or the chain
  // would exceed chain_max), then prunes to keep_last (0: no pruning). An
  // incremental that would hold nothing (no item added, changed or removed
  // since its parent) is skipped: no archive, a log line saying so, and the
  // next try `every` later. A job that finds another running retries a
  // minute later. Replaces an earlier schedule.
  void start_schedule(std::chrono::seconds every, int keep_last);

  const std::filesystem::path& dir() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace itemfs::backup
