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

namespace {

using json = nlohmann::json;

// SAX handler that fills a Manifest without building a DOM.
class ManifestSax {
 public:
  ManifestSax(Manifest& m, bool summary_only) : m_(m), summary_only_(summary_only) {}

  bool stopped = false;  // stopped on purpose (summary read)
  std::string error;

  bool null() { return scalar(nullptr, 0, 0, false, "null"); }
  bool boolean(bool v) { return scalar(nullptr, 0, 0, v, "bool"); }
  bool number_integer(json::number_integer_t v) { return scalar(nullptr, v, 0, false, "int"); }
  bool number_unsigned(json::number_unsigned_t v) {
    if (v > static_cast<uint64_t>(INT64_MAX)) return bad("number out of range");
    return scalar(nullptr, static_cast<int64_t>(v), v, false, "uint");
  }
  bool number_float(json::number_float_t, const json::string_t&) { return scalar(nullptr, 0, 0, false, "float"); }
  bool string(json::string_t& v) { return scalar(&v, 0, 0, false, "string"); }
  bool binary(json::binary_t&) { return bad("binary value"); }

  bool start_object(std::size_t) {
    ++depth_;
    if (depth_ == 3 && top_ == "items") {
      cur_ = ItemMeta{};
      seen_ = 0;
      item_array_ = false;
    }
    if (depth_ == 4 && top_ == "items" && item_array_) return bad("item \"" + cur_id_ + "\": nested value");
    return depth_ < 16;
  }
  bool end_object() {
    if (depth_ == 3 && top_ == "items" && !finish_item(0x7f)) return false;
    --depth_;
    return true;
  }
  bool start_array(std::size_t) {
    ++depth_;
    if (depth_ == 3 && top_ == "items") {  // format 2: [sha256, size, mtime_ns, archive, (mode, uid, gid)]
      cur_ = ItemMeta{};
      seen_ = 0;
      item_array_ = true;
      pos_ = 0;
    }
    if (depth_ == 4 && top_ == "items") return bad("item \"" + cur_id_ + "\": nested value");
    return depth_ < 16;
  }
  bool end_array() {
    if (depth_ == 3 && top_ == "items") {
      if (pos_ != 4 && pos_ != 7) return bad("item \"" + cur_id_ + "\" has " + std::to_string(pos_) + " fields");
      if (pos_ == 4) defaulted.push_back(cur_id_);
      if (!finish_item(pos_ == 4 ? 0x63 : 0x7f)) return false;
    }
    --depth_;
    return true;
  }
  bool key(json::string_t& k) {
    if (depth_ == 1) {
      top_ = k;
      if (summary_only_ && (k == "deleted" || k == "items")) {
        stopped = true;
        return false;
      }
      if (k == "items") m_.has_items = true;
    } else if (depth_ == 2 && top_ == "items") {
      cur_id_ = k;
    } else if (depth_ == 3 && top_ == "items") {
      field_ = k;
    } else if (depth_ == 2) {
      field_ = k;
    }
    return true;
  }
  bool parse_error(std::size_t pos, const std::string&, const nlohmann::detail::exception& ex) {
    if (error.empty()) error = "at byte " + std::to_string(pos) + ": " + ex.what();
    return false;
  }

 private:
  bool bad(const std::string& why) {
    if (error.empty()) error = why;
    return false;
  }

  // `need`: the bits of seen_ the entry must have (1 sha256, 2 size, 4 mode,
  // 8 uid, 16 gid, 32 mtime_ns, 64 archive).
  bool finish_item(unsigned need) {
    if ((seen_ & need) != need) return bad("item \"" + cur_id_ + "\" lacks a field");
    if (!m_.items.emplace(cur_id_, cur_).second) return bad("item \"" + cur_id_ + "\" listed twice");
    return true;
  }

  static bool u32(bool is_uint, uint64_t u, uint32_t& out) {
    if (!is_uint || u > 0xffffffffu) return false;
    out = static_cast<uint32_t>(u);
    return true;
  }

