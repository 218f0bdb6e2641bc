// Manager: runs backup jobs (backup.h has the contract).
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>
#include <unordered_set>

#include "backup/backup.h"
#include "backup/io.h"
#include "backup/manifest.h"
#include "backup/util.h"

namespace itemfs::backup {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kManifestFile = "manifest.json";
constexpr const char* kVerifyFile = "verify.json";
constexpr uint64_t kSpoolInMemory = 1 << 20;
constexpr size_t kMaxProblems = 20;
// gzip level of an incremental's MANIFEST.json and SHA256SUMS (see do_backup).
constexpr int kManifestLevelIncremental = 0;
// gzip level of an incremental's items (at most opt.gzip_level). Its
// archive is mostly the stored map; level 1 makes the items' part about 12%
// larger than level 4 (1.34 vs 1.20 MB for 1% of the 100k corpus) and takes
// two thirds of the time.
constexpr int kItemsLevelIncremental = 1;
// An incremental's items, compressed, are kept in memory up to this size
// (then in a file) until they follow the manifest into the archive.
constexpr size_t kSegmentInMemory = 8 << 20;
// MANIFEST.json and manifest.json are written in pieces of this size.
constexpr size_t kManifestPiece = 1 << 20;
// The largest MANIFEST.json read from an archive (a map entry takes about
// 115 bytes: some 9 million items). It is read into memory whole, so a
// header declaring more is refused before anything is allocated.
constexpr uint64_t kMaxManifest = uint64_t(1) << 30;

struct FileCloser {
  void operator()(std::FILE* f) const {
    if (f) std::fclose(f);
  }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

File open_write(const fs::path& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, kPrivateFileMode);
  if (fd < 0) throw_errno("cannot create", path, errno);
  File f(::fdopen(fd, "wb"));
  if (!f) {
    int err = errno;
    ::close(fd);
    throw_errno("cannot create", path, err);
  }
  return f;
}

// A directory only the owner may enter: fs::create_directory leaves it to
// the umask.
void make_private_dir(const fs::path& path, std::error_code& ec) {
  if (::mkdir(path.c_str(), kPrivateDirMode) != 0) {
    ec.assign(errno, std::generic_category());
    return;
  }
  ::chmod(path.c_str(), kPrivateDirMode);
  ec.clear();
}

std::string read_whole_file(const fs::path& path) {
  uint64_t size = 0;
  int fd = open_regular(path, &size);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  // Its size at open, and what it holds then: a file that grows meanwhile
  // is not followed.
  std::string text(static_cast<size_t>(size), '\0');
  size_t got = 0;
  for (;;) {
    if (got == text.size()) break;
    ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("cannot read", path, errno);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  text.resize(got);
  return text;
}

void close_synced(File& f, const fs::path& path) {
  if (std::fflush(f.get()) != 0 || ::fsync(::fileno(f.get())) != 0) throw_errno("cannot write", path, errno);
  std::FILE* raw = f.release();
  if (std::fclose(raw) != 0) throw_errno("cannot close", path, errno);
}

// A file read through a private read-only mapping: its pages are the page
// cache's, not copied into fresh memory. For the manifests of complete
// backups, which are never written again.
class MappedFile {
 public:
  explicit MappedFile(const fs::path& path) {
    uint64_t size = 0;
    int fd = open_regular(path, &size);
    size_ = static_cast<size_t>(size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
      if (p == MAP_FAILED) {
        int err = errno;
        ::close(fd);
        throw_errno("cannot map", path, err);
      }
      data_ = static_cast<const char*>(p);
    }
    ::close(fd);
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<char*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::string_view text() const { return {data_, size_}; }

 private:
  const char* data_ = nullptr;
  size_t size_ = 0;
};

// manifest.json beside the archive, written a piece at a time; close()
// starts its writeback (the fsync comes later).
class ManFile {
 public:
  explicit ManFile(const fs::path& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, kPrivateFileMode);
    if (fd_ < 0) throw_errno("cannot create", path, errno);
  }
  ~ManFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  void write(std::string_view data) {
    if (int err = write_all(fd_, data.data(), data.size())) throw_errno("cannot write", path_, err);
  }
  void close() {
    ::sync_file_range(fd_, 0, 0, SYNC_FILE_RANGE_WRITE);  // a hint: failure is harmless
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw_errno("cannot close", path_, errno);
  }

 private:
  fs::path path_;
  int fd_ = -1;
};

// One store item of a backup being made. Its id is in a buffer shared by
// all rows; its line of the new map is in the parent's manifest.json
// (in_parent) or in a buffer of new lines.
struct Row {
  ItemMeta meta;
  int64_t ino = 0;
  uint64_t id_off = 0;
  uint64_t line_off = 0;
  uint32_t id_len = 0;
  uint32_t line_len = 0;
  bool in_parent = false;
};

// Streams the data of the current tar entry.
class EntryBuf : public std::streambuf {
 public:
  explicit EntryBuf(TarReader& r) : r_(r), buf_(64 * 1024) {}

 protected:
  int_type underflow() override {
    size_t n = r_.read(buf_.data(), buf_.size());
    if (n == 0) return traits_type::eof();
    setg(buf_.data(), buf_.data(), buf_.data() + n);
    return traits_type::to_int_type(buf_[0]);
  }

 private:
  TarReader& r_;
  std::vector<char> buf_;
};

// Adds `data` to the archive as one entry.
void add_memory_entry(TarWriter& tw, const std::string& name, std::string_view data, int64_t mtime_ns) {
  tw.begin(name, data.size(), 0644, static_cast<uint32_t>(::getuid()), static_cast<uint32_t>(::getgid()), mtime_ns);
  constexpr size_t kStep = 1 << 20;
  for (size_t at = 0; at < data.size(); at += kStep) {
    size_t n = std::min(kStep, data.size() - at);
    tw.data(data.data() + at, n);
  }
  tw.end();
}

// An opened archive of one backup: the raw file, the decryption layer if
// any, and the tar reader on top.
struct OpenArchive {
  std::unique_ptr<FileSource> raw;
  std::unique_ptr<DecryptSource> dec;
  std::unique_ptr<GunzipSource> gunzip;
  std::unique_ptr<TarReader> tar;
};

// Items handed from the store-reading thread to the archive-writing one,
// bounded in bytes.
struct Piece {
  enum Kind { kBegin, kData, kEnd };
  Kind kind = kBegin;
  store::ItemInfo info;  // kBegin
  std::string data;      // kData
};

class PieceQueue {
 public:
  struct Aborted {};
  static constexpr size_t kMaxBytes = 8 << 20;

  void push(Piece p) {
    std::unique_lock lk(mu_);
    room_.wait(lk, [&] { return aborted_ || bytes_ < kMaxBytes; });
    if (aborted_) throw Aborted{};
    bytes_ += p.data.size();
    q_.push_back(std::move(p));
    ready_.notify_one();
  }
  // False at the end; rethrows the producer's failure.
  bool pop(Piece& out) {
    std::unique_lock lk(mu_);
    ready_.wait(lk, [&] { return !q_.empty() || done_; });
    if (q_.empty()) {
      if (error_) std::rethrow_exception(error_);
      return false;
    }
    out = std::move(q_.front());
    q_.pop_front();
    bytes_ -= out.data.size();
    room_.notify_one();
    return true;
  }
  void finish(std::exception_ptr e) {
    std::lock_guard lk(mu_);
    done_ = true;
    error_ = e;
    ready_.notify_all();
  }
  void abort() {
    std::lock_guard lk(mu_);
    aborted_ = true;
    room_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable room_, ready_;
  std::deque<Piece> q_;
  size_t bytes_ = 0;
  bool done_ = false, aborted_ = false;
  std::exception_ptr error_;
};

bool same_meta(const ItemMeta& a, const ItemMeta& b) {
  return a.sha256 == b.sha256 && a.size == b.size && a.mode == b.mode && a.uid == b.uid && a.gid == b.gid &&
         a.mtime_ns == b.mtime_ns;
}

ItemMeta meta_of(const store::ItemInfo& info) {
  ItemMeta m;
  m.sha256 = info.sha256;
  m.size = info.size;
  m.mode = info.attrs.mode;
  m.uid = info.attrs.uid;
  m.gid = info.attrs.gid;
  m.mtime_ns = info.attrs.mtime_ns;
  return m;
}

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

std::string human_bytes(uint64_t b) {
  char buf[32];
  if (b < 10 * 1024) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
  else if (b < 10ull * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.1f KiB", double(b) / 1024);
  else if (b < 10ull * 1024 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.1f MiB", double(b) / 1048576);
  else std::snprintf(buf, sizeof buf, "%.1f GiB", double(b) / 1073741824);
  return buf;
}

}  // namespace

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

  // ------------------------------------------------------------ helpers

  // A new phase with its own progress: the counters start again at 0.
  void set_phase(const std::string& p, uint64_t total_items, uint64_t total_bytes) {
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
    hold_for_tests();
    if (opt.phase_hook) opt.phase_hook(p);
    report_progress();
  }

  // The running job's progress (state_mu held).
  JobProgress progress_locked() const {
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

  // Hands the running job's progress to Options::progress, one call at a
  // time.
  void report_progress() {
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

  // The mount tests look at a running job (its status, EBUSY for a second
  // one) without racing its end: while the file named by ITEMFS_TEST_HOLD_JOBS
  // exists, each phase waits at its start (for at most two minutes).
  void hold_for_tests() {
    static const char* const hold_file = std::getenv("ITEMFS_TEST_HOLD_JOBS");
    if (!hold_file) return;
    for (int i = 0; i < 12000 && ::access(hold_file, F_OK) == 0; ++i) {
      check_cancel();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  // The same work under another name: the counters go on (and are what the
  // job's result reports when it ends).
  void rename_phase(const std::string& p) {
    {
      std::lock_guard lk(state_mu);
      phase = p;
    }
    report_progress();
  }

  void check_cancel() {
    if (cancel.load(std::memory_order_relaxed)) throw JobError(ECANCELED, "cancelled: itemfs is shutting down");
  }

  std::unique_ptr<Key> need_key(const std::string& why) {
    if (!opt.key_file) throw JobError(EACCES, why + " needs the backup key (backup_key=FILE)");
    return load_key(*opt.key_file);
  }

  // Complete backups, oldest first.
  std::vector<Found> scan() {
    std::vector<Found> out;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return out;
    std::map<std::string, Manifest> cache;
    {
      std::lock_guard lk(state_mu);
      cache = summary_cache;
    }
    std::map<std::string, Manifest> fresh;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::string name = it->path().filename().string();
      if (!valid_backup_id(name)) continue;
      fs::path mpath = it->path() / kManifestFile;
      Found f;
      auto c = cache.find(name);
      if (c != cache.end() && fs::exists(mpath, ec)) {
        f.summary = c->second;
      } else {
        try {
          read_manifest_file(mpath, true, f.summary);
        } catch (const std::exception&) {
          continue;  // incomplete or foreign directory
        }
        if (f.summary.id != name) continue;
      }
      f.archive_name = name + (f.summary.encrypted ? ".tar.gz.enc" : ".tar.gz");
      fresh[name] = f.summary;
      out.push_back(std::move(f));
    }
    std::sort(out.begin(), out.end(), [](const Found& a, const Found& b) {
      return a.summary.created_ns != b.summary.created_ns ? a.summary.created_ns < b.summary.created_ns
                                                          : a.summary.id < b.summary.id;
    });
    std::lock_guard lk(state_mu);
    summary_cache = std::move(fresh);
    return out;
  }

  // The key id of a backup's archive (hex), "" for a plain one. Older
  // manifests do not record it: the archive's header does. An encrypted
  // archive whose header cannot be read gives "?", which matches no key.
  std::string key_id_of(const Found& f) {
    if (!f.summary.encrypted) return "";
    if (!f.summary.key_id.empty()) return f.summary.key_id;
    std::string id = archive_key_id(dir / f.summary.id / f.archive_name);
    return id.empty() ? "?" : id;
  }

  static const Found* find(const std::vector<Found>& all, const std::string& id) {
    for (const auto& f : all) {
      if (f.summary.id == id) return &f;
    }
    return nullptr;
  }

  OpenArchive open_archive(const Found& f, const Key* key) {
    OpenArchive a;
    a.raw = std::make_unique<FileSource>(dir / f.summary.id / f.archive_name, true, &cancel);
    ByteSource* src = a.raw.get();
    if (f.summary.encrypted) {
      if (!key) throw JobError(EACCES, "backup " + f.summary.id + " is encrypted and needs the backup key");
      a.dec = std::make_unique<DecryptSource>(*a.raw, *key, f.archive_name);
      src = a.dec.get();
    }
    a.gunzip = std::make_unique<GunzipSource>(*src);
    a.tar = std::make_unique<TarReader>(*a.gunzip, TarReader::Input::kPlainTar);
    return a;
  }

  // The complete manifest (with the item map) of a backup.
  Manifest full_manifest(const Found& f, const Key* key) {
    Manifest m;
    if (!f.summary.encrypted) {
      read_manifest_file(dir / f.summary.id / kManifestFile, false, m);
    } else {
      OpenArchive a = open_archive(f, key);
      std::istringstream in(read_manifest_entry(*a.tar, f.summary.id));
      read_manifest(in, false, m, f.summary.id + ": MANIFEST.json");
    }
    if (m.id != f.summary.id) throw JobError(EIO, f.summary.id + ": manifest names another backup " + m.id);
    return m;
  }

  // Takes the job lock of the backup directory (this process and others).
  struct DirLock {
    int fd = -1;
    ~DirLock() {
      if (fd >= 0) ::close(fd);
    }
  };

  void lock_dir(DirLock& lock) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      fs::create_directories(dir.parent_path(), ec);
      make_private_dir(dir, ec);
      if (ec && ec.value() != EEXIST) throw_errno("cannot create the backup directory", dir, ec.value());
    }
    fs::path p = dir / ".lock";
    lock.fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, kPrivateFileMode);
    if (lock.fd < 0) throw_errno("cannot open", p, errno);
    if (::flock(lock.fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) throw JobError(EBUSY, "another process is running a backup job in " + dir.string());
      throw_errno("cannot lock", p, errno);
    }
    // Leftovers of an interrupted job (we hold the lock, so nobody owns them).
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::string name = it->path().filename().string();
      if (name.rfind(".tmp-", 0) == 0 || name.rfind(".del-", 0) == 0) {
        std::error_code ec2;
        fs::remove_all(it->path(), ec2);
      }
    }
  }

  // ------------------------------------------------------------ backup

  // The item map of backup `f`, sorted by id, and its header fields.
  void sorted_map(const Found& f, const Key* key, Manifest& header, std::vector<MapEntry>& items) {
    if (!f.summary.encrypted) {
      fs::path p = dir / f.summary.id / kManifestFile;
      read_manifest_sorted(read_whole_file(p), header, items, p.string());
    } else {
      header = full_manifest(f, key);
      items.clear();
      items.reserve(header.items.size());
      for (auto& [iid, im] : header.items) items.push_back({iid, im});
      header.items.clear();
      std::sort(items.begin(), items.end(), [](const MapEntry& a, const MapEntry& b) { return a.id < b.id; });
    }
    if (header.id != f.summary.id) throw JobError(EIO, f.summary.id + ": manifest names another backup " + header.id);
  }

  // Takes a backup and returns its id; with skip_unchanged, an incremental
  // that would hold nothing (no item added, changed or removed since its
  // parent) is not written: "" is returned and `message` says so.
  std::string do_backup(bool incremental, bool skip_unchanged, std::string& message) {
    auto all = scan();
    std::unique_ptr<Key> key;
    if (opt.key_file) key = load_key(*opt.key_file);

    // An incremental reads its parent's map on a second core while this one
    // reads the store. manifest.json is mapped, not copied, and in the
    // layout itemfs writes only its header is parsed: the lines of the
    // unchanged items are compared with the store's and copied as they are.
    const Found* parent = nullptr;
    Manifest parent_header;
    std::unique_ptr<MappedFile> parent_file;
    LayoutCursor cursor;
    bool by_lines = false;               // cursor is open on parent_file
    std::vector<MapEntry> parent_items;  // otherwise: the parsed map, sorted by id
    std::exception_ptr parent_error;
    std::thread parent_reader;
    struct ParentJoiner {
      std::thread& t;
      ~ParentJoiner() {
        if (t.joinable()) t.join();
      }
    } join_parent{parent_reader};
    // An incremental holds only what changed: it chains onto a backup
    // encrypted with the same key, or onto a plain one when there is no
    // key, never across (the unchanged items would stay in clear, or under
    // another key). Anything else starts a new full backup.
    const std::string key_id = key ? hex(key->id.data(), key->id.size()) : "";
    std::string why_full;
    if (incremental && !all.empty()) {
      const std::string parent_key_id = key_id_of(all.back());
      if (parent_key_id != key_id) {
        why_full = parent_key_id.empty() ? "the newest backup is not encrypted and a backup key is given"
                   : key_id.empty()      ? "the newest backup is encrypted and no backup key is given"
                                         : "the backup key is not the one the newest backup was encrypted with";
      }
    }
    bool incr = incremental && !all.empty() && why_full.empty();
    if (incr) {
      parent = &all.back();
      const Key* k = key.get();
      parent_reader = std::thread([&, k] {
        try {
          if (!parent->summary.encrypted) {
            fs::path p = dir / parent->summary.id / kManifestFile;
            parent_file = std::make_unique<MappedFile>(p);
            by_lines = cursor.open(parent_file->text(), parent_header) && parent_header.has_defaults;
            if (!by_lines) {
              parent_header = Manifest{};
              read_manifest_sorted(parent_file->text(), parent_header, parent_items, p.string());
            }
            if (parent_header.id != parent->summary.id) {
              throw JobError(EIO, parent->summary.id + ": manifest names another backup " + parent_header.id);
            }
          } else {
            sorted_map(*parent, k, parent_header, parent_items);
          }
        } catch (...) {
          parent_error = std::current_exception();
        }
      });
    }

    int64_t created = now_ns();
    if (!all.empty()) created = std::max(created, all.back().summary.created_ns + 1);
    auto snap = store.snapshot();

    // Pass 1: the store's items (metadata only), read in table order (one
    // pass over the table's pages, no index walk), then put in id order.
    // The ids share one buffer: a string each would be an allocation each.
    set_phase("scanning", 0, 0);
    std::string ids;
    std::vector<Row> rows;
    // Room for as many items as the newest backup saw, and a few more: the
    // vector then need not grow (and move every row) while it is filled. A
    // hint only, so bounded whatever that manifest says.
    if (!all.empty()) {
      uint64_t seen = std::min<uint64_t>(all.back().summary.item_count, uint64_t(1) << 20);
      rows.reserve(seen + seen / 16 + 64);
      ids.reserve((seen + seen / 16 + 64) * 20);
    }
    store::Store::scan_items(*snap, [&](const store::ItemInfo& info) {
      check_cancel();
      Row& r = rows.emplace_back();
      r.meta = meta_of(info);
      r.ino = info.ino;
      r.id_off = ids.size();
      r.id_len = static_cast<uint32_t>(info.id.size());
      ids += info.id;
      items_done.fetch_add(1, std::memory_order_relaxed);
    });
    auto id_of = [&ids](const Row& r) { return std::string_view(ids.data() + r.id_off, r.id_len); };
    // The store item a row stands for, to read its bytes.
    auto item_of = [&id_of](const Row& r) {
      store::ItemInfo info;
      info.ino = r.ino;
      info.id = id_of(r);
      info.size = r.meta.size;
      info.attrs = {r.meta.mode, r.meta.uid, r.meta.gid, r.meta.mtime_ns};
      info.sha256 = r.meta.sha256;
      return info;
    };
    auto by_id = [&](const Row& a, const Row& b) { return id_of(a) < id_of(b); };
    if (!std::is_sorted(rows.begin(), rows.end(), by_id)) std::sort(rows.begin(), rows.end(), by_id);
    if (parent_reader.joinable()) parent_reader.join();
    if (parent_error) std::rethrow_exception(parent_error);
    if (incr && parent_header.chain != parent->summary.chain) {
      throw JobError(EIO, parent->summary.id + ": manifest.json changed while it was read");
    }

    std::string base = compact_time(created) + (incr ? "-incr" : "-full");
    std::string id = base;
    std::error_code ec;
    for (int n = 2; fs::exists(dir / id, ec) || fs::exists(dir / (".tmp-" + id), ec); ++n) {
      id = base + "-" + std::to_string(n);
    }
    {
      std::lock_guard lk(state_mu);
      job_id = id;
    }

    fs::path tmp = dir / (".tmp-" + id);
    make_private_dir(tmp, ec);
    if (ec) throw_errno("cannot create", tmp, ec.value());
    struct Cleanup {
      fs::path p;
      bool armed = true;
      ~Cleanup() {
        std::error_code e;
        if (armed) fs::remove_all(p, e);
      }
    } cleanup{tmp};

    Manifest m;
    m.format_version = kFormatVersion;
    m.id = id;
    m.kind = incr ? "incremental" : "full";
    m.parent = incr ? parent->summary.id : "";
    m.created_ns = created;
    m.encrypted = key != nullptr;
    m.key_id = key_id;
    m.chain = incr ? parent->summary.chain : std::vector<std::string>{};
    m.chain.push_back(id);
    const auto self = static_cast<uint32_t>(m.chain.size() - 1);
    {
      // Attributes that the most items share are the map's defaults, which
      // item entries leave out.
      std::map<std::tuple<uint32_t, uint32_t, uint32_t>, size_t> attrs;
      for (const Row& r : rows) ++attrs[{r.meta.mode, r.meta.uid, r.meta.gid}];
      size_t best = 0;
      for (const auto& [a, n] : attrs) {
        if (n > best) {
          best = n;
          std::tie(m.default_mode, m.default_uid, m.default_gid) = a;
        }
      }
    }

    // Against the parent's map, also in id order: an item whose bytes and
    // attributes the parent's map has keeps the archive named there; every
    // other one goes into this archive. Ids only the parent has are deleted.
    // Every entry's line of the new map is the parent's (r.in_parent), or
    // is written into `lines`.
    std::string lines;
    auto new_line = [&](Row& r) {
      r.in_parent = false;
      r.line_off = lines.size();
      ManifestWriter::line(lines, id_of(r), r.meta, m.default_mode, m.default_uid, m.default_gid);
      r.line_len = static_cast<uint32_t>(lines.size() - r.line_off);
    };
    // By the parent's lines: with the same item_defaults, an item is
    // unchanged exactly when the parent's line is the one this map would
    // have for it with the parent's archive index (the chain up to the
    // parent is the same).
    if (by_lines && (parent_header.default_mode != m.default_mode || parent_header.default_uid != m.default_uid ||
                     parent_header.default_gid != m.default_gid)) {
      by_lines = false;
      parent_header = Manifest{};
      fs::path p = dir / parent->summary.id / kManifestFile;
      read_manifest_sorted(parent_file->text(), parent_header, parent_items, p.string());
    }
    if (by_lines) {
      lines.reserve(rows.size() / 32 * 128 + 4096);
      const std::string_view ptext = parent_file->text();
      const auto parent_chain = static_cast<uint32_t>(parent_header.chain.size());
      std::string want;
      // The parent's archive index of `line` if it is the entry of `r`.
      auto put_num = [](std::string& out, auto v) {
        char digits[24];
        out.append(digits, std::to_chars(digits, digits + sizeof digits, v).ptr);
      };
      auto kept_archive = [&](const Row& r, std::string_view line, uint32_t& archive) {
        want.clear();
        append_json_string(want, id_of(r));
        want += ":[\"";
        append_hex(want, r.meta.sha256.data(), r.meta.sha256.size());
        want += "\",";
        put_num(want, r.meta.size);
        want += ',';
        put_num(want, r.meta.mtime_ns);
        want += ',';
        if (line.substr(0, want.size()) != want) return false;
        size_t p = want.size(), start = p;
        uint64_t a = 0;
        while (p < line.size() && line[p] >= '0' && line[p] <= '9' && p - start < 10) a = a * 10 + uint64_t(line[p++] - '0');
        if (p == start || (line[start] == '0' && p - start > 1) || a >= parent_chain) return false;
        want.clear();
        if (r.meta.mode != m.default_mode || r.meta.uid != m.default_uid || r.meta.gid != m.default_gid) {
          want += ',';
          put_num(want, r.meta.mode);
          want += ',';
          put_num(want, r.meta.uid);
          want += ',';
          put_num(want, r.meta.gid);
        }
        want += ']';
        if (line.substr(p) != want) return false;
        archive = static_cast<uint32_t>(a);
        return true;
      };
      std::string_view pid, pline;
      bool have = cursor.next(pid, pline);
      for (Row& r : rows) {
        const std::string_view rid = id_of(r);
        while (have && pid < rid) {
          m.deleted.emplace_back(pid);
          have = cursor.next(pid, pline);
        }
        uint32_t archive = self;
        if (have && pid == rid) {
          if (kept_archive(r, pline, archive)) {
            r.in_parent = true;
            r.line_off = static_cast<uint64_t>(pline.data() - ptext.data());
            r.line_len = static_cast<uint32_t>(pline.size());
          }
          have = cursor.next(pid, pline);
        }
        r.meta.archive = archive;
        if (archive == self) new_line(r);
      }
      while (have) {
        m.deleted.emplace_back(pid);
        have = cursor.next(pid, pline);
      }
      if (!cursor.ok()) {
        // Not the layout itemfs writes after all: parse it as JSON.
        by_lines = false;
        m.deleted.clear();
        lines.clear();
        parent_header = Manifest{};
        fs::path p = dir / parent->summary.id / kManifestFile;
        read_manifest_sorted(ptext, parent_header, parent_items, p.string());
      }
    }
    if (!by_lines) {
      lines.reserve(incr ? rows.size() / 32 * 128 + 4096 : rows.size() * 120 + 4096);
      size_t pi = 0;
      for (Row& r : rows) {
        r.meta.archive = self;
        const std::string_view rid = id_of(r);
        if (incr) {
          while (pi < parent_items.size() && parent_items[pi].id < rid) m.deleted.push_back(parent_items[pi++].id);
          if (pi < parent_items.size() && parent_items[pi].id == rid) {
            if (same_meta(parent_items[pi].meta, r.meta)) r.meta.archive = parent_items[pi].meta.archive;
            ++pi;
          }
        }
        new_line(r);
      }
      while (pi < parent_items.size()) m.deleted.push_back(parent_items[pi++].id);
      std::vector<MapEntry>().swap(parent_items);
    }
    uint64_t lines_bytes = 0;
    for (const Row& r : rows) {
      ++m.item_count;
      m.item_bytes += r.meta.size;
      lines_bytes += r.line_len;
      if (r.meta.archive == self) {
        ++m.archived_count;
        m.archived_bytes += r.meta.size;
      }
    }
    if (incr && skip_unchanged && m.archived_count == 0 && m.deleted.empty()) {
      message = "skipped: nothing changed since " + m.parent + " (" + std::to_string(m.item_count) +
                " items); no backup taken";
      return "";
    }

    // Reading the store (SQLite, zlib, SHA-256) runs in a producer thread
    // while this one writes the manifest, then tar and gzip: two cores, as
    // `tar czf` uses. An incremental's producer also makes the items' part
    // of the archive (tar and deflate) as a segment of its own, spliced in
    // after the manifest: the manifest and the items are then written at
    // the same time.
    set_phase("writing archive", m.archived_count, m.archived_bytes);
    const int items_level = incr ? std::min(opt.gzip_level, kItemsLevelIncremental) : opt.gzip_level;
    std::unique_ptr<SpoolSink> segment_blocks;
    std::unique_ptr<TarWriter> segment;
    if (incr) {
      segment_blocks = std::make_unique<SpoolSink>(tmp, kSegmentInMemory);
      segment = std::make_unique<TarWriter>(*segment_blocks, items_level, GzipSink::Mode::kSegment);
    }
    std::exception_ptr segment_error;
    std::atomic<bool> segment_stop{false};
    PieceQueue queue;
    std::thread producer([&] {
      if (segment) {
        try {
          Sha256Hasher h;
          for (const Row& r : rows) {
            if (r.meta.archive != self) continue;
            if (segment_stop.load(std::memory_order_relaxed)) return;
            check_cancel();
            const store::ItemInfo info = item_of(r);
            segment->begin(item_path(info.id), info.size, info.attrs.mode, info.attrs.uid, info.attrs.gid,
                           info.attrs.mtime_ns);
            try {
              snap->read_item(info, [&](std::string_view chunk) {
                h.update(chunk);
                segment->data(chunk.data(), chunk.size());
                bytes_done.fetch_add(chunk.size(), std::memory_order_relaxed);
              });
            } catch (const store::StoreError& e) {
              if (e.code() == EIO) throw damaged_item(info.id, e.what());
              throw;
            }
            if (h.finish() != info.sha256) throw damaged_item(info.id, "its bytes do not match its sha256");
            segment->end();
            items_done.fetch_add(1, std::memory_order_relaxed);
          }
          segment->close();
        } catch (...) {
          segment_error = std::current_exception();
        }
        return;
      }
      std::exception_ptr err;
      try {
        Sha256Hasher h;
        for (const Row& r : rows) {
          if (r.meta.archive != self) continue;
          check_cancel();
          const store::ItemInfo info = item_of(r);
          Piece begin;
          begin.info = info;
          queue.push(std::move(begin));
          try {
            snap->read_item(info, [&](std::string_view chunk) {
              h.update(chunk);
              Piece data;
              data.kind = Piece::kData;
              data.data.assign(chunk);
              queue.push(std::move(data));
            });
          } catch (const store::StoreError& e) {
            if (e.code() == EIO) throw damaged_item(info.id, e.what());
            throw;
          }
          if (h.finish() != info.sha256) throw damaged_item(info.id, "its bytes do not match its sha256");
          Piece end;
          end.kind = Piece::kEnd;
          queue.push(std::move(end));
        }
      } catch (const PieceQueue::Aborted&) {
      } catch (...) {
        err = std::current_exception();
      }
      queue.finish(err);
    });
    struct Joiner {
      PieceQueue& q;
      std::atomic<bool>& stop;
      std::thread& t;
      ~Joiner() {
        q.abort();
        stop = true;
        if (t.joinable()) t.join();
      }
    } joiner{queue, segment_stop, producer};

    std::string sums_text;
    for (const Row& r : rows) {
      if (r.meta.archive == self) sums_text += sha256sums_line(r.meta.sha256, item_path(std::string(id_of(r))));
    }

    // Pass 2: the archive.
    std::string archive_name = id + (key ? ".tar.gz.enc" : ".tar.gz");
    fs::path archive_path = tmp / archive_name;
    fs::path man_path = tmp / kManifestFile;
    FileSink file(archive_path);
    std::unique_ptr<EncryptSink> enc;
    if (key) enc = std::make_unique<EncryptSink>(file, *key);
    ByteSink& sink = enc ? static_cast<ByteSink&>(*enc) : file;
    {
      // An incremental's MANIFEST.json is mostly the parent's map again:
      // deflating it would cost more than the changed items themselves, so
      // it is stored (gzip level 0); a full backup compresses everything.
      TarWriter tw(sink, incr ? kManifestLevelIncremental : opt.gzip_level);
      {
        // MANIFEST.json, made and written a piece at a time (never the
        // whole map in memory), also into manifest.json beside the archive
        // (fsynced at the end: the disk writes it meanwhile).
        std::unique_ptr<ManFile> man;
        if (!key) man = std::make_unique<ManFile>(man_path);
        std::string piece;
        piece.reserve(kManifestPiece + 4096);
        ManifestWriter w(piece);
        w.begin(m, true);
        tw.begin("MANIFEST.json", piece.size() + lines_bytes + ManifestWriter::framing_size(rows.size()), 0644,
                 static_cast<uint32_t>(::getuid()), static_cast<uint32_t>(::getgid()), created);
        auto flush = [&] {
          tw.data(piece.data(), piece.size());
          if (man) man->write(piece);
          piece.clear();
        };
        const std::string_view ptext = parent_file ? parent_file->text() : std::string_view();
        for (const Row& r : rows) {
          w.raw_item(r.in_parent ? ptext.substr(r.line_off, r.line_len) : std::string_view(lines).substr(r.line_off, r.line_len));
          if (piece.size() >= kManifestPiece) flush();
        }
        w.end();
        flush();
        tw.end();
        if (man) man->close();
      }
      std::string().swap(lines);
      add_memory_entry(tw, "SHA256SUMS", sums_text, created);
      if (segment) {
        producer.join();
        if (segment_error) std::rethrow_exception(segment_error);
        tw.splice(*segment, *segment_blocks);
      }
      tw.set_level(items_level);
      Piece piece;
      while (!segment && queue.pop(piece)) {
        switch (piece.kind) {
          case Piece::kBegin:
            tw.begin(item_path(piece.info.id), piece.info.size, piece.info.attrs.mode, piece.info.attrs.uid,
                     piece.info.attrs.gid, piece.info.attrs.mtime_ns);
            break;
          case Piece::kData:
            tw.data(piece.data.data(), piece.data.size());
            bytes_done.fetch_add(piece.data.size(), std::memory_order_relaxed);
            break;
          case Piece::kEnd:
            tw.end();
            items_done.fetch_add(1, std::memory_order_relaxed);
            break;
        }
      }
      if (producer.joinable()) producer.join();
      snap.reset();  // the point in time is captured; let writers' WAL checkpoint
      rename_phase("syncing");
      tw.close();  // finishes the sinks: encryption trailer, fsync
    }
    store::Sha256 digest = file.sha256();
    write_file_atomic(tmp / (archive_name + ".sha256"), hex(digest.data(), digest.size()) + "  " + archive_name + "\n");

    if (key) {
      std::string summary_text;
      ManifestWriter w(summary_text);
      w.begin(m, false);
      w.end();
      File summary = open_write(man_path);
      if (std::fwrite(summary_text.data(), 1, summary_text.size(), summary.get()) != summary_text.size()) {
        throw_errno("cannot write", man_path, errno);
      }
      close_synced(summary, man_path);
    } else {
      fsync_path(man_path);
    }
    fsync_path(tmp);
    fs::rename(tmp, dir / id, ec);
    if (ec) throw_errno("cannot rename", tmp, ec.value());
    cleanup.armed = false;
    fsync_path(dir);

    std::ostringstream msg;
    msg << "backup " << id << " (" << m.kind << (incr ? " on " + m.parent : "") << "): " << m.archived_count
        << " of " << m.item_count << " items, " << human_bytes(m.archived_bytes) << " of items in a "
        << human_bytes(file.bytes()) << " archive";
    if (incr) msg << ", " << m.deleted.size() << " deleted";
    if (incremental && !incr) msg << (all.empty() ? "; no earlier backup, so a full one" : "; a full one: " + why_full);
    message = msg.str();
    return id;
  }

  // ------------------------------------------------------------ verify

  VerifyResult verify_one(const Found& f, const std::vector<Found>& all, const Key* key) {
    VerifyResult r;
    const std::string& id = f.summary.id;
    fs::path bdir = dir / id;
    rename_phase("verifying " + id);

    for (const auto& cid : f.summary.chain) {
      if (cid != id && !find(all, cid)) r.add("backup " + cid + " of this chain is missing; it cannot be restored");
    }

    store::Sha256 expected{};
    bool have_sidecar = false;
    try {
      std::string side = read_small_file(bdir / (f.archive_name + ".sha256"), 4096);
      std::string want_tail = "  " + f.archive_name + "\n";
      std::string alt_tail = " *" + f.archive_name + "\n";
      if (side.size() == 64 + want_tail.size() &&
          (side.compare(64, std::string::npos, want_tail) == 0 || side.compare(64, std::string::npos, alt_tail) == 0) &&
          parse_sha256_hex(std::string_view(side).substr(0, 64), expected)) {
        have_sidecar = true;
      } else {
        r.add(f.archive_name + ".sha256 is malformed");
      }
    } catch (const JobError& e) {
      r.add(e.what());
    }

    std::unique_ptr<FileSource> raw;
    try {
      raw = std::make_unique<FileSource>(bdir / f.archive_name, true, &cancel);
    } catch (const JobError& e) {
      r.add(e.what());
    }
    if (raw && f.summary.encrypted && !key) {
      // Without the key: what the file itself shows. Its header names the
      // key it was encrypted with; its bytes must match the sidecar.
      r.contents_checked = false;
      std::string header_key = archive_key_id(bdir / f.archive_name);
      if (header_key.empty()) {
        r.add(f.archive_name + ": not an itemfs encrypted archive (bad header)");
      } else if (!f.summary.key_id.empty() && header_key != f.summary.key_id) {
        r.add(f.archive_name + ": encrypted with key " + header_key + ", manifest.json says " + f.summary.key_id);
      }
    }
    if (raw) {
      if (r.contents_checked) {
        try {
          std::unique_ptr<DecryptSource> dec;
          if (f.summary.encrypted) dec = std::make_unique<DecryptSource>(*raw, *key, f.archive_name);
          GunzipSource gunzip(dec ? static_cast<ByteSource&>(*dec) : *raw);
          TarReader tar(gunzip, TarReader::Input::kPlainTar);
          verify_contents(tar, f, r);
          gunzip.finish();
        } catch (const JobError& e) {
          if (e.code() == ECANCELED) throw;
          r.add(e.what());
        } catch (const store::StoreError& e) {
          r.add(e.what());
        }
      }
      try {
        raw->drain();
        store::Sha256 got = raw->sha256();
        if (have_sidecar && got != expected) {
          // Put the file-level finding first: it is the authoritative one.
          VerifyResult first;
          first.add(f.archive_name + " does not match its .sha256 (sidecar " +
                    hex(expected.data(), 32).substr(0, 16) + "..., file " + hex(got.data(), 32).substr(0, 16) +
                    "...)");
          for (auto& p : r.problems) first.add(std::move(p));
          first.more += r.more;
          first.contents_checked = r.contents_checked;
          r = std::move(first);
        }
      } catch (const JobError& e) {
        if (e.code() == ECANCELED) throw;
        r.add(e.what());
      }
    }

    // A check without the key records nothing when it found nothing wrong:
    // verify.json says what a whole verify found.
    if (!r.contents_checked && r.ok) return r;
    json v = {{"id", id},
              {"verified", iso_time(now_ns())},
              {"verified_ns", now_ns()},
              {"ok", r.ok},
              {"problems", r.problems},
              {"more_problems", r.more}};
    try {
      // Problems quote names and bytes from a damaged archive, which need not
      // be UTF-8: they are written with U+FFFD in place of invalid bytes.
      write_file_atomic(bdir / kVerifyFile, v.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
    } catch (const JobError& e) {
      r.add(std::string("cannot record the result: ") + e.what());
    }
    return r;
  }

  // MANIFEST.json, the first entry of an open archive, whole. Memory follows
  // the bytes really read, never the size the tar header declares, and
  // stops at `limit` (a manifest.json beside the archive must be the same
  // bytes; else kMaxManifest).
  static std::string read_manifest_entry(TarReader& tar, const std::string& what, uint64_t limit = kMaxManifest) {
    TarEntry e;
    if (!tar.next(e)) throw JobError(EIO, what + ": archive is empty");
    if (e.path != "MANIFEST.json" || !e.regular) {
      throw JobError(EIO, what + ": first entry is " + e.path + ", expected MANIFEST.json");
    }
    limit = std::min(limit, kMaxManifest);
    if (e.size > limit) {
      throw JobError(EIO, what + ": MANIFEST.json declares " + std::to_string(e.size) + " bytes, more than the " +
                              std::to_string(limit) + " a manifest may have here; refusing it");
    }
    std::string text;
    std::vector<char> buf(64 * 1024);
    for (size_t n; (n = tar.read(buf.data(), buf.size())) > 0;) {
      if (text.size() + n > e.size) throw JobError(EIO, what + ": MANIFEST.json is longer than its tar header says");
      text.append(buf.data(), n);
    }
    if (text.size() != e.size) throw JobError(EIO, what + ": MANIFEST.json is shorter than its tar header says");
    return text;
  }

  void verify_contents(TarReader& tar, const Found& f, VerifyResult& r) {
    const std::string& id = f.summary.id;
    Manifest m;
    // Sorted by id, as the archive holds them: a lookup is mostly the next entry.
    std::vector<MapEntry> items;
    store::Sha256 inner{};
    {
      uint64_t limit = kMaxManifest;
      if (!f.summary.encrypted) ::close(open_regular(dir / id / kManifestFile, &limit));
      std::string text = read_manifest_entry(tar, id, limit);
      inner = store::sha256_of(text);
      read_manifest_sorted(text, m, items, id + ": MANIFEST.json");
    }
    size_t next_hint = 0;
    auto find = [&](std::string_view iid) -> ItemMeta* {
      if (next_hint < items.size() && items[next_hint].id == iid) return &items[next_hint++].meta;
      auto it = std::lower_bound(items.begin(), items.end(), iid,
                                 [](const MapEntry& a, std::string_view b) { return a.id < b; });
      if (it == items.end() || it->id != iid) return nullptr;
      next_hint = static_cast<size_t>(it - items.begin()) + 1;
      return &it->meta;
    };
    if (m.id != id || m.kind != f.summary.kind || m.parent != f.summary.parent ||
        m.created_ns != f.summary.created_ns || m.chain != f.summary.chain || m.encrypted != f.summary.encrypted ||
        m.key_id != f.summary.key_id) {
      r.add("MANIFEST.json in the archive disagrees with manifest.json beside it");
    }
    if (!f.summary.encrypted) {
      FileSource outer(dir / id / kManifestFile, true, &cancel);
      outer.drain();
      if (outer.sha256() != inner) r.add("manifest.json differs from MANIFEST.json in the archive");
    }
    uint32_t self = static_cast<uint32_t>(m.chain.size() - 1);
    // Items are regular files: a restore must never give one another type.
    for (const auto& [iid, im] : items) {
      if (!S_ISREG(im.mode)) r.add("item " + iid + ": mode " + std::to_string(im.mode) + " is not a regular file's");
    }

    TarEntry e;
    if (!tar.next(e) || e.path != "SHA256SUMS" || !e.regular) {
      throw JobError(EIO, "second entry is not SHA256SUMS");
    }
    {
      EntryBuf buf(tar);
      std::istream in(&buf);
      std::string line;
      uint64_t lines = 0;
      while (std::getline(in, line)) {
        ++lines;
        std::string_view l = line;
        bool esc = !l.empty() && l[0] == '\\';
        if (esc) l.remove_prefix(1);
        store::Sha256 sha{};
        if (l.size() < 67 || !parse_sha256_hex(l.substr(0, 64), sha) || l.substr(64, 2) != "  ") {
          r.add("SHA256SUMS line " + std::to_string(lines) + " is malformed");
          continue;
        }
        std::string path;
        std::string_view name = l.substr(66);
        for (size_t i = 0; i < name.size(); ++i) {
          if (esc && name[i] == '\\' && i + 1 < name.size()) {
            char c = name[++i];
            path += c == 'n' ? '\n' : c == 'r' ? '\r' : c;
          } else {
            path += name[i];
          }
        }
        std::string iid = id_from_item_path(path);
        ItemMeta* im = iid.empty() ? nullptr : find(iid);
        if (!im || im->archive != self || im->sha256 != sha) {
          r.add("SHA256SUMS line " + std::to_string(lines) + " (" + path + ") disagrees with the manifest");
        }
      }
      if (lines != m.archived_count) r.add("SHA256SUMS has " + std::to_string(lines) + " lines, manifest says " +
                                           std::to_string(m.archived_count) + " items are archived");
    }

    Sha256Hasher h;
    std::vector<char> buf(128 * 1024);
    uint64_t count = 0;
    next_hint = 0;
    while (tar.next(e)) {
      check_cancel();
      std::string iid = id_from_item_path(e.path);
      ItemMeta* found = iid.empty() ? nullptr : find(iid);
      if (!e.regular || !found) {
        r.add("unexpected entry " + e.path);
        continue;
      }
      ItemMeta& im = *found;
      if (im.archive != self) r.add(e.path + ": manifest says these bytes are in backup " + m.chain[im.archive]);
      if (im.seen) r.add(e.path + ": appears twice");
      im.seen = true;
      uint64_t nbytes = 0;
      for (size_t n; (n = tar.read(buf.data(), buf.size())) > 0;) {
        h.update(buf.data(), n);
        nbytes += n;
      }
      store::Sha256 got = h.finish();
      if (nbytes != im.size || got != im.sha256) {
        r.add(e.path + ": content does not match the manifest (sha256 " + hex(got.data(), 32).substr(0, 16) +
              "... size " + std::to_string(nbytes) + ", expected " + hex(im.sha256.data(), 32).substr(0, 16) +
              "... size " + std::to_string(im.size) + ")");
      }
      if ((e.mode & 07777) != (im.mode & 07777) || e.mtime_ns != im.mtime_ns || e.uid != im.uid ||
          e.gid != im.gid) {
        r.add(e.path + ": mode, owner or mtime differ from the manifest");
      }
      ++count;
      items_done.fetch_add(1, std::memory_order_relaxed);
      bytes_done.fetch_add(nbytes, std::memory_order_relaxed);
    }
    for (const auto& [iid, im] : items) {
      if (im.archive == self && !im.seen) r.add("missing from the archive: " + item_path(iid));
    }
    if (count != m.archived_count) {
      r.add("archive holds " + std::to_string(count) + " items, manifest says " + std::to_string(m.archived_count));
    }
  }

  std::string verify_message(const std::string& id, const VerifyResult& r) {
    if (r.ok) return "backup " + id + " verified ok";
    std::string s = "backup " + id + " is damaged: " + r.problems.front();
    if (r.problems.size() + r.more > 1) s += " (and " + std::to_string(r.problems.size() - 1 + r.more) + " more)";
    return s;
  }

  // What verifying these backups reads: their archived items.
  static uint64_t total_items(const std::vector<const Found*>& backups) {
    uint64_t n = 0;
    for (const Found* f : backups) n += f->summary.archived_count;
    return n;
  }
  static uint64_t total_bytes(const std::vector<const Found*>& backups) {
    uint64_t n = 0;
    for (const Found* f : backups) n += f->summary.archived_bytes;
    return n;
  }

  std::unique_ptr<Key> key_if_needed(const std::vector<const Found*>& backups, const std::string& why) {
    for (const Found* f : backups) {
      if (f->summary.encrypted) return need_key(why + " " + f->summary.id);
    }
    return nullptr;
  }

  void do_verify(const std::string& id, bool every, std::string& message, json& detail) {
    auto all = scan();
    std::vector<const Found*> targets;
    if (every) {
      for (const auto& f : all) targets.push_back(&f);
    } else {
      const Found* f = find(all, id);
      if (!f) throw JobError(ENOENT, "no backup " + id);
      targets.push_back(f);
    }
    // Without the key, an encrypted backup is checked as far as it can be
    // (see verify_one) and the job says what was not.
    std::unique_ptr<Key> key;
    if (opt.key_file) key = load_key(*opt.key_file);
    set_phase("verifying", total_items(targets), total_bytes(targets));
    std::vector<std::string> bad, unchecked;
    json results = json::array();
    for (const Found* f : targets) {
      {
        std::lock_guard lk(state_mu);
        job_id = f->summary.id;
      }
      VerifyResult r = verify_one(*f, all, key.get());
      results.push_back(
          {{"id", f->summary.id}, {"ok", r.ok}, {"problems", r.problems}, {"contents_checked", r.contents_checked}});
      if (!r.ok) bad.push_back(verify_message(f->summary.id, r));
      else if (!r.contents_checked) unchecked.push_back(f->summary.id);
    }
    detail["verified"] = results;
    if (!bad.empty()) {
      std::string s = bad.front();
      if (bad.size() > 1) s += "; " + std::to_string(bad.size() - 1) + " more damaged backups";
      throw JobError(EIO, s);
    }
    if (!unchecked.empty()) {
      std::string s = unchecked.size() == 1 ? "backup " + unchecked.front() + " is encrypted"
                                            : std::to_string(unchecked.size()) + " backups are encrypted (" +
                                                  unchecked.front() + ", ...)";
      s += " and no backup key is given (backup_key=FILE): checked only that the archive matches its .sha256 and "
           "names its key; its contents (manifest, items, their sha256) were not checked";
      if (targets.size() > unchecked.size()) {
        s += "; the other " + std::to_string(targets.size() - unchecked.size()) + " verified ok";
      }
      throw JobError(EACCES, s);
    }
    message = every ? "all " + std::to_string(targets.size()) + " backups verified ok" : "backup " + id + " verified ok";
  }

  // ------------------------------------------------------------ restore

  // Holds one item's bytes for WriteBatch::put, which needs a seekable
  // stream: in memory up to kSpoolInMemory, else in a temp file.
  std::unique_ptr<std::istream> spool(TarReader& tar, uint64_t size, Sha256Hasher& h, const fs::path& spool_dir,
                                      uint64_t& got) {
    std::vector<char> buf(64 * 1024);
    got = 0;
    if (size <= kSpoolInMemory) {
      std::string data;
      data.reserve(size);
      for (size_t n; (n = tar.read(buf.data(), buf.size())) > 0;) {
        h.update(buf.data(), n);
        data.append(buf.data(), n);
        got += n;
        if (got > size) break;
      }
      return std::make_unique<std::istringstream>(std::move(data));
    }
    std::error_code ec;
    if (!fs::is_directory(spool_dir, ec)) make_private_dir(spool_dir, ec);
    fs::path p = spool_dir / "item";
    fs::remove(p, ec);
    {
      FileSink out(p);
      for (size_t n; (n = tar.read(buf.data(), buf.size())) > 0;) {
        h.update(buf.data(), n);
        out.write(buf.data(), n);
        got += n;
      }
      out.finish();
    }
    auto in = std::make_unique<std::ifstream>(p, std::ios::binary);
    if (!*in) throw_errno("cannot open", p, errno);
    fs::remove(p, ec);  // the open stream keeps it readable
    return in;
  }

  // A backup cannot hold an item whose stored content is damaged: it says
  // which, and how to repair it.
  JobError damaged_item(const std::string& iid, const std::string& why) {
    return JobError(EIO, "store item " + iid + " is damaged (" + why + "); run `itemfs fsck " + store.dir().string() +
                             " --repair --from-backup ID` with a backup that holds it, or remove the item");
  }

  // Whether the stored bytes of `info` are the ones its sha256 names. A
  // store that finds a chunk damaged says so with StoreError(EIO); bytes of
  // another hash are damage too.
  bool reads_right(store::Snapshot& snap, const store::ItemInfo& info) {
    try {
      Sha256Hasher h;
      uint64_t n = 0;
      snap.read_item(info, [&](std::string_view chunk) {
        h.update(chunk);
        n += chunk.size();
      });
      return n == info.size && h.finish() == info.sha256;
    } catch (const store::StoreError& e) {
      if (e.code() == EIO) return false;
      throw;
    }
  }

  // The current tar entry's bytes, which must be item `im`'s (checked), in
  // memory: at most the store's largest item.
  std::string read_entry(TarReader& tar, const ItemMeta& im, const std::string& what) {
    if (im.size > store.options().max_item_size) {
      throw JobError(EIO, what + ": " + std::to_string(im.size) + " bytes, more than the store's largest item");
    }
    std::string bytes;
    std::vector<char> buf(64 * 1024);
    for (size_t n; (n = tar.read(buf.data(), buf.size())) > 0;) {
      if (bytes.size() + n > im.size) throw JobError(EIO, what + " is longer than the manifest says");
      bytes.append(buf.data(), n);
    }
    if (bytes.size() != im.size || store::sha256_of(bytes) != im.sha256) {
      throw JobError(EIO, what + " does not match the manifest");
    }
    return bytes;
  }

  // Rewrites the stored content of the damaged items `ids` from backup
  // `id` (Manager::repair).
  void do_repair(const std::string& id, const std::vector<std::string>& ids, RepairReport& report,
                 std::string& message) {
    auto all = scan();
    const Found* target = find(all, id);
    if (!target) throw JobError(ENOENT, "no backup " + id);
    std::vector<const Found*> chain;
    for (const auto& cid : target->summary.chain) {
      const Found* f = find(all, cid);
      if (!f) throw JobError(EIO, "cannot repair from " + id + ": backup " + cid + " of its chain is missing");
      chain.push_back(f);
    }
    auto key = key_if_needed(chain, "repairing from encrypted backup");
    Manifest m = full_manifest(*target, key.get());
    // What the backup can repair: the version each item's recorded sha256
    // names, nothing else.
    std::map<std::string, const ItemMeta*> wanted;
    {
      auto snap = store.snapshot();
      for (const auto& iid : ids) {
        auto cur = snap->item(iid);
        auto it = m.items.find(iid);
        if (!cur) {
          report.not_repaired.push_back(iid + ": no longer in the store");
        } else if (it == m.items.end()) {
          report.not_repaired.push_back(iid + ": not in backup " + id);
        } else if (it->second.sha256 != cur->sha256 || it->second.size != cur->size) {
          report.not_repaired.push_back(
              iid + ": backup " + id + " holds another version of it (sha256 " +
              hex(it->second.sha256.data(), 32).substr(0, 16) + "..., the store records " +
              hex(cur->sha256.data(), 32).substr(0, 16) +
              "...); going back to that version is your choice: restore the backup, or remove the item");
        } else {
          wanted[iid] = &it->second;
        }
      }
    }
    uint64_t wanted_bytes = 0;
    for (const auto& [iid, im] : wanted) wanted_bytes += im->size;
    // Verify only the archives that hold wanted bytes.
    std::vector<bool> needed(chain.size(), false);
    for (const auto& [iid, im] : wanted) needed[im->archive] = true;
    std::vector<const Found*> to_verify;
    for (size_t ci = 0; ci < chain.size(); ++ci) {
      if (needed[ci]) to_verify.push_back(chain[ci]);
    }
    set_phase("verifying", total_items(to_verify), total_bytes(to_verify));
    for (const Found* f : to_verify) {
      VerifyResult r = verify_one(*f, all, key.get());
      if (!r.ok) throw JobError(EIO, "refusing to repair from " + id + ": " + verify_message(f->summary.id, r));
    }
    set_phase("repairing", wanted.size(), wanted_bytes);
    std::set<std::string> rewritten;
    if (!wanted.empty()) {
      store.write([&](store::WriteBatch& batch) {
        rewritten.clear();
        for (uint32_t ci = 0; ci < chain.size(); ++ci) {
          if (!needed[ci]) continue;
          const Found& f = *chain[ci];
          OpenArchive a = open_archive(f, key.get());
          TarEntry e;
          while (a.tar->next(e)) {
            check_cancel();
            std::string iid = id_from_item_path(e.path);
            auto it = wanted.find(iid);
            if (iid.empty() || !e.regular || it == wanted.end() || it->second->archive != ci) continue;
            std::string bytes = read_entry(*a.tar, *it->second, f.summary.id + ": " + e.path);
            uint64_t blobs = 0;
            store::Status st = batch.repair_blobs(bytes, &blobs);
            if (!st.ok()) throw JobError(EIO, "repairing " + iid + ": " + st.message);
            rewritten.insert(iid);
            items_done.fetch_add(1, std::memory_order_relaxed);
            bytes_done.fetch_add(bytes.size(), std::memory_order_relaxed);
          }
        }
      });
    }
    auto after = store.snapshot();
    for (const auto& [iid, im] : wanted) {
      auto cur = after->item(iid);
      if (!rewritten.count(iid)) {
        report.not_repaired.push_back(iid + ": missing from archive " + m.chain[im->archive]);
      } else if (!cur || !reads_right(*after, *cur)) {
        report.not_repaired.push_back(iid + ": still does not read right after the repair");
      } else {
        report.repaired.push_back(iid);
      }
    }
    message = "repaired " + std::to_string(report.repaired.size()) + " of " + std::to_string(ids.size()) +
              " damaged items from backup " + id;
    if (!report.not_repaired.empty()) {
      message += "; not repaired: " + report.not_repaired.front();
      if (report.not_repaired.size() > 1) message += " (and " + std::to_string(report.not_repaired.size() - 1) + " more)";
    }
  }

  // Keeps in `m.items` only the items that `include` chooses (see
  // Command::include); ENOENT naming a pattern that chooses nothing.
  static void choose_items(Manifest& m, const std::vector<std::string>& include) {
    std::vector<uint64_t> hits(include.size(), 0);
    for (auto it = m.items.begin(); it != m.items.end();) {
      const std::string path = item_path(it->first);
      bool chosen = false;
      for (size_t k = 0; k < include.size(); ++k) {
        // The item's path or one of its directories, as restic's --include.
        std::string pattern = include[k];
        while (pattern.size() > 1 && pattern.back() == '/') pattern.pop_back();
        for (size_t end = path.size(); end != std::string::npos && end > 0; end = path.rfind('/', end - 1)) {
          if (::fnmatch(pattern.c_str(), path.substr(0, end).c_str(), FNM_PATHNAME) == 0) {
            ++hits[k];
            chosen = true;
            break;
          }
        }
      }
      it = chosen ? std::next(it) : m.items.erase(it);
    }
    for (size_t k = 0; k < include.size(); ++k) {
      if (hits[k] == 0) throw JobError(ENOENT, include[k] + " matches nothing in backup " + m.id + "; nothing restored");
    }
  }

  std::vector<std::string> do_restore(const std::string& id, bool clear, const std::vector<std::string>& include,
                                      std::string& message) {
    auto all = scan();
    const Found* target = find(all, id);
    if (!target) throw JobError(ENOENT, "no backup " + id);
    std::vector<const Found*> chain;
    for (const auto& cid : target->summary.chain) {
      const Found* f = find(all, cid);
      if (!f) throw JobError(EIO, "cannot restore " + id + ": backup " + cid + " of its chain is missing");
      chain.push_back(f);
    }
    auto key = key_if_needed(chain, "restoring encrypted backup");

    set_phase("verifying", total_items(chain), total_bytes(chain));
    for (const Found* f : chain) {
      {
        std::lock_guard lk(state_mu);
        job_id = f->summary.id;
      }
      VerifyResult r = verify_one(*f, all, key.get());
      if (!r.ok) throw JobError(EIO, "refusing to restore " + id + ": " + verify_message(f->summary.id, r));
    }
    {
      std::lock_guard lk(state_mu);
      job_id = id;
    }
    Manifest m = full_manifest(*target, key.get());
    if (!include.empty()) {
      choose_items(m, include);
      m.item_count = m.items.size();
      m.item_bytes = 0;
      for (const auto& [iid, im] : m.items) m.item_bytes += im.size;
    }
    set_phase("restoring", m.item_count, m.item_bytes);

    fs::path spool_dir = dir / (".tmp-restore-" + std::to_string(::getpid()));
    struct Cleanup {
      fs::path p;
      ~Cleanup() {
        std::error_code e;
        fs::remove_all(p, e);
      }
    } cleanup{spool_dir};

    std::vector<std::string> changed;
    uint64_t put_count = 0, attr_count = 0, removed = 0, unchanged = 0, repaired = 0;
    store.write([&](store::WriteBatch& batch) {
      changed.clear();
      put_count = attr_count = removed = unchanged = repaired = 0;
      for (auto& [iid, im] : m.items) im.seen = false;
      // Writers are serialised, so this sees exactly the state the batch starts from.
      auto current = store.snapshot();
      Sha256Hasher h;
      for (uint32_t ci = 0; ci < chain.size(); ++ci) {
        const Found& f = *chain[ci];
        OpenArchive a = open_archive(f, key.get());
        TarEntry e;
        while (a.tar->next(e)) {
          check_cancel();
          if (e.path == "MANIFEST.json" || e.path == "SHA256SUMS") continue;
          std::string iid = id_from_item_path(e.path);
          if (iid.empty() || !e.regular) throw JobError(EIO, f.summary.id + ": refusing entry " + e.path);
          auto it = m.items.find(iid);
          if (it == m.items.end() || it->second.archive != ci) continue;  // superseded later in the chain
          ItemMeta& im = it->second;
          if (im.seen) throw JobError(EIO, f.summary.id + ": " + e.path + " appears twice");
          im.seen = true;
          store::Attrs attrs{im.mode, im.uid, im.gid, im.mtime_ns};
          auto cur = current->item(iid);
          // The same version as the backup's, by its recorded hash: still
          // rewritten when its stored bytes are damaged.
          const bool same = cur && cur->sha256 == im.sha256 && cur->size == im.size;
          if (same && !reads_right(*current, *cur)) {
            std::string bytes = read_entry(*a.tar, im, f.summary.id + ": " + e.path);
            uint64_t blobs = 0;
            store::Status st = batch.repair_blobs(bytes, &blobs);
            if (!st.ok()) throw JobError(EIO, "repairing " + iid + ": " + st.message);
            if (cur->attrs.mode != im.mode || cur->attrs.uid != im.uid || cur->attrs.gid != im.gid ||
                cur->attrs.mtime_ns != im.mtime_ns) {
              st = batch.set_attrs(iid, attrs);
              if (!st.ok()) throw JobError(EIO, "restoring attributes of " + iid + ": " + st.message);
            }
            changed.push_back(iid);
            ++repaired;
          } else if (same) {
            if (cur->attrs.mode != im.mode || cur->attrs.uid != im.uid || cur->attrs.gid != im.gid ||
                cur->attrs.mtime_ns != im.mtime_ns) {
              store::Status st = batch.set_attrs(iid, attrs);
              if (!st.ok()) throw JobError(EIO, "restoring attributes of " + iid + ": " + st.message);
              changed.push_back(iid);
              ++attr_count;
            } else {
              ++unchanged;
            }
          } else {
            uint64_t got = 0;
            auto in = spool(*a.tar, im.size, h, spool_dir, got);
            if (got != im.size || h.finish() != im.sha256) {
              throw JobError(EIO, f.summary.id + ": " + e.path + " does not match the manifest");
            }
            store::Status st = batch.put(iid, *in, attrs);
            if (!st.ok()) throw JobError(EIO, "restoring " + iid + ": " + st.message);
            changed.push_back(iid);
            ++put_count;
          }
          items_done.fetch_add(1, std::memory_order_relaxed);
          bytes_done.fetch_add(im.size, std::memory_order_relaxed);
        }
      }
      for (const auto& [iid, im] : m.items) {
        if (!im.seen) {
          throw JobError(EIO, "item " + iid + " is missing from archive " + m.chain[im.archive]);
        }
      }
      if (clear) {
        std::vector<std::string> extra;
        current->for_each_item([&](const store::ItemInfo& info) {
          if (!m.items.count(info.id)) extra.push_back(info.id);
        });
        for (const auto& iid : extra) {
          store::Status st = batch.remove(iid);
          if (!st.ok()) throw JobError(EIO, "removing " + iid + ": " + st.message);
          changed.push_back(iid);
          ++removed;
        }
      }
    });
    std::ostringstream msg;
    msg << "restored " << id << " (chain of " << chain.size() << ")";
    if (!include.empty()) {
      msg << ", the " << m.items.size() << (m.items.size() == 1 ? " item " : " items ") << "chosen by "
          << include.size() << (include.size() == 1 ? " pattern" : " patterns");
    }
    msg << ": " << put_count << " items written, "
        << attr_count << " attributes reset, " << unchanged << " unchanged";
    if (repaired) msg << ", " << repaired << " repaired (their stored content did not match its sha256)";
    if (clear) msg << ", " << removed << " removed";
    message = msg.str();
    return changed;
  }

  // ------------------------------------------------------------ prune / delete

  void remove_backup(const std::string& id) {
    fs::path from = dir / id, to = dir / (".del-" + id);
    std::error_code ec;
    fs::rename(from, to, ec);
    if (ec) throw_errno("cannot delete backup", from, ec.value());
    fsync_path(dir);
    fs::remove_all(to, ec);
    std::lock_guard lk(state_mu);
    summary_cache.erase(id);
  }

  void do_delete(const std::string& id, std::string& message) {
    auto all = scan();
    if (!find(all, id)) throw JobError(ENOENT, "no backup " + id);
    for (const auto& f : all) {
      if (f.summary.id != id && std::find(f.summary.chain.begin(), f.summary.chain.end(), id) != f.summary.chain.end()) {
        throw JobError(ENOTEMPTY, "backup " + id + " is needed by " + f.summary.id + "; delete that first");
      }
    }
    remove_backup(id);
    message = "deleted backup " + id;
  }

  void do_prune(int keep_last, int keep_days, std::string& message, json& detail) {
    auto all = scan();
    // Why each is kept: the newest keep_last, those of the last keep_days
    // days, and every parent a kept backup's chain needs.
    std::set<std::string> newest, recent, keep;
    int64_t cutoff = now_ns() - int64_t(keep_days) * 86400 * 1000000000;
    for (size_t i = 0; i < all.size(); ++i) {
      const Manifest& s = all[i].summary;
      bool by_count = keep_last > 0 && i + size_t(keep_last) >= all.size();
      bool by_age = keep_days > 0 && s.created_ns >= cutoff;
      if (by_count) newest.insert(s.id);
      else if (by_age) recent.insert(s.id);
      if (by_count || by_age) keep.insert(s.chain.begin(), s.chain.end());  // with every parent it needs
    }
    std::vector<std::string> gone, kept;
    for (auto it = all.rbegin(); it != all.rend(); ++it) {  // children before parents
      if (!keep.count(it->summary.id)) {
        remove_backup(it->summary.id);
        gone.push_back(it->summary.id);
      }
    }
    std::reverse(gone.begin(), gone.end());
    for (const auto& f : all) {
      if (keep.count(f.summary.id)) kept.push_back(f.summary.id);
    }
    message = prune_message(gone, kept.size(), newest.size(), recent.size(), keep_days);
    detail["deleted"] = gone;
    detail["kept"] = kept;
  }

  // "deleted 3: A, B, C; kept 6: the 2 newest and the 4 their chains need".
  static std::string prune_message(const std::vector<std::string>& gone, size_t kept, size_t newest, size_t recent,
                                   int keep_days) {
    std::string s = "deleted " + std::to_string(gone.size());
    for (size_t i = 0; i < gone.size(); ++i) s += (i == 0 ? ": " : ", ") + gone[i];
    s += "; kept " + std::to_string(kept);
    std::vector<std::string> why;
    if (newest) why.push_back("the " + std::to_string(newest) + " newest");
    if (recent) {
      why.push_back((newest ? "" : "the ") + std::to_string(recent) + (newest ? " more" : "") + " of the last " +
                    std::to_string(keep_days) + (keep_days == 1 ? " day" : " days"));
    }
    if (size_t needed = kept - newest - recent) {
      why.push_back("the " + std::to_string(needed) + " their " + (needed == 1 ? "chain needs" : "chains need"));
    }
    for (size_t i = 0; i < why.size(); ++i) s += (i == 0 ? ": " : i + 1 == why.size() ? " and " : ", ") + why[i];
    return s;
  }

  // ------------------------------------------------------------ run

  // `scheduled`: an incremental that would hold nothing is skipped.
  store::Status run(std::string_view line, bool scheduled = false) {
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

  // Manager::repair: a job like run()'s, under the same locks.
  store::Status repair(const std::string& id, const std::vector<std::string>& ids, RepairReport& report) {
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

  void finish(const std::string& command, const std::string& name, const std::string& id, int64_t started,
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

  std::string status_json() {
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

  // ------------------------------------------------------------ schedule

  // Wakes the schedule's thread so that it ends (cancel is set); the
  // destructor joins it.
  void stop_schedule_async() {
    {
      std::lock_guard lk(sched_mu);
      sched_stop = true;
    }
    sched_cv.notify_all();
  }

  void stop_schedule() {
    {
      std::lock_guard lk(sched_mu);
      sched_stop = true;
    }
    sched_cv.notify_all();
    if (sched.joinable()) sched.join();
    std::lock_guard lk(sched_mu);
    sched_stop = false;
  }

  void schedule_loop(std::chrono::seconds every, int keep_last) {
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
};

Manager::Manager(store::Store& store, Options options) : impl_(std::make_unique<Impl>(store, std::move(options))) {}

Manager::~Manager() {
  impl_->cancel = true;
  impl_->stop_schedule();
  std::lock_guard wait(impl_->job_mu);  // a job run by another thread ends (cancelled) first
}

void Manager::cancel() {
  impl_->cancel = true;
  impl_->stop_schedule_async();
}

store::Status Manager::run(std::string_view command_line) {
  try {
    return impl_->run(command_line);
  } catch (...) {
    return store::Status::error(EIO, "backup job failed unexpectedly");
  }
}

store::Status Manager::repair(std::string_view backup_id, const std::vector<std::string>& ids, RepairReport& out) {
  out = RepairReport{};
  if (!valid_backup_id(backup_id)) return store::Status::error(EINVAL, "not a backup id: " + std::string(backup_id));
  try {
    return impl_->repair(std::string(backup_id), ids, out);
  } catch (...) {
    return store::Status::error(EIO, "repair failed unexpectedly");
  }
}

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

bool Manager::job_running() {
  std::lock_guard lk(impl_->state_mu);
  return impl_->running;
}

std::string Manager::status_json() {
  try {
    return impl_->status_json();
  } catch (...) {
    return "{\"state\": \"unknown\"}\n";
  }
}

std::vector<BackupEntry> Manager::list() {
  std::vector<BackupEntry> out;
  try {
    for (const auto& f : impl_->scan()) {
      BackupEntry b;
      const Manifest& s = f.summary;
      b.id = s.id;
      b.kind = s.kind;
      b.parent = s.parent;
      b.created_ns = s.created_ns;
      b.encrypted = s.encrypted;
      b.item_count = s.item_count;
      b.archived_count = s.archived_count;
      fs::path bdir = impl_->dir / s.id;
      for (const std::string& name : {std::string(kManifestFile), f.archive_name, f.archive_name + ".sha256",
                                      std::string(kVerifyFile)}) {
        std::error_code ec;
        auto st = fs::status(bdir / name, ec);
        if (ec || !fs::is_regular_file(st)) continue;
        uint64_t size = fs::file_size(bdir / name, ec);
        if (ec) continue;
        auto mt = fs::last_write_time(bdir / name, ec);
        if (ec) continue;
        auto sys = std::chrono::file_clock::to_sys(mt);
        int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(sys.time_since_epoch()).count();
        b.files.push_back({name, size, ns});
      }
      try {
        std::string v = read_small_file(bdir / kVerifyFile, 1 << 16);
        json j = json::parse(v);
        b.verified_ns = j.value("verified_ns", int64_t(0));
        b.verified_ok = j.value("ok", false);
      } catch (...) {
      }
      out.push_back(std::move(b));
    }
  } catch (...) {
  }
  return out;
}

std::filesystem::path Manager::path_of(std::string_view id, std::string_view file) {
  if (!valid_backup_id(id)) return {};
  std::string sid(id), name(file);
  bool known = name == kManifestFile || name == kVerifyFile || name == sid + ".tar.gz" ||
               name == sid + ".tar.gz.enc" || name == sid + ".tar.gz.sha256" || name == sid + ".tar.gz.enc.sha256";
  if (!known) return {};
  fs::path bdir = impl_->dir / sid;
  std::error_code ec;
  // Regular files only, not through a link: a link to a device or a FIFO
  // would hang its reader, a link elsewhere would serve another file.
  if (!fs::is_regular_file(fs::symlink_status(bdir / kManifestFile, ec)) ||
      !fs::is_regular_file(fs::symlink_status(bdir / name, ec))) {
    return {};
  }
  return bdir / name;
}

void Manager::on_restore(std::function<void(const std::vector<std::string>&)> fn) {
  std::lock_guard lk(impl_->state_mu);
  impl_->restore_fn = std::move(fn);
}

void Manager::on_log(std::function<void(std::string_view)> fn) {
  std::lock_guard lk(impl_->state_mu);
  impl_->log_fn = std::move(fn);
}

void Manager::start_schedule(std::chrono::seconds every, int keep_last) {
  impl_->stop_schedule();
  if (every.count() <= 0) return;
  {
    std::lock_guard lk(impl_->state_mu);
    impl_->sched_every_s = every.count();
  }
  impl_->sched = std::thread([this, every, keep_last] { impl_->schedule_loop(every, keep_last); });
}

const std::filesystem::path& Manager::dir() const { return impl_->dir; }

store::Status decrypt(const std::filesystem::path& archive, const std::filesystem::path& key_file, std::ostream& out) {
  try {
    auto key = load_key(key_file);
    FileSource raw(archive);
    DecryptSource dec(raw, *key, archive.filename().string());
    std::vector<char> buf(128 * 1024);
    for (size_t n; (n = dec.read(buf.data(), buf.size())) > 0;) {
      out.write(buf.data(), static_cast<std::streamsize>(n));
      if (!out) return store::Status::error(EIO, "cannot write the decrypted archive");
    }
    out.flush();
    if (!out) return store::Status::error(EIO, "cannot write the decrypted archive");
    return {};
  } catch (const JobError& e) {
    return store::Status::error(e.code() == EACCES || e.code() == EINVAL ? e.code() : EIO, e.what());
  } catch (const std::exception& e) {
    return store::Status::error(EIO, e.what());
  }
}

}  // namespace itemfs::backup
