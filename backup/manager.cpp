// Manager: the public face of the backup engine (backup.h has the
// contract); the work is done by Manager::Impl (impl.h).
#include <chrono>
#include <system_error>

#include "backup/impl.h"

namespace itemfs::backup {

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
