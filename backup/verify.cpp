// Verify: an archive against its .sha256, its MANIFEST.json against
// manifest.json, and every item against the manifest.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <istream>

#include "backup/impl.h"

namespace itemfs::backup {

namespace {

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

}  // namespace

Manager::Impl::VerifyResult Manager::Impl::verify_one(const Found& f, const std::vector<Found>& all, const Key* key) {
  VerifyResult r;
  const std::string& id = f.summary.id;
  fs::path bdir = dir / id;
  rename_phase("verifying " + id);

  for (const auto& cid : f.summary.chain) {
    if (cid != id && !find(all, cid)) r.add("backup " + cid + " of this chain is missing; it cannot be restored");
  }

  base::Sha256 expected{};
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
      base::Sha256 got = raw->sha256();
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

void Manager::Impl::verify_contents(TarReader& tar, const Found& f, VerifyResult& r) {
  const std::string& id = f.summary.id;
  Manifest m;
  // Sorted by id, as the archive holds them: a lookup is mostly the next entry.
  std::vector<MapEntry> items;
  base::Sha256 inner{};
  {
    uint64_t limit = kMaxManifest;
    if (!f.summary.encrypted) ::close(open_regular(dir / id / kManifestFile, &limit));
    std::string text = read_manifest_entry(tar, id, limit);
    inner = base::sha256_of(text);
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
      base::Sha256 sha{};
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
    base::Sha256 got = h.finish();
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
    if (im.archive == self && !im.seen) r.add("missing from the archive: " + store::item_path(iid));
  }
  if (count != m.archived_count) {
    r.add("archive holds " + std::to_string(count) + " items, manifest says " + std::to_string(m.archived_count));
  }
}

std::string Manager::Impl::verify_message(const std::string& id, const VerifyResult& r) {
  if (r.ok) return "backup " + id + " verified ok";
  std::string s = "backup " + id + " is damaged: " + r.problems.front();
  if (r.problems.size() + r.more > 1) s += " (and " + std::to_string(r.problems.size() - 1 + r.more) + " more)";
  return s;
}

uint64_t Manager::Impl::total_items(const std::vector<const Found*>& backups) {
  uint64_t n = 0;
  for (const Found* f : backups) n += f->summary.archived_count;
  return n;
}

uint64_t Manager::Impl::total_bytes(const std::vector<const Found*>& backups) {
  uint64_t n = 0;
  for (const Found* f : backups) n += f->summary.archived_bytes;
  return n;
}

void Manager::Impl::do_verify(const std::string& id, bool every, std::string& message, json& detail) {
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

}  // namespace itemfs::backup