  // Field `n` of a format 2 item entry.
  bool array_field(size_t n, const std::string* s, int64_t i, uint64_t u, bool is_int, bool is_uint) {
    bool ok = false;
    switch (n) {
      case 0:
        ok = s && parse_sha256_hex(*s, cur_.sha256);
        seen_ |= 1;
        break;
      case 1:
        ok = is_uint;
        cur_.size = u;
        seen_ |= 2;
        break;
      case 2:
        ok = is_int;
        cur_.mtime_ns = i;
        seen_ |= 32;
        break;
      case 3:
        ok = is_uint && u < m_.chain.size();
        cur_.archive = static_cast<uint32_t>(u);
        seen_ |= 64;
        break;
      case 4:
        ok = u32(is_uint, u, cur_.mode);
        seen_ |= 4;
        break;
      case 5:
        ok = u32(is_uint, u, cur_.uid);
        seen_ |= 8;
        break;
      case 6:
        ok = u32(is_uint, u, cur_.gid);
        seen_ |= 16;
        break;
    }
    if (!ok) return bad("item \"" + cur_id_ + "\": bad field " + std::to_string(n));
    return true;
  }

  bool scalar(const std::string* s, int64_t i, uint64_t u, bool b, const char* type) {
    std::string_view t = type;
    bool is_int = t == "int" || t == "uint";
    if (depth_ == 1) {
      if (top_ == "format_version" && is_int) m_.format_version = static_cast<int>(i);
      else if (top_ == "id" && s) m_.id = *s;
      else if (top_ == "kind" && s) m_.kind = *s;
      else if (top_ == "parent" && s) m_.parent = *s;
      else if (top_ == "created_ns" && is_int) m_.created_ns = i;
      else if (top_ == "encrypted" && t == "bool") m_.encrypted = b;
      else if (top_ == "key_id" && s) m_.key_id = *s;
      else if (top_ == "item_count" && t == "uint") m_.item_count = u;
      else if (top_ == "item_bytes" && t == "uint") m_.item_bytes = u;
      else if (top_ == "archived_count" && t == "uint") m_.archived_count = u;
      else if (top_ == "archived_bytes" && t == "uint") m_.archived_bytes = u;
      return true;
    }
    if (depth_ == 2 && top_ == "item_fields") {
      if (!s) return bad("item_fields holds a non-string");
      item_fields.push_back(*s);
      return true;
    }
    if (depth_ == 2 && top_ == "item_defaults") {
      uint32_t* to = field_ == "mode" ? &m_.default_mode : field_ == "uid" ? &m_.default_uid
                   : field_ == "gid" ? &m_.default_gid : nullptr;
      if (!to) return true;
      if (!u32(t == "uint", u, *to)) return bad("item_defaults: bad " + field_);
      m_.has_defaults = true;
      return true;
    }
    if (depth_ == 3 && top_ == "items" && item_array_) {
      if (pos_ >= 7) return bad("item \"" + cur_id_ + "\" has more than 7 fields");
      return array_field(pos_++, s, i, u, is_int, t == "uint");
    }
    if (depth_ == 2 && top_ == "chain") {
      if (!s) return bad("chain holds a non-string");
      m_.chain.push_back(*s);
      return true;
    }
    if (depth_ == 2 && top_ == "deleted") {
      if (!s) return bad("deleted holds a non-string");
      m_.deleted.push_back(*s);
      return true;
    }
    if (depth_ == 3 && top_ == "items") {
      if (field_ == "sha256") {
        if (!s || !parse_sha256_hex(*s, cur_.sha256)) return bad("item \"" + cur_id_ + "\": bad sha256");
        seen_ |= 1;
      } else if (field_ == "size" && t == "uint") {
        cur_.size = u;
        seen_ |= 2;
      } else if (field_ == "mode" && t == "uint" && u <= 0xffffffffu) {
        cur_.mode = static_cast<uint32_t>(u);
        seen_ |= 4;
      } else if (field_ == "uid" && t == "uint" && u <= 0xffffffffu) {
        cur_.uid = static_cast<uint32_t>(u);
        seen_ |= 8;
      } else if (field_ == "gid" && t == "uint" && u <= 0xffffffffu) {
        cur_.gid = static_cast<uint32_t>(u);
        seen_ |= 16;
      } else if (field_ == "mtime_ns" && is_int) {
        cur_.mtime_ns = i;
        seen_ |= 32;
      } else if (field_ == "archive" && s) {
        uint32_t idx = m_.chain_index(*s);
        if (idx == m_.chain.size()) return bad("item \"" + cur_id_ + "\": archive " + *s + " is not in the chain");
        cur_.archive = idx;
        seen_ |= 64;
      } else {
        return bad("item \"" + cur_id_ + "\": bad field " + field_);
      }
      return true;
    }
    return true;  // unknown fields are ignored (forward compatibility)
  }

