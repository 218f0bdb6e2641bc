// libFuzzer target: text extraction from an item and the search query
// compiler (with the index's own unicode61 tokenizer).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "search/extract.h"
#include "search/query.h"
#include "search/tokenize.h"

using namespace itemfs::search::detail;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fts5Library library;
  static Tokenizer tokenizer(library);
  std::string_view text(reinterpret_cast<const char*>(data), size);
  // Extraction sees only validated JSON in itemfs, but must not crash on
  // anything.
  (void)extract(text, 4096);
  Query query;
  itemfs::base::Status status = parse_query(text.substr(0, 5000), tokenizer, query);
  if (!status.ok() && status.code != EINVAL) std::abort();
  return 0;
}
