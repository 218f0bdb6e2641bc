// Repair: damaged stored content rewritten from a backup that holds the
// version the store records (Manager::repair).
#include <map>
#include <set>

#include "backup/impl.h"

namespace itemfs::backup {

void Manager::Impl::do_repair(const std::string& id, const std::vector<std::string>& ids, RepairReport& report,
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

}  // namespace itemfs::backup
