// Restore: a backup's chain, verified, applied in one store write batch;
// all of it or the items chosen by path or glob.
#include <fnmatch.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "backup/impl.h"

namespace itemfs::backup {

namespace {

constexpr uint64_t kSpoolInMemory = 1 << 20;

}  // namespace

std::unique_ptr<std::istream> Manager::Impl::spool(TarReader& tar, uint64_t size, Sha256Hasher& h, const fs::path& spool_dir,
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

bool Manager::Impl::reads_right(store::Snapshot& snap, const store::ItemInfo& info) {
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

std::string Manager::Impl::read_entry(TarReader& tar, const ItemMeta& im, const std::string& what) {
  if (im.size > store.options().max_item_size) {
    throw JobError(EIO, what + ": " + std::to_string(im.size) + " bytes, more than the store's largest item");
  }
  std::string bytes;
  std::vector<char> buf(64 * 1024);
  for (size_t n; (n = tar.read(buf.data(), buf.size())) > 0;) {
    if (bytes.size() + n > im.size) throw JobError(EIO, what + " is longer than the manifest says");
    bytes.append(buf.data(), n);
  }
  if (bytes.size() != im.size || base::sha256_of(bytes) != im.sha256) {
    throw JobError(EIO, what + " does not match the manifest");
  }
  return bytes;
}

void Manager::Impl::choose_items(Manifest& m, const std::vector<std::string>& include) {
  std::vector<uint64_t> hits(include.size(), 0);
  for (auto it = m.items.begin(); it != m.items.end();) {
    const std::string path = store::item_path(it->first);
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

std::vector<std::string> Manager::Impl::do_restore(const std::string& id, bool clear, const std::vector<std::string>& include,
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

}  // namespace itemfs::backup
