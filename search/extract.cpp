#include "search/extract.h"

#include <algorithm>

#include "search/fold.h"

namespace itemfs::search::detail {

namespace {

void lower_ascii(std::string& s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  }
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

}  // namespace

// ---------------------------------------------------------------------------
// Extractor

Extractor::Extractor(size_t body_cap, Collect collect) : body_cap_(body_cap), text_only_(collect == Collect::kText) {}

Extractor::Role Extractor::role_for_path() const {
  const std::string_view p = path_;
  if (p == "title") return Role::kTitle;
  if (p == "url") return Role::kUrl;
  if (p == "published_at" || p == "crawled_at") return Role::kDate;
  if (p == "lang" || p == "language" || p == "metadata.lang" || p == "metadata.language") return Role::kLang;
  if (p == "tags" || p == "tag") return Role::kTag;
  if (p == "author" || p == "authors" || p == "author.name" || p == "authors.name") return Role::kAuthor;
  if (p == "content" || p == "text" || p == "body" || p == "description" || p == "summary" || p == "abstract") {
    return Role::kMain;
  }
  return Role::kOther;
}

void Extractor::begin_string() {
  in_string_ = true;
  escape_ = false;
  hex_left_ = 0;
  high_surrogate_ = 0;
  small_.clear();
  small_full_ = false;
  if (skip_depth_ > 0) {
    role_ = Role::kKey;  // ignored
    to_body_ = nullptr;
    return;
  }
  role_ = expect_key_ ? Role::kKey : role_for_path();
  // Only keys (for paths) and titles need their first bytes when collecting text.
  if (text_only_ && role_ != Role::kKey && role_ != Role::kTitle) small_full_ = true;
  to_body_ = role_ == Role::kMain                                                         ? &out_.body
             : role_ == Role::kTag || role_ == Role::kAuthor || role_ == Role::kOther ? &other_
                                                                                       : nullptr;
  if (to_body_ && !to_body_->empty() && to_body_->back() != '\n' && out_.body.size() + other_.size() < body_cap_) {
    *to_body_ += '\n';
  }
  string_start_ = to_body_ ? to_body_->size() : 0;
  string_bytes_ = 0;
  string_is_text_ = false;
}

void Extractor::append_string(std::string_view s) {
  if (high_surrogate_) {
    high_surrogate_ = 0;
    append_raw("\xEF\xBF\xBD");  // U+FFFD for a lone high surrogate
  }
  append_raw(s);
}

void Extractor::append_raw(std::string_view s) {
  if (skip_depth_ > 0) return;
  string_bytes_ += s.size();
  if (!string_is_text_) {
    for (char c : s) {
      if (is_space(c) || uint8_t(c) >= 0x80) {
        string_is_text_ = true;
        break;
      }
    }
  }
  if (!small_full_) {
    const size_t room = kMaxTitle - small_.size();
    if (s.size() <= room) {
      small_.append(s);
    } else {
      small_.append(s.substr(0, room));
      small_full_ = true;
    }
  }
  if (to_body_ && !done_) {
    const size_t used = out_.body.size() + other_.size();
    const size_t room = body_cap_ > used ? body_cap_ - used : 0;
    if (s.size() < room) {
      to_body_->append(s);
    } else {
      to_body_->append(utf8_prefix(s, room));
      done_ = true;
    }
  }
}

void Extractor::append_code_point(uint32_t cp) {
  std::string tmp;
  append_utf8(tmp, cp);
  append_raw(tmp);
}

void Extractor::end_string() {
  in_string_ = false;
  if (high_surrogate_) append_string({});
  if (skip_depth_ > 0) return;
  if (to_body_ && !string_is_text_ && string_bytes_ > kMinDataRun && to_body_->size() >= string_start_) {
    to_body_->resize(string_start_);
  }
  if (role_ == Role::kKey) {
    std::string key(utf8_prefix(small_, kMaxKey));
    lower_ascii(key);
    const size_t base = frames_.empty() ? 0 : frames_.back().base;
    path_.resize(base);
    if (!path_.empty()) path_ += '.';
    path_ += key;
    expect_key_ = false;
    return;
  }
  const std::string_view value = small_;
  const bool short_value = !small_full_ && value.size() <= kMaxFieldValue;
  if (text_only_ && role_ != Role::kTitle) return;
  switch (role_) {
    case Role::kTitle:
      if (out_.title.size() < kMaxTitle) {
        if (!out_.title.empty()) out_.title += ' ';
        out_.title.append(utf8_prefix(value, kMaxTitle - out_.title.size()));
      }
      break;
    case Role::kUrl:
      if (out_.url.empty() && short_value) {
        out_.url = value;
        out_.host = host_of_url(value);
      }
      break;
    case Role::kDate: {
      auto d = parse_date(value);
      auto& slot = path_ == "published_at" ? out_.published : out_.crawled;
      if (d && !slot) slot = d;
      break;
    }
    case Role::kLang:
      if (out_.lang.empty() && short_value) {
        out_.lang = value;
        lower_ascii(out_.lang);
      }
      break;
    case Role::kTag:
      if (short_value && !value.empty() && out_.tags.size() < kMaxTags) out_.tags.emplace_back(value);
      break;
    case Role::kAuthor:
      if (short_value && !value.empty() && out_.authors.size() < 16) {
        out_.authors.emplace_back(value);
        if (out_.author.empty()) out_.author = value;
      }
      break;
    case Role::kKey:
    case Role::kMain:
    case Role::kOther:
      break;
  }
  if (!text_only_ && role_ != Role::kTitle && short_value && !value.empty() && !path_.empty() &&
      out_.fields.size() < kMaxFields) {
    out_.fields.emplace_back(path_, value);
  }
}

void Extractor::end_scalar() {
  in_scalar_ = false;
  if (text_only_ || skip_depth_ > 0 || path_.empty() || small_ == "null") return;
  if (role_ == Role::kDate) {
    auto d = parse_date(small_);
    auto& slot = path_ == "published_at" ? out_.published : out_.crawled;
    if (d && !slot) slot = d;
  }
  if (out_.fields.size() < kMaxFields) out_.fields.emplace_back(path_, small_);
}

bool Extractor::feed(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n && !done_) {
    const char c = s[i];
    if (in_string_) {
      if (hex_left_ > 0) {
        uint32_t v;
        if (c >= '0' && c <= '9') {
          v = uint32_t(c - '0');
        } else if (c >= 'a' && c <= 'f') {
          v = uint32_t(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
          v = uint32_t(c - 'A' + 10);
        } else {
          v = 0;
        }
        hex_ = (hex_ << 4) | v;
        ++i;
        if (--hex_left_ == 0) {
          const uint32_t cp = hex_;
          if (cp >= 0xD800 && cp < 0xDC00) {
            if (high_surrogate_) append_string({});  // the previous one was lone
            high_surrogate_ = cp;
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            if (high_surrogate_) {
              const uint32_t full = 0x10000 + ((high_surrogate_ - 0xD800) << 10) + (cp - 0xDC00);
              high_surrogate_ = 0;
              append_code_point(full);
            } else {
              append_code_point(0xFFFD);
            }
          } else {
            if (high_surrogate_) append_string({});
            append_code_point(cp);
          }
        }
        continue;
      }
      if (escape_) {
        escape_ = false;
        ++i;
        switch (c) {
          case 'u':
            hex_left_ = 4;
            hex_ = 0;
            break;
          case 'n':
            append_string("\n");
            break;
          case 't':
            append_string("\t");
            break;
          case 'r':
            append_string("\r");
            break;
          case 'b':
            append_string("\b");
            break;
          case 'f':
            append_string("\f");
            break;
          default:
            append_string(std::string_view(&c, 1));
            break;
        }
        continue;
      }
      size_t j = i;
      while (j < n && s[j] != '"' && s[j] != '\\') ++j;
      if (j > i) append_string(s.substr(i, j - i));
      if (j == n) break;
      if (s[j] == '"') {
        end_string();
      } else {
        escape_ = true;
      }
      i = j + 1;
      continue;
    }
    if (in_scalar_) {
      if (is_space(c) || c == ',' || c == ']' || c == '}' || c == ':') {
        end_scalar();  // fall through to handle c
      } else {
        if (small_.size() < 64) small_ += c;
        ++i;
        continue;
      }
    }
    ++i;
    if (is_space(c)) continue;
    if (skip_depth_ > 0) {
      if (c == '"') {
        begin_string();
      } else if (c == '{' || c == '[') {
        ++skip_depth_;
      } else if (c == '}' || c == ']') {
        --skip_depth_;
      }
      continue;
    }
    switch (c) {
      case '{':
      case '[':
        if (frames_.size() >= kMaxDepth) {
          skip_depth_ = 1;
        } else {
          frames_.push_back(Frame{c == '{', path_.size()});
          expect_key_ = c == '{';
        }
        break;
      case '}':
      case ']':
        if (!frames_.empty()) {
          path_.resize(frames_.back().base);
          frames_.pop_back();
        }
        expect_key_ = false;
        break;
      case ',':
        expect_key_ = !frames_.empty() && frames_.back().object;
        break;
      case ':':
        expect_key_ = false;
        break;
      case '"':
        begin_string();
        break;
      default:
        in_scalar_ = true;
        role_ = role_for_path();
        small_.assign(1, c);
        break;
    }
  }
  return !done_;
}

std::string_view Extractor::main_text_so_far() const {
  size_t size = out_.body.size();
  // A string not yet known to be text may still be dropped as data.
  if (in_string_ && to_body_ == &out_.body && !string_is_text_) size = std::min(size, string_start_);
  return std::string_view(out_.body).substr(0, size);
}

Extracted& Extractor::result() {
  if (finished_) return out_;
  finished_ = true;
  if (in_scalar_ && !done_) end_scalar();
  while (!out_.body.empty() && out_.body.back() == '\n') out_.body.pop_back();
  out_.main_size = out_.body.size();
  if (!other_.empty()) {
    if (!out_.body.empty()) out_.body += '\n';
    out_.body += other_;
    other_.clear();
  }
  return out_;
}

Extracted extract(std::string_view json, size_t body_cap) {
  Extractor x(body_cap);
  x.feed(json);
  return std::move(x.result());
}

// ---------------------------------------------------------------------------
// Dates, hosts, markers

int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = unsigned(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? unsigned(-3) : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + int64_t(doe) - 719468;
}

int year_of(int64_t t) {
  int64_t z = (t >= 0 ? t : t - 86399) / 86400 + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = unsigned(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t y = int64_t(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return int(y + (m <= 2));
}

std::optional<int64_t> parse_date(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  if (s.empty() || s.size() > 40) return std::nullopt;
  size_t p = 0;
  auto digits = [&](size_t count, int& value) {
    if (p + count > s.size()) return false;
    value = 0;
    for (size_t k = 0; k < count; ++k) {
      const char c = s[p + k];
      if (c < '0' || c > '9') return false;
      value = value * 10 + (c - '0');
    }
    p += count;
    return true;
  };
  const bool all_digits = std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (all_digits && s.size() > 4) {  // seconds (or milliseconds) since 1970
    if (s.size() > 15) return std::nullopt;
    int64_t v = 0;
    for (char c : s) v = v * 10 + (c - '0');
    if (v > 100000000000) v /= 1000;
    return v;
  }
  int year = 0, month = 1, day = 1, hour = 0, minute = 0, second = 0;
  if (!digits(4, year)) return std::nullopt;
  if (p < s.size()) {
    if (s[p++] != '-' || !digits(2, month)) return std::nullopt;
    if (p < s.size()) {
      if (s[p++] != '-' || !digits(2, day)) return std::nullopt;
    }
  }
  if (month < 1 || month > 12 || day < 1 || day > 31) return std::nullopt;
  int64_t offset = 0;
  if (p < s.size()) {
    if (s[p] != 'T' && s[p] != 't' && s[p] != ' ') return std::nullopt;
    ++p;
    if (!digits(2, hour) || p >= s.size() || s[p++] != ':' || !digits(2, minute)) return std::nullopt;
    if (p < s.size() && s[p] == ':') {
      ++p;
      if (!digits(2, second)) return std::nullopt;
      if (p < s.size() && (s[p] == '.' || s[p] == ',')) {
        ++p;
        while (p < s.size() && s[p] >= '0' && s[p] <= '9') ++p;
      }
    }
    if (hour > 24 || minute > 59 || second > 60) return std::nullopt;
    if (p < s.size()) {
      if (s[p] == 'Z' || s[p] == 'z') {
        ++p;
      } else if (s[p] == '+' || s[p] == '-') {
        const int sign = s[p] == '-' ? -1 : 1;
        ++p;
        int oh = 0, om = 0;
        if (!digits(2, oh)) return std::nullopt;
        if (p < s.size() && s[p] == ':') ++p;
        if (p < s.size() && !digits(2, om)) return std::nullopt;
        offset = sign * (oh * 3600 + om * 60);
      }
    }
    if (p != s.size()) return std::nullopt;
  }
  return days_from_civil(year, unsigned(month), unsigned(day)) * 86400 + hour * 3600 + minute * 60 + second - offset;
}

std::string host_of_url(std::string_view url) {
  const size_t scheme = url.find("://");
  if (scheme != std::string_view::npos) {
    url.remove_prefix(scheme + 3);
  } else if (url.substr(0, 2) == "//") {
    url.remove_prefix(2);
  } else {
    return {};
  }
  url = url.substr(0, url.find_first_of("/?#"));
  if (const size_t at = url.rfind('@'); at != std::string_view::npos) url.remove_prefix(at + 1);
  if (!url.empty() && url.front() != '[') {
    if (const size_t colon = url.rfind(':'); colon != std::string_view::npos) url = url.substr(0, colon);
  }
  while (!url.empty() && url.back() == '.') url.remove_suffix(1);
  std::string host(url);
  lower_ascii(host);
  return host;
}

std::string marker(std::string_view key) {
  uint64_t h = 1469598103934665603ull;
  for (char c : key) {
    h ^= uint8_t(c);
    h *= 1099511628211ull;
  }
  static const char* const kHex = "0123456789abcdef";
  std::string out(kFieldMark);
  for (int k = 9; k >= 0; --k) out += kHex[(h >> (4 * k)) & 0xF];
  return out;
}

namespace {
bool is_lower_alnum(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'); }
}  // namespace

bool may_start_identifier(std::string_view token) { return std::all_of(token.begin(), token.end(), is_lower_alnum); }

bool is_identifier(std::string_view token) {
  if (token.size() < kMinIdentifier || !may_start_identifier(token)) return false;
  const bool digit = std::any_of(token.begin(), token.end(), [](char c) { return c >= '0' && c <= '9'; });
  const bool letter = std::any_of(token.begin(), token.end(), [](char c) { return c >= 'a' && c <= 'z'; });
  return digit && letter;
}

std::string bucket_of(std::string_view token) {
  std::string out(kBucketMark);
  out += token.substr(0, kBucketChars);
  return out;
}

std::string bucket_end_of(std::string_view token) {
  std::string out(kBucketEndMark);
  out += token.substr(token.size() - std::min(token.size(), kBucketChars));
  return out;
}

bool is_marker(std::string_view term) {
  return term.size() >= 3 && uint8_t(term[0]) == 0xEE && uint8_t(term[1]) == 0x80 && uint8_t(term[2]) >= 0x80 &&
         uint8_t(term[2]) <= 0x8F;
}

}  // namespace itemfs::search::detail
