// MANIFEST.json in the layout ManifestWriter writes, read line by line
// (LayoutCursor, parse_manifest_layout, read_manifest_sorted); manifest.h.
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

}  // namespace itemfs::backup
