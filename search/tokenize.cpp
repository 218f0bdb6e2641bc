#include "search/tokenize.h"

#include <sqlite3.h>


#include "store/store.h"

namespace itemfs::search::detail {

struct Fts5Library::Unicode61 {
  void* context = nullptr;
  fts5_tokenizer methods{};
};

Fts5Library::Fts5Library() {
  if (sqlite3_open_v2(":memory:", &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
    sqlite3_close(db_);
    throw store::StoreError(EIO, "search: cannot open an in-memory SQLite database");
  }
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, "SELECT fts5(?1)", -1, &stmt, nullptr) == SQLITE_OK) {
    sqlite3_bind_pointer(stmt, 1, &api_, "fts5_api_ptr", nullptr);
    sqlite3_step(stmt);
  }
  sqlite3_finalize(stmt);
  unicode61_ = new Unicode61;
  if (api_ == nullptr || api_->xFindTokenizer(api_, "unicode61", &unicode61_->context, &unicode61_->methods) != SQLITE_OK) {
    delete unicode61_;
    sqlite3_close(db_);
    throw store::StoreError(EIO, "search: this SQLite has no FTS5 unicode61 tokenizer");
  }
}

Fts5Library::~Fts5Library() {
  delete unicode61_;
  sqlite3_close(db_);
}

Tokenizer::Tokenizer(const Fts5Library& lib) : module_(lib.unicode61()) {
  const char* args[] = {"remove_diacritics", "2"};
  if (module_.methods.xCreate(module_.context, args, 2, &tok_) != SQLITE_OK) {
    throw store::StoreError(EIO, "search: cannot create the unicode61 tokenizer");
  }
}

Tokenizer::~Tokenizer() {
  if (tok_) module_.methods.xDelete(tok_);
}

namespace {

struct Callback {
  std::string_view text;
  const std::function<void(std::string_view, size_t, size_t)>* fn;
};

int on_token(void* ctx, int /*flags*/, const char* token, int n, int start, int end) {
  auto* cb = static_cast<Callback*>(ctx);
  (*cb->fn)(std::string_view(token, size_t(n)), size_t(start), size_t(end));
  return SQLITE_OK;
}

}  // namespace

void Tokenizer::tokenize(std::string_view text, const std::function<void(std::string_view, size_t, size_t)>& fn) {
  if (text.empty()) return;
  Callback cb{text, &fn};
  // FTS5 takes an int length; callers keep texts far below 2 GiB.
  module_.methods.xTokenize(tok_, &cb, FTS5_TOKENIZE_DOCUMENT, text.data(), int(text.size()), on_token);
}

namespace {

struct StopCallback {
  const std::function<bool(std::string_view, size_t, size_t)>* fn;
};

int on_token_until(void* ctx, int /*flags*/, const char* token, int n, int start, int end) {
  auto* cb = static_cast<StopCallback*>(ctx);
  return (*cb->fn)(std::string_view(token, size_t(n)), size_t(start), size_t(end)) ? SQLITE_OK : SQLITE_DONE;
}

}  // namespace

void Tokenizer::tokenize_until(std::string_view text, const std::function<bool(std::string_view, size_t, size_t)>& fn) {
  if (text.empty()) return;
  StopCallback cb{&fn};
  module_.methods.xTokenize(tok_, &cb, FTS5_TOKENIZE_DOCUMENT, text.data(), int(text.size()), on_token_until);
}

std::vector<std::string> Tokenizer::tokens(std::string_view text) {
  std::vector<std::string> out;
  tokenize(text, [&](std::string_view t, size_t, size_t) { out.emplace_back(t); });
  return out;
}

}  // namespace itemfs::search::detail