  Manifest& m_;
  bool summary_only_;
  int depth_ = 0;
  std::string top_, cur_id_, field_;
  ItemMeta cur_{};
  unsigned seen_ = 0;
  bool item_array_ = false;
  size_t pos_ = 0;

 public:
  std::vector<std::string> item_fields;  // as given
  std::vector<std::string> defaulted;  // ids of entries without mode, uid, gid
};

}  // namespace

void read_manifest(std::istream& in, bool summary_only, Manifest& out, const std::string& what) {
  out = Manifest{};
  ManifestSax sax(out, summary_only);
  bool ok = json::sax_parse(in, &sax);
  if (!ok && !sax.stopped) {
    throw JobError(EIO, what + ": malformed manifest: " + (sax.error.empty() ? "parse error" : sax.error));
  }
  if (out.format_version < 1) throw JobError(EIO, what + ": manifest lacks format_version");
  if (out.format_version > kFormatVersion) {
    throw JobError(EIO, what + ": manifest format " + std::to_string(out.format_version) + " is newer than this itemfs");
  }
  if (out.id.empty() || (out.kind != "full" && out.kind != "incremental") || out.created_ns == 0 ||
      out.chain.empty() || out.chain.back() != out.id) {
    throw JobError(EIO, what + ": manifest lacks id, kind, created_ns or chain");
  }
  if ((out.kind == "full") != out.parent.empty() ||
      (!out.parent.empty() && (out.chain.size() < 2 || out.chain[out.chain.size() - 2] != out.parent))) {
    throw JobError(EIO, what + ": manifest parent and chain disagree");
  }
  if (!summary_only && !out.has_items && !out.encrypted) throw JobError(EIO, what + ": manifest lacks items");
  if (!sax.item_fields.empty() && sax.item_fields != std::vector<std::string>{"sha256", "size", "mtime_ns", "archive",
                                                                           "mode", "uid", "gid"}) {
    throw JobError(EIO, what + ": manifest has item_fields of another layout");
  }
  if (!sax.defaulted.empty()) {
    if (!out.has_defaults) throw JobError(EIO, what + ": manifest items leave out mode, uid, gid, but it lacks item_defaults");
    for (const auto& id : sax.defaulted) {
      ItemMeta& im = out.items.at(id);
      im.mode = out.default_mode;
      im.uid = out.default_uid;
      im.gid = out.default_gid;
    }
  }
}

namespace {
// Reads a descriptor (open_regular's) through an istream, no further than
// the size the file had when it was opened.
class FdBuf : public std::streambuf {
 public:
  FdBuf(int fd, uint64_t size, std::filesystem::path path) : fd_(fd), left_(size), path_(std::move(path)) {}
  ~FdBuf() override { ::close(fd_); }
  FdBuf(const FdBuf&) = delete;
  FdBuf& operator=(const FdBuf&) = delete;

 protected:
  int_type underflow() override {
    if (left_ == 0) return traits_type::eof();
    for (;;) {
      ssize_t n = ::read(fd_, buf_, static_cast<size_t>(std::min<uint64_t>(sizeof buf_, left_)));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno("cannot read", path_, errno);
      if (n == 0) return traits_type::eof();
      left_ -= static_cast<uint64_t>(n);
      setg(buf_, buf_, buf_ + n);
      return traits_type::to_int_type(buf_[0]);
    }
  }

 private:
  int fd_;
  uint64_t left_;
  std::filesystem::path path_;
  char buf_[64 * 1024];
};
}  // namespace

void read_manifest_file(const std::filesystem::path& path, bool summary_only, Manifest& out) {
  uint64_t size = 0;
  int fd = open_regular(path, &size);
  FdBuf buf(fd, size, path);
  std::istream in(&buf);
  in.exceptions(std::ios::badbit);
  read_manifest(in, summary_only, out, path.string());
}

namespace {

// A cursor over ManifestWriter's exact layout. Every method returns false
// when the text is not what that writer produces.
class LayoutReader {
 public:
  explicit LayoutReader(std::string_view t) : t_(t) {}

  bool lit(std::string_view s) {
    if (t_.substr(p_, s.size()) != s) return false;
    p_ += s.size();
    return true;
  }
  bool peek(char c) const { return p_ < t_.size() && t_[p_] == c; }
  bool at_end() const { return p_ == t_.size(); }

