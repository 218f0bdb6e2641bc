// Snippets: the passage of a hit's text shown with it.
//
// The contract: make_snippet cuts a passage of a text around the densest
// cluster of the query's highlight terms near the first one (its start when
// nothing matches). Snippets makes the snippets of a query's hits as their
// items' bytes come in (Snapshot::read_items_until), on the threads that read
// them, reading a long item only as far as its main text's passage needs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "search/extract.h"
#include "search/query.h"
#include "search/tokenize.h"
#include "store/store.h"

namespace itemfs::search::detail {

constexpr size_t kSnippetBodyCap = 256u << 10;  // text read per hit for its snippet

// Working memory of make_snippet, kept across the hits of one query so that
// a long text costs no fresh allocations (and page faults) per hit.
struct SnipScratch {
  std::vector<std::pair<uint32_t, uint32_t>> spans;  // byte range of each token
  std::vector<uint8_t> flags;                        // kWordHit | kCjkHit per token
};
// A passage of `text` around the densest cluster of matched words near the
// first one, or its start when nothing matches (then *matched is false).
// *settled, when given, tells whether the passage would be the same for any
// text that starts with `text`: what a reader that stops early relies on
// (it asks for settled passages only: an unsettled one may come back empty).
std::string make_snippet(Tokenizer& tok, std::string_view text, const std::vector<HighlightTerm>& terms,
                         bool* matched, SnipScratch& sc, bool* settled = nullptr);

// The snippets of a query's hits, made as their items' bytes come in
// (Snapshot::read_items_until), on the threads that reads them. A hit's
// snippet is from its main text (content) first, then all its text, then
// its title; when nothing matches (filters only), the start of its text. A
// long item is read only as far as its main text's snippet needs, which is
// often its first KiB.
class Snippets final : public store::Snapshot::PreviewSink {
 public:
  // One tokenizer for each thread that may call.
  Snippets(const std::vector<HighlightTerm>& terms, size_t hits, std::vector<Tokenizer*> tokenizers)
      : terms_(terms), tok_(std::move(tokenizers)), scratch_(tok_.size()), hits_(hits) {}

  bool piece(size_t thread, size_t k, std::string_view bytes) override {
    Hit& h = hits_[k];
    if (!h.x.feed(bytes)) return false;
    const std::string_view main_text = h.x.main_text_so_far();
    if (main_text.size() < h.try_at) return true;
    h.try_at = main_text.size() * 2;
    bool matched = false, settled = false;
    std::string snippet = make_snippet(*tok_[thread], main_text, terms_, &matched, scratch_[thread], &settled);
    if (!settled) return true;
    h.snippet = std::move(snippet);
    return false;
  }

  void done(size_t thread, size_t k) override {
    Hit& h = hits_[k];
    if (h.snippet.empty()) h.snippet = whole(*tok_[thread], h.x.result(), scratch_[thread]);
    h.x = Extractor(0, Extractor::Collect::kText);  // (its text is no longer needed)
  }

  std::string take(size_t k) { return std::move(hits_[k].snippet); }

 private:
  struct Hit {
    Extractor x{kSnippetBodyCap, Extractor::Collect::kText};
    // The snippet is tried once the main text has this much, then each time
    // it has doubled.
    size_t try_at = store::Snapshot::kFirstPiece / 2;
    std::string snippet;
  };

  std::string whole(Tokenizer& tok, const Extracted& e, SnipScratch& scratch) const {
    bool matched = false;
    const std::string_view main_text = std::string_view(e.body).substr(0, e.main_size);
    std::string snippet = make_snippet(tok, main_text.empty() ? e.body : main_text, terms_, &matched, scratch);
    if (!matched && main_text.size() < e.body.size()) {
      std::string all = make_snippet(tok, e.body, terms_, &matched, scratch);
      if (matched) snippet = std::move(all);
    }
    if (!matched) {
      std::string title = make_snippet(tok, e.title, terms_, &matched, scratch);
      if (matched || snippet.empty()) snippet = std::move(title);
    }
    return snippet;
  }

  const std::vector<HighlightTerm>& terms_;
  std::vector<Tokenizer*> tok_;
  std::vector<SnipScratch> scratch_;
  std::vector<Hit> hits_;
};

}  // namespace itemfs::search::detail
