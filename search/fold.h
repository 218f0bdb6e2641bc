// Internal: the full case foldings (Unicode CaseFolding.txt, status F) of
// letters that unicode61 keeps as they are, so that a word matches however it
// is written: ß and ẞ are ss (Straße finds STRASSE and the reverse), the
// Latin ligatures ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ are their letters, ŉ is ʼn. Everything else
// (case, accents, final sigma) unicode61 folds itself.
//
// The index folds the text it is given (cjk_index_text), queries fold what
// is typed (cjk_query_text), and Tokenizer folds the tokens it makes, so
// snippets find the words in an item's own text. Changing the table means a
// new kIndexVersion.
#pragma once

#include <string>
#include <string_view>

namespace itemfs::search::detail {

// Whether `text` holds a letter fold_full_case() changes.
bool needs_full_fold(std::string_view text);
// `text` with those letters replaced by their full folding.
std::string fold_full_case(std::string_view text);

}  // namespace itemfs::search::detail
