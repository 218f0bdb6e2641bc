// JSON validation without building a document: nlohmann's SAX parser keeps
// its nesting state in a vector, so 100,000 levels cost memory, not stack.
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <optional>
#include <streambuf>
#include <string>

#include "store/json_check.h"
#include "store/store.h"

namespace itemfs::store {

namespace {

class AcceptAll : public nlohmann::json_sax<nlohmann::json> {
 public:
  std::string error;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) override {
    error = ex.what();
    error_position = position;
    return false;
  }
  std::size_t error_position = 0;
};

// nlohmann says "[json.exception.parse_error.101] parse error at line 3,
// column 0: syntax error ... - <what>"; keep <what> and give the position of
// the byte that broke the document, counted from 1 as editors do.
std::string describe(const std::string& what) {
  auto dash = what.find(" - ");
  if (dash != std::string::npos) return what.substr(dash + 3);
  auto colon = what.find(": ");
  if (colon != std::string::npos) return what.substr(colon + 2);
  // "[json.exception.out_of_range.406] number overflow parsing '1e999'"
  if (what.rfind("[json.exception.", 0) == 0)
    if (auto close = what.find("] "); close != std::string::npos) return what.substr(close + 2);
  return what;
}

struct Position {
  uint64_t line = 1, column = 1;
  void advance(char c) {
    if (c == '\n') {
      ++line;
      column = 1;
    } else if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) {
      ++column;
    }
  }
};

// nlohmann's lexer takes a NUL byte for the end of the input (for C
// strings), so `{"a":1}<NUL>anything` would pass. JSON text never holds a raw
// NUL (outside strings only whitespace, inside them control characters must
// be escaped), so the caller rejects any NUL left after a successful parse.
// This stream buffer passes bytes through and notes the first NUL it sees.
class NulWatch : public std::streambuf {
 public:
  explicit NulWatch(std::streambuf* source) : source_(source) {}
  std::optional<uint64_t> first_nul;

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    std::streamsize n = source_->sgetn(buffer_, sizeof buffer_);
    if (n <= 0) return traits_type::eof();
    if (!first_nul)
      if (const void* nul = std::memchr(buffer_, 0, size_t(n)))
        first_nul = consumed_ + uint64_t(static_cast<const char*>(nul) - buffer_);
    consumed_ += uint64_t(n);
    setg(buffer_, buffer_, buffer_ + n);
    return traits_type::to_int_type(*gptr());
  }

 private:
  std::streambuf* source_;
  char buffer_[1 << 16];
  uint64_t consumed_ = 0;
};

template <typename Locate>
Status nul_error(uint64_t offset, Locate&& locate) {
  Position at = locate(offset);
  return Status::error(EINVAL, "invalid JSON at line " + std::to_string(at.line) + ", column " +
                                   std::to_string(at.column) + " (byte " + std::to_string(offset + 1) +
                                   "): a NUL byte is not allowed in JSON text");
}

template <typename Input, typename Locate>
Status check(Input&& input, Locate&& locate) {
  AcceptAll handler;
  bool ok = false;
  try {
    ok = nlohmann::json::sax_parse(std::forward<Input>(input), &handler, nlohmann::json::input_format_t::json, true);
  } catch (const std::exception& ex) {
    handler.error = ex.what();
  }
  if (ok) return Status::success();
  // `position` counts the bytes read, including the offending one.
  uint64_t offset = handler.error_position ? handler.error_position - 1 : 0;
  Position at = locate(offset);
  return Status::error(EINVAL, "invalid JSON at line " + std::to_string(at.line) + ", column " +
                                   std::to_string(at.column) + " (byte " + std::to_string(offset + 1) +
                                   "): " + describe(handler.error));
}

}  // namespace

Status validate_json(std::istream& in) {
  auto locate = [&](uint64_t offset) {
    Position at;
    in.clear();
    in.seekg(0);
    char c;
    for (uint64_t i = 0; i < offset && in.get(c); ++i) at.advance(c);
    return at;
  };
  NulWatch watch(in.rdbuf());
  std::istream watched(&watch);
  Status status = check(watched, locate);
  if (status.ok() && watch.first_nul) return nul_error(*watch.first_nul, locate);
  return status;
}

Status validate_json_bytes(std::string_view bytes) {
  // An empty input reads better as what it is than as a parse position.
  if (bytes.empty()) return Status::error(EINVAL, "invalid JSON: the file is empty");
  auto locate = [&](uint64_t offset) {
    Position at;
    for (uint64_t i = 0; i < offset && i < bytes.size(); ++i) at.advance(bytes[i]);
    return at;
  };
  Status status = check(bytes, locate);
  if (auto nul = bytes.find('\0'); status.ok() && nul != std::string_view::npos) return nul_error(nul, locate);
  return status;
}

}  // namespace itemfs::store
