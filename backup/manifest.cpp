// MANIFEST.json written (ManifestWriter), item paths and SHA256SUMS lines;
// manifest.h.
#include "backup/manifest.h"

#include "backup/backup.h"
#include "base/utf8.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace itemfs::backup {

uint32_t Manifest::chain_index(const std::string& backup_id) const {
  for (size_t i = 0; i < chain.size(); ++i) {
    if (chain[i] == backup_id) return static_cast<uint32_t>(i);
  }
  return static_cast<uint32_t>(chain.size());
}

namespace {

void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_int(std::string& out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

constexpr std::string_view kItemFields = R"(["sha256", "size", "mtime_ns", "archive", "mode", "uid", "gid"])";

}  // namespace

void ManifestWriter::begin(const Manifest& m, bool with_items) {
  with_items_ = with_items;
  mode_ = m.default_mode;
  uid_ = m.default_uid;
  gid_ = m.default_gid;
  std::string& s = out_;
  s += "{\n  \"format\": \"itemfs-backup\",\n  \"format_version\": ";
  append_int(s, kFormatVersion);
  s += ",\n  \"id\": ";
  append_json_string(s, m.id);
  s += ",\n  \"kind\": ";
  append_json_string(s, m.kind);
  s += ",\n  \"parent\": ";
  if (m.parent.empty()) s += "null";
  else append_json_string(s, m.parent);
  s += ",\n  \"created\": \"" + iso_time(m.created_ns) + "\",\n  \"created_ns\": " + std::to_string(m.created_ns);
  s += ",\n  \"encrypted\": ";
  s += m.encrypted ? "true" : "false";
  if (m.encrypted && !m.key_id.empty()) {
    s += ",\n  \"key_id\": ";
    append_json_string(s, m.key_id);
  }
  s += ",\n  \"store_format_version\": " + std::to_string(store::kFormatVersion);
  s += ",\n  \"item_count\": " + std::to_string(m.item_count) + ",\n  \"item_bytes\": " + std::to_string(m.item_bytes);
  s += ",\n  \"archived_count\": " + std::to_string(m.archived_count) +
       ",\n  \"archived_bytes\": " + std::to_string(m.archived_bytes);
  s += ",\n  \"chain\": [";
  for (size_t i = 0; i < m.chain.size(); ++i) {
    if (i) s += ", ";
    append_json_string(s, m.chain[i]);
  }
  s += "]";
  if (with_items) {
    s += ",\n  \"item_fields\": ";
    s += kItemFields;
    s += ",\n  \"item_defaults\": {\"mode\": " + std::to_string(m.default_mode) +
         ", \"uid\": " + std::to_string(m.default_uid) + ", \"gid\": " + std::to_string(m.default_gid) + "}";
    s += ",\n  \"deleted\": [";
    for (size_t i = 0; i < m.deleted.size(); ++i) {
      s += i ? ",\n    " : "\n    ";
      append_json_string(s, m.deleted[i]);
    }
    s += m.deleted.empty() ? "]" : "\n  ]";
    s += ",\n  \"items\": {";
  }
}

void ManifestWriter::line(std::string& s, std::string_view id, const ItemMeta& meta, uint32_t mode, uint32_t uid,
                          uint32_t gid) {
  append_json_string(s, id);
  s += ":[\"";
  append_hex(s, meta.sha256.data(), meta.sha256.size());
  s += "\",";
  append_uint(s, meta.size);
  s += ',';
  append_int(s, meta.mtime_ns);
  s += ',';
  append_uint(s, meta.archive);
  if (meta.mode != mode || meta.uid != uid || meta.gid != gid) {
    s += ',';
    append_uint(s, meta.mode);
    s += ',';
    append_uint(s, meta.uid);
    s += ',';
    append_uint(s, meta.gid);
  }
  s += ']';
}

void ManifestWriter::item(std::string_view id, const ItemMeta& meta) {
  out_ += first_ ? "\n" : ",\n";
  first_ = false;
  line(out_, id, meta, mode_, uid_, gid_);
}

void ManifestWriter::raw_item(std::string_view line) {
  out_ += first_ ? "\n" : ",\n";
  first_ = false;
  out_ += line;
}

void ManifestWriter::end() {
  if (with_items_) out_ += first_ ? "}\n}\n" : "\n  }\n}\n";
  else out_ += "\n}\n";
}


std::string id_from_item_path(std::string_view path) {
  constexpr std::string_view prefix = "items/", suffix = ".json";
  if (path.size() <= prefix.size() + suffix.size() || path.substr(0, prefix.size()) != prefix) return "";
  path.remove_prefix(prefix.size());
  size_t slash = path.find('/');
  if (slash == std::string_view::npos) return "";
  std::string_view shard = path.substr(0, slash), rest = path.substr(slash + 1);
  if (rest.size() <= suffix.size() || rest.substr(rest.size() - suffix.size()) != suffix) return "";
  std::string id(rest.substr(0, rest.size() - suffix.size()));
  if (!store::check_id(id).ok() || store::shard_of(id) != shard) return "";
  return id;
}

std::string sha256sums_line(const base::Sha256& sha, const std::string& path) {
  bool escape = path.find_first_of("\\\n\r") != std::string::npos;
  std::string line;
  if (escape) line += '\\';
  line += hex(sha.data(), sha.size());
  line += "  ";
  if (!escape) {
    line += path;
  } else {
    for (char c : path) {
      if (c == '\\') line += "\\\\";
      else if (c == '\n') line += "\\n";
      else if (c == '\r') line += "\\r";
      else line += c;
    }
  }
  line += '\n';
  return line;
}

}  // namespace itemfs::backup
