// zlib preset dictionaries trained from a store's own items: single small
// JSON documents compress poorly alone, but they share keys, URLs and
// boilerplate that a dictionary can hold. A store keeps a set of them, one
// general and several made from groups of alike documents (one language, one
// site), and each chunk is compressed with the one that shares most of its
// byte sequences.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace itemfs::store {

// Builds a dictionary of at most `size` bytes from sample documents: the
// 64-byte segments of them whose 6-byte sequences most other samples also
// hold, chosen greedily (a sequence counts once, for the first segment that
// holds it), the most valuable last (zlib reaches the end of a dictionary
// with the shortest distances). Samples that fit whole are kept whole.
// Measured on the 100k benchmark corpus (43 dictionaries trained after 2,000
// items, zlib level 6): blobs 90.50 -> 88.71 MB against whole documents
// packed from the end, which carry much that only their own document holds.
// Deterministic for the same samples.
std::string train_dictionary(const std::vector<std::string>& samples, size_t size = 32 * 1024);

// Which 4-byte sequences a text holds: a bit per hash of each, in a set of
// 2^18 bits (a 32 KiB dictionary sets about a tenth of them).
class Fingerprint {
 public:
  static constexpr unsigned kBits = 18;
  Fingerprint();
  void add(std::string_view bytes);
  bool has(uint32_t hash) const { return (words_[hash >> 6] >> (hash & 63)) & 1; }
  // How many of `hashes` it has.
  size_t count(const std::vector<uint32_t>& hashes) const;
  const std::vector<uint64_t>& words() const { return words_; }

 private:
  std::vector<uint64_t> words_;
};

// The hashes of at most `limit` of the 4-byte sequences of `bytes`, evenly
// spaced: what a chunk is matched against the dictionaries by.
std::vector<uint32_t> sample_hashes(std::string_view bytes, size_t limit = 512);

// Groups alike documents (samples in store order) and makes a dictionary
// (train_dictionary()) of each group of at least `min_bytes` bytes of
// samples, the largest groups first, at most `max_dictionaries`. First each
// sample joins the group whose documents so far hold the most of its sampled
// 4-byte sequences, if they hold at least half of them, else starts a group
// of its own; then, twice, each sample goes to the dictionary that
// DictionarySet::choose() would give it among these and `general` (the
// samples that go to `general` belong to no group), and the groups are made
// again. The dictionaries before the last round only regroup: they are
// trained from candidate segments 64 bytes apart instead of 16 (as good for
// grouping, in half the time). Deterministic for the same samples.
std::vector<std::string> train_group_dictionaries(const std::vector<std::string>& samples, const std::string& general,
                                                  size_t max_dictionaries, size_t min_bytes = 8 * 1024,
                                                  size_t size = 32 * 1024);

struct Dictionary {
  int64_t id = 0;
  std::string data;
  Fingerprint fingerprint;
};

// The dictionaries new blobs are compressed with. Immutable once built.
class DictionarySet {
 public:
  DictionarySet() = default;
  explicit DictionarySet(std::vector<std::shared_ptr<const Dictionary>> dictionaries);
  bool empty() const { return dictionaries_.empty(); }
  // Names this set: the id of its newest dictionary (0 when empty).
  int64_t generation() const { return generation_; }
  const std::vector<std::shared_ptr<const Dictionary>>& dictionaries() const { return dictionaries_; }
  // The dictionary for a chunk: the one whose fingerprint has most of the
  // chunk's sampled sequences, the first of them on a tie; nullptr if none.
  // Depends on nothing but the bytes and the set.
  const Dictionary* choose(std::string_view bytes) const;

 private:
  std::vector<std::shared_ptr<const Dictionary>> dictionaries_;
  int64_t generation_ = 0;
  // For each hash, which dictionaries' fingerprints have it (a bit each, two
  // words): one look-up per sampled hash instead of one per dictionary.
  // Empty with one dictionary, or more than 128.
  std::vector<uint64_t> holders_;
};

}  // namespace itemfs::store
