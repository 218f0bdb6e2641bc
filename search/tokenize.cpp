#include "search/tokenize.h"

#include <sqlite3.h>

#include "base/sqlite_stmt.h"
#include "base/status.h"
#include "search/fold.h"

namespace itemfs::search::detail {

struct Fts5Library::Unicode61 {
  void* context = nullptr;
  fts5_tokenizer methods{};
};

Fts5Library::Fts5Library() {
  if (sqlite3_open_v2(":memory:", &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
    sqlite3_close(db_);
    throw base::Error(EIO, "search: cannot open an in-memory SQLite database");
  }
  try {
    base::Stmt get_api(db_, "SELECT fts5(?1)");
    get_api.bind_pointer(1, &api_, "fts5_api_ptr").step();
  } catch (const base::Error&) {
    // No FTS5: api_ stays null, refused just below.
  }
  unicode61_ = new Unicode61;
  if (api_ == nullptr || api_->xFindTokenizer(api_, "unicode61", &unicode61_->context, &unicode61_->methods) != SQLITE_OK) {
    delete unicode61_;
    sqlite3_close(db_);
    throw base::Error(EIO, "search: this SQLite has no FTS5 unicode61 tokenizer");
  }
}

Fts5Library::~Fts5Library() {
  delete unicode61_;
  sqlite3_close(db_);
}

Tokenizer::Tokenizer(const Fts5Library& lib) : module_(lib.unicode61()) {
  const char* args[] = {"remove_diacritics", "2"};
  if (module_.methods.xCreate(module_.context, args, 2, &tok_) != SQLITE_OK) {
    throw base::Error(EIO, "search: cannot create the unicode61 tokenizer");
  }
}

Tokenizer::~Tokenizer() {
  if (tok_) module_.methods.xDelete(tok_);
}

namespace {

struct StopCallback {
  const std::function<bool(std::string_view, size_t, size_t)>* fn;
  size_t offset;  // of the piece being tokenized within the whole text
  bool stopped;
  std::string fold = {};  // the current token, folded
};

int on_token_until(void* ctx, int /*flags*/, const char* token, int n, int start, int end) {
  auto* cb = static_cast<StopCallback*>(ctx);
  std::string_view folded(token, size_t(n));
  // unicode61 leaves ß and the ligatures as they are; the index holds their
  // full folding (search/fold.h), and so must every token made here.
  if (needs_full_fold(folded)) {
    cb->fold = fold_full_case(folded);
    folded = cb->fold;
  }
  if ((*cb->fn)(folded, cb->offset + size_t(start), cb->offset + size_t(end))) {
    return SQLITE_OK;
  }
  cb->stopped = true;
  return SQLITE_DONE;
}

bool is_ascii_alnum(unsigned char c) { return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'); }

// Where the run of token characters (ASCII letters and digits, and every
// byte >= 0x80) that starts at `from` ends; sets non_ascii when it holds a
// byte >= 0x80.
size_t run_end(std::string_view text, size_t from, bool& non_ascii) {
  non_ascii = false;
  size_t end = from;
  for (; end < text.size(); ++end) {
    const auto c = static_cast<unsigned char>(text[end]);
    if (c >= 0x80) {
      non_ascii = true;
    } else if (!is_ascii_alnum(c)) {
      break;
    }
  }
  return end;
}

}  // namespace

void Tokenizer::tokenize(std::string_view text, const std::function<void(std::string_view, size_t, size_t)>& fn) {
  tokenize_until(text, [&](std::string_view token, size_t start, size_t end) {
    fn(token, start, end);
    return true;
  });
}

// unicode61 takes ASCII letters and digits as token characters, every other
// ASCII character as a separator, and folds ASCII by lower-casing it. So a
// run of ASCII letters and digits between ASCII separators is one token,
// made here without calling the tokenizer (most text is ASCII, and the call
// per token is what costs); runs holding other characters go to unicode61,
// which splits and folds them as it does in the index.
void Tokenizer::tokenize_until(std::string_view text, const std::function<bool(std::string_view, size_t, size_t)>& fn) {
  const size_t n = text.size();
  StopCallback cb{&fn, 0, false};
  size_t i = 0;
  while (i < n) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80 && !is_ascii_alnum(c)) {
      ++i;
      continue;
    }
    bool non_ascii = false;
    size_t j = run_end(text, i, non_ascii);
    if (!non_ascii) {
      folded_.assign(text.data() + i, j - i);
      for (char& ch : folded_) {
        if (ch >= 'A' && ch <= 'Z') ch = char(ch - 'A' + 'a');
      }
      if (!fn(folded_, i, j)) return;
    } else {
      // The runs with other characters that follow (only ASCII separators
      // between) go to unicode61 with this one, in one call.
      for (size_t k = j; k < n;) {
        const auto d = static_cast<unsigned char>(text[k]);
        if (d < 0x80 && !is_ascii_alnum(d)) {
          ++k;
          continue;
        }
        bool other = false;
        const size_t end = run_end(text, k, other);
        if (!other) break;
        j = k = end;
      }
      // FTS5 takes an int length; callers keep texts far below 2 GiB.
      cb.offset = i;
      module_.methods.xTokenize(tok_, &cb, FTS5_TOKENIZE_DOCUMENT, text.data() + i, int(j - i), on_token_until);
      if (cb.stopped) return;
    }
    i = j;
  }
}

std::vector<std::tuple<std::string, size_t, size_t>> Tokenizer::unicode61_tokens(std::string_view text) {
  std::vector<std::tuple<std::string, size_t, size_t>> out;
  const std::function<bool(std::string_view, size_t, size_t)> fn = [&](std::string_view t, size_t a, size_t b) {
    out.emplace_back(std::string(t), a, b);
    return true;
  };
  StopCallback cb{&fn, 0, false};
  if (!text.empty()) {
    module_.methods.xTokenize(tok_, &cb, FTS5_TOKENIZE_DOCUMENT, text.data(), int(text.size()), on_token_until);
  }
  return out;
}

std::vector<std::string> Tokenizer::tokens(std::string_view text) {
  std::vector<std::string> out;
  tokenize(text, [&](std::string_view t, size_t, size_t) { out.emplace_back(t); });
  return out;
}

}  // namespace itemfs::search::detail