  // A JSON string without escapes or control characters, valid UTF-8 (as
  // nlohmann's lexer requires). Anything else is left to the general parser.
  bool plain_string(std::string_view& out) {
    if (!lit("\"")) return false;
    size_t start = p_;
    while (p_ < t_.size()) {
      auto c = static_cast<unsigned char>(t_[p_]);
      if (c == '"') {
        out = t_.substr(start, p_ - start);
        ++p_;
        return true;
      }
      if (c == '\\' || c < 0x20) return false;
      if (c < 0x80) {
        ++p_;
        continue;
      }
      const size_t n = base::utf8_length(t_, p_);
      if (n == 0) return false;
      p_ += n;
    }
    return false;
  }

  // A JSON integer: -?(0|[1-9][0-9]*), within the range of T.
  template <typename T>
  bool integer(T& out) {
    size_t start = p_;
    if (peek('-')) {
      if constexpr (!std::is_signed_v<T>) return false;
      ++p_;
    }
    size_t digits = p_;
    while (p_ < t_.size() && t_[p_] >= '0' && t_[p_] <= '9') ++p_;
    if (p_ == digits || (t_[digits] == '0' && p_ - digits > 1)) return false;
    if (p_ < t_.size() && (t_[p_] == '.' || t_[p_] == 'e' || t_[p_] == 'E')) return false;
    auto r = std::from_chars(t_.data() + start, t_.data() + p_, out);
    return r.ec == std::errc() && r.ptr == t_.data() + p_;
  }

  bool sha256(base::Sha256& out) {
    if (!parse_sha256_hex(t_.substr(p_, 64), out)) return false;
    p_ += 64;
    return true;
  }

  size_t pos() const { return p_; }
  void seek(size_t p) { p_ = p; }

 private:
  std::string_view t_;
  size_t p_ = 0;
};

}  // namespace

namespace {

// The header fields and "deleted" of ManifestWriter's layout (format 1 or
// 2); `items_at` is then where the entries of "items" start.
bool parse_layout_header(std::string_view text, Manifest& out, size_t& items_at) {
  // The header: everything before "deleted", closed and read by the general
  // parser. That it parses as a whole object proves the cut is at the top
  // level (a raw newline cannot be inside a JSON string).
  constexpr std::string_view kDeleted = ",\n  \"deleted\": [";
  size_t cut = text.find(kDeleted);
  if (cut == std::string_view::npos) return false;
  // Nor may the header hold "deleted" or "items" (the general parser would
  // read both copies); no backslash, so that no key can spell them in escapes.
  std::string_view head = text.substr(0, cut);
  if (head.find('\\') != std::string_view::npos || head.find("\"deleted\"") != std::string_view::npos ||
      head.find("\"items\"") != std::string_view::npos) {
    return false;
  }
  {
    std::string header(text.substr(0, cut));
    header += "\n}";
    std::istringstream in(header);
    try {
      read_manifest(in, true, out, "");
    } catch (const std::exception&) {
      return false;
    }
  }
  out.has_items = true;
  LayoutReader r(text);
  r.seek(cut + kDeleted.size());
  std::string_view s;
  if (!r.lit("]")) {
    do {
      if (!r.lit("\n    ") || !r.plain_string(s)) return false;
      out.deleted.emplace_back(s);
    } while (r.lit(","));
    if (!r.lit("\n  ]")) return false;
  }
  if (!r.lit(",\n  \"items\": {")) return false;
  items_at = r.pos();
  return true;
}

}  // namespace

bool LayoutCursor::open(std::string_view text, Manifest& out) {
  text_ = text;
  if (!parse_layout_header(text, out, pos_) || out.format_version != 2) return ok_ = false;
  LayoutReader r(text_);
  r.seek(pos_);
  if (r.lit("}\n}\n")) {  // an empty map
    done_ = true;
    return ok_ = r.at_end();
  }
  return true;
}

