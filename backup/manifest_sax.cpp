// MANIFEST.json read by a SAX parser into a Manifest (read_manifest,
// read_manifest_file); manifest.h.
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

}  // namespace itemfs::backup
