// A backup's archive (the last steps of Manager::Impl::do_backup): the
// store's bytes read on one core while MANIFEST.json, SHA256SUMS and the
// items go through tar, gzip (and encryption) on another; manifest.json
// beside the archive, the .sha256 sidecar, then the rename into place.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>

#include "backup/create.h"

namespace itemfs::backup {

namespace {

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

void close_synced(File& f, const fs::path& path) {
  if (std::fflush(f.get()) != 0 || ::fsync(::fileno(f.get())) != 0) throw_errno("cannot write", path, errno);
  std::FILE* raw = f.release();
  if (std::fclose(raw) != 0) throw_errno("cannot close", path, errno);
}

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

}  // namespace

JobError Manager::Impl::damaged_item(const std::string& iid, const std::string& why) {
  return JobError(EIO, "store item " + iid + " is damaged (" + why + "); run `itemfs fsck " + store.dir().string() +
                           " --repair --from-backup ID` with a backup that holds it, or remove the item");
}

void Manager::Impl::write_archive(Build& b) {
  // Reading the store (SQLite, zlib, SHA-256) runs in a producer thread
  // while this one writes the manifest, then tar and gzip: two cores, as
  // `tar czf` uses. An incremental's producer also makes the items' part
  // of the archive (tar and deflate) as a segment of its own, spliced in
  // after the manifest: the manifest and the items are then written at
  // the same time.
  set_phase("writing archive", b.m.archived_count, b.m.archived_bytes);
  const int items_level = b.incr ? std::min(opt.gzip_level, kItemsLevelIncremental) : opt.gzip_level;
  std::unique_ptr<SpoolSink> segment_blocks;
  std::unique_ptr<TarWriter> segment;
  if (b.incr) {
    segment_blocks = std::make_unique<SpoolSink>(b.tmp, kSegmentInMemory);
    segment = std::make_unique<TarWriter>(*segment_blocks, items_level, GzipSink::Mode::kSegment);
  }
  std::exception_ptr segment_error;
  std::atomic<bool> segment_stop{false};
  PieceQueue queue;
  std::thread producer([&] {
    if (segment) {
      try {
        Sha256Hasher h;
        for (const Row& r : b.rows) {
          if (r.meta.archive != b.self) continue;
          if (segment_stop.load(std::memory_order_relaxed)) return;
          check_cancel();
          const store::ItemInfo info = b.item_of(r);
          segment->begin(store::item_path(info.id), info.size, info.attrs.mode, info.attrs.uid, info.attrs.gid,
                         info.attrs.mtime_ns);
          try {
            b.snap->read_item(info, [&](std::string_view chunk) {
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
      for (const Row& r : b.rows) {
        if (r.meta.archive != b.self) continue;
        check_cancel();
        const store::ItemInfo info = b.item_of(r);
        Piece begin;
        begin.info = info;
        queue.push(std::move(begin));
        try {
          b.snap->read_item(info, [&](std::string_view chunk) {
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
  for (const Row& r : b.rows) {
    if (r.meta.archive == b.self) sums_text += sha256sums_line(r.meta.sha256, store::item_path(b.id_of(r)));
  }

  // Pass 2: the archive.
  std::string archive_name = b.id + (b.key ? ".tar.gz.enc" : ".tar.gz");
  fs::path archive_path = b.tmp / archive_name;
  fs::path man_path = b.tmp / kManifestFile;
  FileSink file(archive_path);
  std::unique_ptr<EncryptSink> enc;
  if (b.key) enc = std::make_unique<EncryptSink>(file, *b.key);
  ByteSink& sink = enc ? static_cast<ByteSink&>(*enc) : file;
  {
    // An incremental's MANIFEST.json is mostly the parent's map again:
    // deflating it would cost more than the changed items themselves, so
    // it is stored (gzip level 0); a full backup compresses everything.
    TarWriter tw(sink, b.incr ? kManifestLevelIncremental : opt.gzip_level);
    {
      // MANIFEST.json, made and written a piece at a time (never the
      // whole map in memory), also into manifest.json beside the archive
      // (fsynced at the end: the disk writes it meanwhile).
      std::unique_ptr<ManFile> man;
      if (!b.key) man = std::make_unique<ManFile>(man_path);
      std::string piece;
      piece.reserve(kManifestPiece + 4096);
      ManifestWriter w(piece);
      w.begin(b.m, true);
      tw.begin("MANIFEST.json", piece.size() + b.lines_bytes + ManifestWriter::framing_size(b.rows.size()), 0644,
               static_cast<uint32_t>(::getuid()), static_cast<uint32_t>(::getgid()), b.created);
      auto flush = [&] {
        tw.data(piece.data(), piece.size());
        if (man) man->write(piece);
        piece.clear();
      };
      const std::string_view ptext = b.parent_file ? b.parent_file->text() : std::string_view();
      for (const Row& r : b.rows) {
        w.raw_item(r.in_parent ? ptext.substr(r.line_off, r.line_len) : std::string_view(b.lines).substr(r.line_off, r.line_len));
        if (piece.size() >= kManifestPiece) flush();
      }
      w.end();
      flush();
      tw.end();
      if (man) man->close();
    }
    std::string().swap(b.lines);
    add_memory_entry(tw, "SHA256SUMS", sums_text, b.created);
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
          tw.begin(store::item_path(piece.info.id), piece.info.size, piece.info.attrs.mode, piece.info.attrs.uid,
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
    b.snap.reset();  // the point in time is captured; let writers' WAL checkpoint
    rename_phase("syncing");
    tw.close();  // finishes the sinks: encryption trailer, fsync
  }
  b.archive_sha256 = file.sha256();
  b.archive_bytes = file.bytes();
}

// The sidecar, manifest.json of an encrypted backup (its header only), the
// fsyncs, and the rename that makes the backup complete.
void Manager::Impl::seal_backup(Build& b) {
  std::error_code ec;
  const std::string archive_name = b.id + (b.key ? ".tar.gz.enc" : ".tar.gz");
  const fs::path man_path = b.tmp / kManifestFile;
  const base::Sha256& digest = b.archive_sha256;
  write_file_atomic(b.tmp / (archive_name + ".sha256"), hex(digest.data(), digest.size()) + "  " + archive_name + "\n");

  if (b.key) {
    std::string summary_text;
    ManifestWriter w(summary_text);
    w.begin(b.m, false);
    w.end();
    File summary = open_write(man_path);
    if (std::fwrite(summary_text.data(), 1, summary_text.size(), summary.get()) != summary_text.size()) {
      throw_errno("cannot write", man_path, errno);
    }
    close_synced(summary, man_path);
  } else {
    fsync_path(man_path);
  }
  fsync_path(b.tmp);
  fs::rename(b.tmp, dir / b.id, ec);
  if (ec) throw_errno("cannot rename", b.tmp, ec.value());
  b.tmp_armed = false;
  fsync_path(dir);
}

}  // namespace itemfs::backup
