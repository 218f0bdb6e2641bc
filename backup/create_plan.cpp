// A backup's plan (Manager::Impl::do_backup and its first steps): the
// store's items read in one snapshot, compared in id order with the
// parent's map, giving the new backup's map and what its archive holds.
#include <algorithm>
#include <charconv>
#include <map>
#include <sstream>
#include <tuple>

#include "backup/create.h"

namespace itemfs::backup {

namespace {

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

std::string human_bytes(uint64_t b) {
  char buf[32];
  if (b < 10 * 1024) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
  else if (b < 10ull * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.1f KiB", double(b) / 1024);
  else if (b < 10ull * 1024 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.1f MiB", double(b) / 1048576);
  else std::snprintf(buf, sizeof buf, "%.1f GiB", double(b) / 1073741824);
  return buf;
}

}  // namespace

Manager::Impl::Build::~Build() {
  if (parent_reader.joinable()) parent_reader.join();
  std::error_code ec;
  if (tmp_armed) fs::remove_all(tmp, ec);
}

store::ItemInfo Manager::Impl::Build::item_of(const Row& r) const {
  store::ItemInfo info;
  info.ino = r.ino;
  info.id = id_of(r);
  info.size = r.meta.size;
  info.attrs = {r.meta.mode, r.meta.uid, r.meta.gid, r.meta.mtime_ns};
  info.sha256 = r.meta.sha256;
  return info;
}

void Manager::Impl::Build::new_line(Row& r) {
  r.in_parent = false;
  r.line_off = lines.size();
  ManifestWriter::line(lines, id_of(r), r.meta, m.default_mode, m.default_uid, m.default_gid);
  r.line_len = static_cast<uint32_t>(lines.size() - r.line_off);
}

std::string Manager::Impl::do_backup(bool incremental, bool skip_unchanged, std::string& message) {
  Build b;
  b.incremental = incremental;
  b.skip_unchanged = skip_unchanged;
  b.all = scan();
  if (opt.key_file) b.key = load_key(*opt.key_file);
  choose_parent(b);
  scan_store(b);
  name_backup(b);
  map_items(b);
  if (b.incr && b.skip_unchanged && b.m.archived_count == 0 && b.m.deleted.empty()) {
    message = "skipped: nothing changed since " + b.m.parent + " (" + std::to_string(b.m.item_count) +
              " items); no backup taken";
    return "";
  }
  write_archive(b);
  seal_backup(b);

  const Manifest& m = b.m;
  std::ostringstream msg;
  msg << "backup " << b.id << " (" << m.kind << (b.incr ? " on " + m.parent : "") << "): " << m.archived_count
      << " of " << m.item_count << " items, " << human_bytes(m.archived_bytes) << " of items in a "
      << human_bytes(b.archive_bytes) << " archive";
  if (b.incr) msg << ", " << m.deleted.size() << " deleted";
  if (incremental && !b.incr) msg << (b.all.empty() ? "; no earlier backup, so a full one" : "; a full one: " + b.why_full);
  message = msg.str();
  return b.id;
}

// An incremental holds only what changed: it chains onto a backup encrypted
// with the same key, or onto a plain one when there is no key, never across
// (the unchanged items would stay in clear, or under another key). Anything
// else starts a new full backup. An incremental reads its parent's map on a
// second core while this one reads the store. manifest.json is mapped, not
// copied, and in the layout itemfs writes only its header is parsed: the
// lines of the unchanged items are compared with the store's and copied as
// they are.
void Manager::Impl::choose_parent(Build& b) {
  b.key_id = b.key ? hex(b.key->id.data(), b.key->id.size()) : "";
  if (b.incremental && !b.all.empty()) {
    const std::string parent_key_id = key_id_of(b.all.back());
    if (parent_key_id != b.key_id) {
      b.why_full = parent_key_id.empty() ? "the newest backup is not encrypted and a backup key is given"
                   : b.key_id.empty()    ? "the newest backup is encrypted and no backup key is given"
                                         : "the backup key is not the one the newest backup was encrypted with";
    }
  }
  b.incr = b.incremental && !b.all.empty() && b.why_full.empty();
  if (!b.incr) return;
  b.parent = &b.all.back();
  b.parent_reader = std::thread([this, &b] {
    const Found& parent = *b.parent;
    try {
      if (!parent.summary.encrypted) {
        fs::path p = dir / parent.summary.id / kManifestFile;
        b.parent_file = std::make_unique<MappedFile>(p);
        b.by_lines = b.cursor.open(b.parent_file->text(), b.parent_header) && b.parent_header.has_defaults;
        if (!b.by_lines) {
          b.parent_header = Manifest{};
          read_manifest_sorted(b.parent_file->text(), b.parent_header, b.parent_items, p.string());
        }
        if (b.parent_header.id != parent.summary.id) {
          throw JobError(EIO, parent.summary.id + ": manifest names another backup " + b.parent_header.id);
        }
      } else {
        sorted_map(parent, b.key.get(), b.parent_header, b.parent_items);
      }
    } catch (...) {
      b.parent_error = std::current_exception();
    }
  });
}

// Pass 1: the store's items (metadata only), read in table order (one pass
// over the table's pages, no index walk), then put in id order. The ids
// share one buffer: a string each would be an allocation each.
void Manager::Impl::scan_store(Build& b) {
  b.created = now_ns();
  if (!b.all.empty()) b.created = std::max(b.created, b.all.back().summary.created_ns + 1);
  b.snap = store.snapshot();
  set_phase("scanning", 0, 0);
  // Room for as many items as the newest backup saw, and a few more: the
  // vector then need not grow (and move every row) while it is filled. A
  // hint only, so bounded whatever that manifest says.
  if (!b.all.empty()) {
    uint64_t seen = std::min<uint64_t>(b.all.back().summary.item_count, uint64_t(1) << 20);
    b.rows.reserve(seen + seen / 16 + 64);
    b.ids.reserve((seen + seen / 16 + 64) * 20);
  }
  store::Store::scan_items(*b.snap, [&](const store::ItemInfo& info) {
    check_cancel();
    Row& r = b.rows.emplace_back();
    r.meta = meta_of(info);
    r.ino = info.ino;
    r.id_off = b.ids.size();
    r.id_len = static_cast<uint32_t>(info.id.size());
    b.ids += info.id;
    items_done.fetch_add(1, std::memory_order_relaxed);
  });
  auto by_id = [&](const Row& x, const Row& y) { return b.id_of(x) < b.id_of(y); };
  if (!std::is_sorted(b.rows.begin(), b.rows.end(), by_id)) std::sort(b.rows.begin(), b.rows.end(), by_id);
  if (b.parent_reader.joinable()) b.parent_reader.join();
  if (b.parent_error) std::rethrow_exception(b.parent_error);
  if (b.incr && b.parent_header.chain != b.parent->summary.chain) {
    throw JobError(EIO, b.parent->summary.id + ": manifest.json changed while it was read");
  }
}

// The new backup's id, the directory it is written in (.tmp-ID) and its
// manifest's header; the attributes that the most items share are the
// map's defaults, which item entries leave out.
void Manager::Impl::name_backup(Build& b) {
  std::string base = compact_time(b.created) + (b.incr ? "-incr" : "-full");
  b.id = base;
  std::error_code ec;
  for (int n = 2; fs::exists(dir / b.id, ec) || fs::exists(dir / (".tmp-" + b.id), ec); ++n) {
    b.id = base + "-" + std::to_string(n);
  }
  {
    std::lock_guard lk(state_mu);
    job_id = b.id;
  }
  b.tmp = dir / (".tmp-" + b.id);
  make_private_dir(b.tmp, ec);
  if (ec) throw_errno("cannot create", b.tmp, ec.value());
  b.tmp_armed = true;

  Manifest& m = b.m;
  m.format_version = kFormatVersion;
  m.id = b.id;
  m.kind = b.incr ? "incremental" : "full";
  m.parent = b.incr ? b.parent->summary.id : "";
  m.created_ns = b.created;
  m.encrypted = b.key != nullptr;
  m.key_id = b.key_id;
  m.chain = b.incr ? b.parent->summary.chain : std::vector<std::string>{};
  m.chain.push_back(b.id);
  b.self = static_cast<uint32_t>(m.chain.size() - 1);
  std::map<std::tuple<uint32_t, uint32_t, uint32_t>, size_t> attrs;
  for (const Row& r : b.rows) ++attrs[{r.meta.mode, r.meta.uid, r.meta.gid}];
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
// Every entry's line of the new map is the parent's (r.in_parent), or is
// written into b.lines. Then the counts of the manifest.
void Manager::Impl::map_items(Build& b) {
  Manifest& m = b.m;
  // By the parent's lines only with the same item_defaults.
  if (b.by_lines && (b.parent_header.default_mode != m.default_mode || b.parent_header.default_uid != m.default_uid ||
                     b.parent_header.default_gid != m.default_gid)) {
    b.by_lines = false;
    b.parent_header = Manifest{};
    fs::path p = dir / b.parent->summary.id / kManifestFile;
    read_manifest_sorted(b.parent_file->text(), b.parent_header, b.parent_items, p.string());
  }
  if (b.by_lines && !map_by_parent_lines(b)) {
    // Not the layout itemfs writes after all: parse it as JSON.
    b.by_lines = false;
    m.deleted.clear();
    b.lines.clear();
    b.parent_header = Manifest{};
    fs::path p = dir / b.parent->summary.id / kManifestFile;
    read_manifest_sorted(b.parent_file->text(), b.parent_header, b.parent_items, p.string());
  }
  if (!b.by_lines) {
    b.lines.reserve(b.incr ? b.rows.size() / 32 * 128 + 4096 : b.rows.size() * 120 + 4096);
    size_t pi = 0;
    const auto& parent_items = b.parent_items;
    for (Row& r : b.rows) {
      r.meta.archive = b.self;
      const std::string_view rid = b.id_of(r);
      if (b.incr) {
        while (pi < parent_items.size() && parent_items[pi].id < rid) m.deleted.push_back(parent_items[pi++].id);
        if (pi < parent_items.size() && parent_items[pi].id == rid) {
          if (same_meta(parent_items[pi].meta, r.meta)) r.meta.archive = parent_items[pi].meta.archive;
          ++pi;
        }
      }
      b.new_line(r);
    }
    while (pi < parent_items.size()) m.deleted.push_back(parent_items[pi++].id);
    std::vector<MapEntry>().swap(b.parent_items);
  }
  for (const Row& r : b.rows) {
    ++m.item_count;
    m.item_bytes += r.meta.size;
    b.lines_bytes += r.line_len;
    if (r.meta.archive == b.self) {
      ++m.archived_count;
      m.archived_bytes += r.meta.size;
    }
  }
}

// With the same item_defaults, an item is unchanged exactly when the
// parent's line is the one this map would have for it with the parent's
// archive index (the chain up to the parent is the same). False when the
// parent's manifest.json turns out not to have the layout itemfs writes.
bool Manager::Impl::map_by_parent_lines(Build& b) {
  Manifest& m = b.m;
  b.lines.reserve(b.rows.size() / 32 * 128 + 4096);
  const std::string_view ptext = b.parent_file->text();
  const auto parent_chain = static_cast<uint32_t>(b.parent_header.chain.size());
  std::string want;
  auto put_num = [](std::string& out, auto v) {
    char digits[24];
    out.append(digits, std::to_chars(digits, digits + sizeof digits, v).ptr);
  };
  // The parent's archive index of `line` if it is the entry of `r`.
  auto kept_archive = [&](const Row& r, std::string_view line, uint32_t& archive) {
    want.clear();
    append_json_string(want, b.id_of(r));
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
  bool have = b.cursor.next(pid, pline);
  for (Row& r : b.rows) {
    const std::string_view rid = b.id_of(r);
    while (have && pid < rid) {
      m.deleted.emplace_back(pid);
      have = b.cursor.next(pid, pline);
    }
    uint32_t archive = b.self;
    if (have && pid == rid) {
      if (kept_archive(r, pline, archive)) {
        r.in_parent = true;
        r.line_off = static_cast<uint64_t>(pline.data() - ptext.data());
        r.line_len = static_cast<uint32_t>(pline.size());
      }
      have = b.cursor.next(pid, pline);
    }
    r.meta.archive = archive;
    if (archive == b.self) b.new_line(r);
  }
  while (have) {
    m.deleted.emplace_back(pid);
    have = b.cursor.next(pid, pline);
  }
  return b.cursor.ok();
}

}  // namespace itemfs::backup
