// Store::fsck(): every blob and item checked, and (with repair) reference
// counts and missing shard directories put right.

#include "store/sqlite/store_impl.h"

#include <sys/stat.h>
#include <set>

namespace itemfs::store::sqlite {

FsckReport StoreImpl::fsck(bool repair, const FsckProgress& progress) {
  FsckReport report;
  auto reader = acquire();
  auto& db = *reader;
  uint64_t total = 0;
  auto checked = [&] {
    const uint64_t done = report.blobs_checked + report.items_checked;
    if (progress && done % 1024 == 0) progress(done, total);
  };
  {
    Stmt s(db.handle(), "PRAGMA quick_check");
    while (s.step())
      if (s.text(0) != "ok") report.problems.push_back("sqlite: " + std::string(s.text(0)));
  }
  db.exec("BEGIN");
  if (progress) {
    Stmt s(db.handle(), "SELECT (SELECT count(*) FROM blobs) + (SELECT count(*) FROM items)");
    if (s.step()) total = uint64_t(s.int64(0));
    progress(0, total);
  }
  // The dictionaries new blobs are compressed with exist.
  {
    Stmt s(db.handle(), "SELECT key, value FROM meta WHERE key IN ('current_dict', 'dict_set')");
    while (s.step()) {
      for (int64_t id : parse_ids(s.text(1))) {
        Stmt d(db.handle(), "SELECT 1 FROM dicts WHERE id=?");
        d.bind(1, id);
        if (!d.step())
          report.problems.push_back("meta." + std::string(s.text(0)) + " names dictionary #" + std::to_string(id) +
                                    ", which is missing");
      }
    }
    // And every dictionary decodes.
    Stmt d(db.handle(), "SELECT id FROM dicts");
    while (d.step())
      if (!read_dictionary(db, d.int64(0)))
        report.problems.push_back("dictionary #" + std::to_string(d.int64(0)) + " is damaged");
  }
  // The hashes of the blobs stored without one (format 3): those of the
  // one-chunk items that use them.
  std::unordered_map<int64_t, std::string> held_hashes;
  {
    Stmt s(db.handle(),
           "SELECT c.blob, i.sha256 FROM items i JOIN chunks c ON c.ino = i.ino AND c.seq = 0 JOIN blobs b ON "
           "b.id = c.blob WHERE i.size <= ? AND length(b.sha256) = 0");
    s.bind(1, int64_t(kChunkSize));
    while (s.step()) held_hashes.emplace(s.int64(0), std::string(s.blob(1)));
  }
  // Every blob: decodes, has its raw size and hashes to its name.
  std::set<int64_t> bad_blobs;
  std::unordered_map<int64_t, int64_t> recorded_refs;
  std::unordered_map<std::string, int64_t> stored_times;  // blobs of each content
  {
    Stmt s(db.handle(), "SELECT id, sha256, raw_size, codec, dict_id, refs, data, stored_size FROM blobs");
    while (s.step()) {
      ++report.blobs_checked;
      checked();
      int64_t id = s.int64(0);
      BlobRow row;
      std::string digest(s.blob(1));
      bool unknown = false;  // no hash to check it against (the items check their content)
      if (digest.empty()) {
        if (auto it = held_hashes.find(id); it != held_hashes.end()) {
          digest = it->second;
        } else {
          report.problems.push_back("blob #" + std::to_string(id) +
                                    ": stored without its SHA-256, and no one-chunk item uses it");
          unknown = true;
        }
      }
      std::string name = unknown ? "#" + std::to_string(id)
                         : digest.size() == 32 ? to_hex([&] {
                             Sha256 d{};
                             std::copy(digest.begin(), digest.end(), d.begin());
                             return d;
                           }())
                                               : "(bad sha256 column)";
      if (!unknown) ++stored_times[digest];
      row.raw_size = uint64_t(s.int64(2));
      row.codec = int(s.int64(3));
      row.dict_id = s.is_null(4) ? 0 : s.int64(4);
      recorded_refs[id] = s.int64(5);
      row.data = std::string(s.blob(6));
      if (uint64_t(s.int64(7)) != row.data.size())
        report.problems.push_back("blob " + name + ": stored_size does not match its data");
      std::string problem;
      auto bytes = decode(db, row, &problem);
      if (!bytes) {
        report.problems.push_back("blob " + name + ": " + problem);
        bad_blobs.insert(id);
      } else if (!unknown && to_hex(base::sha256_of(*bytes)) != name) {
        report.problems.push_back("blob " + name + ": content does not match its SHA-256");
        bad_blobs.insert(id);
      }
    }
  }
  // One blob for each content (the store keeps it so; no index enforces it).
  for (const auto& [digest, times] : stored_times) {
    if (times < 2) continue;
    Sha256 d{};
    if (digest.size() == d.size()) std::copy(digest.begin(), digest.end(), d.begin());
    report.problems.push_back("blob " + to_hex(d) + ": stored " + std::to_string(times) + " times");
  }
  // Reference counts equal the chunk rows that use each blob.
  std::unordered_map<int64_t, int64_t> actual_refs;
  {
    Stmt s(db.handle(), "SELECT blob, count(*) FROM chunks GROUP BY blob");
    while (s.step()) actual_refs[s.int64(0)] = s.int64(1);
  }
  std::vector<std::pair<int64_t, int64_t>> ref_fixes;
  for (auto [id, refs] : recorded_refs) {
    int64_t actual = actual_refs.count(id) ? actual_refs[id] : 0;
    if (actual != refs) {
      report.problems.push_back("blob #" + std::to_string(id) + ": reference count " + std::to_string(refs) +
                                ", used " + std::to_string(actual) + " times");
      ref_fixes.emplace_back(id, actual);
    }
  }
  for (auto [id, count] : actual_refs)
    if (!recorded_refs.count(id))
      report.problems.push_back("chunk refers to missing blob #" + std::to_string(id));
  // Every item: its chunks add up to its size and hash to its sha256.
  std::vector<std::string> missing_dirs;
  {
    std::set<std::string> dirs;
    Stmt d(db.handle(), "SELECT name FROM dirs");
    while (d.step()) dirs.emplace(d.text(0));
    Stmt s(db.handle(), "SELECT ino, id, size, sha256, mode, uid, gid, mtime_ns, ctime_ns, shard FROM items");
    while (s.step()) {
      ++report.items_checked;
      checked();
      ItemInfo item = item_from(s);
      std::string shard(s.text(9));
      if (shard != shard_of(item.id)) report.problems.push_back("item " + item.id + ": recorded in the wrong shard");
      if (!dirs.count(shard)) {
        report.problems.push_back("item " + item.id + ": shard directory " + shard + " is missing");
        missing_dirs.push_back(shard);
        dirs.insert(shard);
      }
      base::Sha256Hasher hasher;
      uint64_t size = 0;
      bool readable = true;
      std::string list_problem;
      const std::vector<ReadChunk> chunks = chunk_list(db, item, &list_problem);
      if (!list_problem.empty()) {
        report.problems.push_back("item " + item.id + ": " + list_problem);
        report.damaged_items.push_back(item.id);
        continue;
      }
      for (const ReadChunk& chunk : chunks) {
        if (bad_blobs.count(chunk.blob)) {
          readable = false;
          continue;
        }
        auto bytes = load_blob(db, chunk.blob);
        if (!bytes) {
          readable = false;
          continue;
        }
        hasher.update(*bytes);
        size += bytes->size();
      }
      if (!readable) {
        report.problems.push_back("item " + item.id + ": content damaged (a blob it uses failed its check)");
        report.damaged_items.push_back(item.id);
      } else if (size != item.size) {
        report.problems.push_back("item " + item.id + ": chunks hold " + std::to_string(size) + " bytes, size says " +
                                  std::to_string(item.size));
        report.damaged_items.push_back(item.id);
      } else if (hasher.finish() != item.sha256) {
        report.problems.push_back("item " + item.id + ": content does not match its SHA-256");
        report.damaged_items.push_back(item.id);
      }
    }
  }
  db.exec("COMMIT");
  if (progress) progress(report.blobs_checked + report.items_checked, total);
  if (repair && (!ref_fixes.empty() || !missing_dirs.empty())) {
    // Counted again inside the write transaction: the mount may have
    // committed since the read above, and a blob it now uses must not go.
    write([&](WriteBatch&) {
      Db& w = *writer_;
      w.exec(
          "UPDATE blobs SET refs=(SELECT count(*) FROM chunks WHERE chunks.blob=blobs.id) "
          "WHERE refs<>(SELECT count(*) FROM chunks WHERE chunks.blob=blobs.id)");
      report.repaired += uint64_t(sqlite3_changes(w.handle()));
      w.exec("DELETE FROM blobs WHERE refs=0");
      int64_t now = base::now_ns();
      for (const auto& shard : missing_dirs) {
        auto s = w.cached("INSERT OR IGNORE INTO dirs(name, mode, uid, gid, mtime_ns, ctime_ns) VALUES(?,?,0,0,?,?)");
        s->bind(1, shard).bind(2, int64_t(S_IFDIR | 0755)).bind(3, now).bind(4, now).run();
        report.repaired += uint64_t(sqlite3_changes(w.handle()));
      }
    });
  }
  return report;
}

}  // namespace itemfs::store::sqlite