bool LayoutCursor::next(std::string_view& id, std::string_view& line) {
  if (done_) return false;
  LayoutReader r(text_);
  r.seek(pos_);
  if (!first_ && !r.lit(",")) {
    done_ = true;
    ok_ = r.lit("\n  }\n}\n") && r.at_end();
    return false;
  }
  first_ = false;
  size_t start = r.pos() + 1;
  // The entry runs to the first ']' after its id: nothing else in an entry
  // of this layout holds one.
  size_t close = std::string_view::npos;
  if (!r.lit("\n") || !r.plain_string(id) || !r.lit(":[") ||
      (close = text_.find(']', r.pos())) == std::string_view::npos ||
      text_.find('\n', r.pos()) < close || (have_last_ && !(last_id_ < id))) {
    done_ = true;
    return ok_ = false;
  }
  last_id_ = id;
  have_last_ = true;
  line = text_.substr(start, close + 1 - start);
  pos_ = close + 1;
  return true;
}

bool parse_manifest_layout(std::string_view text, Manifest& out, std::vector<MapEntry>& items) {
  items.clear();
  size_t items_at = 0;
  if (!parse_layout_header(text, out, items_at)) return false;
  LayoutReader r(text);
  r.seek(items_at);
  std::string_view s;
  if (r.lit("}\n}\n")) return r.at_end();
  if (out.format_version >= 2) {
    items.reserve(text.size() / 100);  // an entry is about 115 bytes
    do {
      MapEntry e;
      ItemMeta& im = e.meta;
      if (!r.lit("\n") || !r.plain_string(s) || !r.lit(":[\"") || !r.sha256(im.sha256) || !r.lit("\",") ||
          !r.integer(im.size) || im.size > uint64_t(INT64_MAX) || !r.lit(",") || !r.integer(im.mtime_ns) ||
          !r.lit(",") || !r.integer(im.archive) || im.archive >= out.chain.size()) {
        return false;
      }
      if (r.lit(",")) {
        if (!r.integer(im.mode) || !r.lit(",") || !r.integer(im.uid) || !r.lit(",") || !r.integer(im.gid)) return false;
      } else {
        if (!out.has_defaults) return false;
        im.mode = out.default_mode;
        im.uid = out.default_uid;
        im.gid = out.default_gid;
      }
      if (!r.lit("]")) return false;
      if (!items.empty() && !(std::string_view(items.back().id) < s)) return false;
      e.id = s;
      items.push_back(std::move(e));
    } while (r.lit(","));
    return r.lit("\n  }\n}\n") && r.at_end();
  }
  items.reserve(text.size() / 160);  // an entry is about 220 bytes
  do {
    MapEntry e;
    std::string_view archive;
    if (!r.lit("\n    ") || !r.plain_string(s) || !r.lit(": {\"sha256\": \"") || !r.sha256(e.meta.sha256) ||
        !r.lit("\", \"size\": ") || !r.integer(e.meta.size) || e.meta.size > uint64_t(INT64_MAX) ||
        !r.lit(", \"mode\": ") || !r.integer(e.meta.mode) || !r.lit(", \"uid\": ") || !r.integer(e.meta.uid) ||
        !r.lit(", \"gid\": ") || !r.integer(e.meta.gid) || !r.lit(", \"mtime_ns\": ") ||
        !r.integer(e.meta.mtime_ns) || !r.lit(", \"archive\": ") || !r.plain_string(archive) || !r.lit("}")) {
      return false;
    }
    // Strictly increasing: sorted, and no id twice.
    if (!items.empty() && !(std::string_view(items.back().id) < s)) return false;
    e.meta.archive = static_cast<uint32_t>(out.chain.size());
    for (size_t i = 0; i < out.chain.size(); ++i) {
      if (out.chain[i] == archive) {
        e.meta.archive = static_cast<uint32_t>(i);
        break;
      }
    }
    if (e.meta.archive == out.chain.size()) return false;
    e.id = s;
    items.push_back(std::move(e));
  } while (r.lit(","));
  return r.lit("\n  }\n}\n") && r.at_end();
}

void read_manifest_sorted(std::string_view text, Manifest& out, std::vector<MapEntry>& items, const std::string& what) {
  if (parse_manifest_layout(text, out, items)) return;
  std::istringstream in{std::string(text)};
  read_manifest(in, false, out, what);
  items.clear();
  items.reserve(out.items.size());
  for (auto& [id, meta] : out.items) items.push_back({id, meta});
  out.items.clear();
  std::sort(items.begin(), items.end(), [](const MapEntry& a, const MapEntry& b) { return a.id < b.id; });
}

std::string item_path(const std::string& id) { return "items/" + store::shard_of(id) + "/" + id + ".json"; }

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
