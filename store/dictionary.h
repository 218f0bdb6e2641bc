// A zlib preset dictionary trained from a store's own items: single small
// JSON documents compress poorly alone, but they share keys, URLs and
// boilerplate that a dictionary can hold.
#pragma once

#include <string>
#include <vector>

namespace itemfs::store {

// Builds a dictionary of at most `size` bytes from `samples`: the segments
// whose 8-byte substrings occur in the most samples, most useful last (zlib
// reaches the end of a dictionary with the shortest distances).
// Deterministic for the same samples.
std::string train_dictionary(const std::vector<std::string>& samples, size_t size = 32 * 1024);

}  // namespace itemfs::store
