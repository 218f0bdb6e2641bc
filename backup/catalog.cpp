// The backup directory: the complete backups in it (scan, their manifests
// and archives), its job lock, and removing a backup.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>

#include "backup/impl.h"

namespace itemfs::backup {

namespace {

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

}  // namespace

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

std::unique_ptr<Key> Manager::Impl::need_key(const std::string& why) {
  if (!opt.key_file) throw JobError(EACCES, why + " needs the backup key (backup_key=FILE)");
  return load_key(*opt.key_file);
}

std::vector<Manager::Impl::Found> Manager::Impl::scan() {
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

std::string Manager::Impl::key_id_of(const Found& f) {
  if (!f.summary.encrypted) return "";
  if (!f.summary.key_id.empty()) return f.summary.key_id;
  std::string id = archive_key_id(dir / f.summary.id / f.archive_name);
  return id.empty() ? "?" : id;
}

const Manager::Impl::Found* Manager::Impl::find(const std::vector<Found>& all, const std::string& id) {
  for (const auto& f : all) {
    if (f.summary.id == id) return &f;
  }
  return nullptr;
}

OpenArchive Manager::Impl::open_archive(const Found& f, const Key* key) {
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

Manifest Manager::Impl::full_manifest(const Found& f, const Key* key) {
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

void Manager::Impl::lock_dir(DirLock& lock) {
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

void Manager::Impl::sorted_map(const Found& f, const Key* key, Manifest& header, std::vector<MapEntry>& items) {
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

std::string Manager::Impl::read_manifest_entry(TarReader& tar, const std::string& what, uint64_t limit) {
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

std::unique_ptr<Key> Manager::Impl::key_if_needed(const std::vector<const Found*>& backups, const std::string& why) {
  for (const Found* f : backups) {
    if (f->summary.encrypted) return need_key(why + " " + f->summary.id);
  }
  return nullptr;
}

void Manager::Impl::remove_backup(const std::string& id) {
  fs::path from = dir / id, to = dir / (".del-" + id);
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec) throw_errno("cannot delete backup", from, ec.value());
  fsync_path(dir);
  fs::remove_all(to, ec);
  std::lock_guard lk(state_mu);
  summary_cache.erase(id);
}

}  // namespace itemfs::backup
