#include "store/dictionary.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <climits>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <thread>

#include "store/parallel.h"

namespace itemfs::store {

namespace {

// Segment selection (see train_dictionary()): k-mers of kKmer bytes, scored by
// how many samples hold them; candidate segments of kSegment bytes every
// kStride bytes of every sample. The dictionaries that only regroup the
// samples (train_group_dictionaries()) take candidates every kCoarseStride
// bytes: on the benchmark corpus that trains in 55% of the time and
// compresses as well (27.237 against 27.242 MB of a third of it).
constexpr size_t kKmer = 6, kSegment = 64, kStride = 16, kCoarseStride = 64;
// A group's count table has a slot for every 4 bytes of its samples, so
// that it stays in cache more often. Compression does not suffer: a third of
// the benchmark corpus compressed 0.25% smaller (27.175 against 27.237 MB)
// and the whole 100k store the same (85.68 against 85.67 MB). The general
// dictionary compressed worse so; it keeps a slot per byte.
constexpr int kGroupTableShift = 2, kGeneralTableShift = 0;
// Rounds of regrouping after the first grouping (train_group_dictionaries()).
constexpr int kRegroupRounds = 2;
// Each training thread holds a count table of up to 2 MiB and its candidates.
constexpr size_t kMaxTrainingThreads = 4;

uint32_t kmer_hash(const char* p, unsigned bits) {
  // Two loads into registers: a 6-byte copy into a zeroed word went through
  // the stack and stalled every hash on store forwarding (5x the training).
  static_assert(kKmer == 6);
  uint32_t low;
  uint16_t high;
  std::memcpy(&low, p, 4);
  std::memcpy(&high, p + 4, 2);
  const uint64_t word = low | uint64_t(high) << 32;
  return uint32_t((word * 0x9E3779B97F4A7C15ull) >> (64 - bits));
}

struct Candidate {
  uint64_t score;
  uint32_t sample, offset;
  // The heap's order: the best score first, then the earliest candidate,
  // so that the result depends on the samples alone.
  bool operator<(const Candidate& o) const {
    if (score != o.score) return score < o.score;
    if (sample != o.sample) return sample > o.sample;
    return offset > o.offset;
  }
};

// train_dictionary() on views of the samples, so that a group's need not be
// copied. Candidates start every `stride` bytes; the k-mer count table has
// about 2^-table_shift slots per byte of samples.
std::string train_from(const std::vector<std::string_view>& samples, size_t size, size_t stride, int table_shift) {
  size_t total = 0;
  for (std::string_view sample : samples) total += sample.size();
  if (total <= size) {
    // All of them fit: nothing to choose.
    std::string dictionary;
    dictionary.reserve(total);
    for (auto it = samples.rbegin(); it != samples.rend(); ++it) dictionary += *it;
    return dictionary;
  }
  // How many samples hold each k-mer, by hash. 16 bits, saturating: half
  // the table to keep in cache, and no score changes below 65,535 samples.
  const unsigned bits = unsigned(std::clamp<int>(int(std::bit_width(total)) - table_shift, 12, 20));
  std::vector<uint16_t> holders(size_t(1) << bits);
  std::vector<uint32_t> last(size_t(1) << bits, UINT32_MAX);
  for (uint32_t i = 0; i < samples.size(); ++i) {
    std::string_view s = samples[i];
    for (size_t p = 0; p + kKmer <= s.size(); ++p) {
      uint32_t h = kmer_hash(s.data() + p, bits);
      if (last[h] != i) {
        last[h] = i;
        if (holders[h] != UINT16_MAX) ++holders[h];
      }
    }
  }
  std::vector<uint32_t>().swap(last);
  // A segment is worth what its k-mers that other samples share and that no
  // chosen segment holds yet are worth: once one is chosen, its k-mers count
  // no more (holders set to 0).
  auto score = [&](uint32_t sample, uint32_t offset) {
    std::string_view s = samples[sample];
    const size_t end = std::min(s.size(), size_t(offset) + kSegment);
    uint64_t sum = 0;
    for (size_t p = offset; p + kKmer <= end; ++p) {
      uint32_t n = holders[kmer_hash(s.data() + p, bits)];
      if (n > 1) sum += n - 1;
    }
    return sum;
  };
  std::vector<Candidate> heap;
  for (uint32_t i = 0; i < samples.size(); ++i) {
    const size_t n = samples[i].size();
    if (n < kKmer) continue;
    auto add = [&](size_t offset) {
      uint64_t sc = score(i, uint32_t(offset));
      if (sc > 0) heap.push_back({sc, i, uint32_t(offset)});
    };
    size_t offset = 0;
    for (; offset + kSegment <= n; offset += stride) add(offset);
    // The end too, where documents tend to share their closing structure.
    if (n < kSegment) add(0);
    else if (offset - stride + kSegment < n) add(n - kSegment);
  }
  std::make_heap(heap.begin(), heap.end());
  // Greedy, with scores brought up to date lazily: a candidate's score only
  // falls as others are chosen, so one still at least as good as the next
  // best after rescoring is the best.
  std::vector<Candidate> chosen;
  size_t used = 0;
  while (!heap.empty() && used < size) {
    std::pop_heap(heap.begin(), heap.end());
    Candidate c = heap.back();
    heap.pop_back();
    c.score = score(c.sample, c.offset);
    if (c.score == 0) continue;
    if (!heap.empty() && c < heap.front()) {
      heap.push_back(c);
      std::push_heap(heap.begin(), heap.end());
      continue;
    }
    std::string_view s = samples[c.sample];
    const size_t end = std::min(s.size(), size_t(c.offset) + kSegment);
    for (size_t p = c.offset; p + kKmer <= end; ++p) holders[kmer_hash(s.data() + p, bits)] = 0;
    used += end - c.offset;
    chosen.push_back(c);
  }
  // The most valuable last, nearest to the data. Chosen order is best first.
  std::string dictionary;
  dictionary.reserve(used);
  for (auto it = chosen.rbegin(); it != chosen.rend(); ++it) {
    std::string_view s = samples[it->sample];
    dictionary.append(s.substr(it->offset, kSegment));
  }
  if (dictionary.size() > size) dictionary.erase(0, dictionary.size() - size);
  return dictionary;
}

}  // namespace

std::string train_dictionary(const std::vector<std::string>& samples, size_t size) {
  return train_from(std::vector<std::string_view>(samples.begin(), samples.end()), size, kStride, kGeneralTableShift);
}

namespace {

uint32_t hash_at(const char* p) {
  uint32_t word;
  std::memcpy(&word, p, 4);
  return (word * 2654435761u) >> (32 - Fingerprint::kBits);
}

}  // namespace

Fingerprint::Fingerprint() : words_((size_t(1) << kBits) / 64) {}

void Fingerprint::add(std::string_view bytes) {
  for (size_t i = 0; i + 4 <= bytes.size(); ++i) {
    uint32_t h = hash_at(bytes.data() + i);
    words_[h >> 6] |= uint64_t(1) << (h & 63);
  }
}

size_t Fingerprint::count(const std::vector<uint32_t>& hashes) const {
  size_t n = 0;
  for (uint32_t h : hashes) n += has(h);
  return n;
}

std::vector<uint32_t> sample_hashes(std::string_view bytes, size_t limit) {
  std::vector<uint32_t> out;
  if (bytes.size() < 4 || limit == 0) return out;
  size_t positions = bytes.size() - 3;
  size_t step = std::max<size_t>(1, (positions + limit - 1) / limit);
  out.reserve(positions / step + 1);
  for (size_t i = 0; i < positions; i += step) out.push_back(hash_at(bytes.data() + i));
  return out;
}

namespace {

// The dictionaries of the groups (lists of sample indexes, in sample
// order) of at least `min_bytes`, the largest first, at most `max`.
std::vector<std::string> pack_groups(const std::vector<std::string>& samples,
                                     const std::vector<std::vector<size_t>>& groups, size_t max, size_t min_bytes,
                                     size_t size, size_t stride) {
  std::vector<std::pair<size_t, size_t>> order;  // bytes, group
  for (size_t g = 0; g < groups.size(); ++g) {
    size_t bytes = 0;
    for (size_t i : groups[g]) bytes += samples[i].size();
    order.emplace_back(bytes, g);
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  size_t count = 0;
  while (count < order.size() && count < max && order[count].first >= min_bytes) ++count;
  // Each group trains on its own: spread over the cores, since a store
  // stops writing while it trains. The result does not depend on which
  // thread trains which.
  std::vector<std::string> out(count);
  std::atomic<size_t> next{0};
  const size_t threads = std::min<size_t>(std::max(1u, std::thread::hardware_concurrency()), kMaxTrainingThreads);
  run_on_threads(std::min(threads, count), [&](size_t) {
    for (size_t k = next++; k < count; k = next++) {
      std::vector<std::string_view> members;
      for (size_t i : groups[order[k].second]) members.push_back(samples[i]);
      out[k] = train_from(members, size, stride, kGroupTableShift);
    }
  });
  return out;
}

}  // namespace

std::vector<std::string> train_group_dictionaries(const std::vector<std::string>& samples, const std::string& general,
                                                  size_t max_dictionaries, size_t min_bytes, size_t size) {
  struct Group {
    std::vector<size_t> members;
    size_t packed = 0;  // bytes of the members in the fingerprint
    Fingerprint fingerprint;
  };
  // A group costs 32 KiB while training: a few times more than can become
  // dictionaries, and samples alike to none of them start no more.
  const size_t max_groups = std::max<size_t>(4 * max_dictionaries, 16);
  std::vector<Group> groups;
  for (size_t i = 0; i < samples.size(); ++i) {
    const std::string& sample = samples[i];
    auto hashes = sample_hashes(sample, 256);
    if (hashes.empty()) continue;
    size_t best = groups.size(), best_count = 0;
    for (size_t g = 0; g < groups.size(); ++g) {
      size_t n = groups[g].fingerprint.count(hashes);
      if (n > best_count) {
        best = g;
        best_count = n;
      }
    }
    if (best == groups.size() || 2 * best_count < hashes.size()) {
      if (groups.size() == max_groups) continue;
      groups.emplace_back();
      best = groups.size() - 1;
    }
    Group& group = groups[best];
    group.members.push_back(i);
    // The fingerprint holds what the group's dictionary will hold.
    if (group.packed + sample.size() <= size) {
      group.packed += sample.size();
      group.fingerprint.add(sample);
    }
  }
  std::vector<std::vector<size_t>> members;
  for (auto& group : groups) members.push_back(std::move(group.members));
  groups.clear();
  std::vector<std::string> dictionaries =
      pack_groups(samples, members, max_dictionaries, min_bytes, size, kCoarseStride);
  // kRegroupRounds times more, each sample goes to the dictionary DictionarySet::choose()
  // would give it (the general one among them), and the groups are made
  // again from that.
  for (int round = 0; round < kRegroupRounds && !dictionaries.empty(); ++round) {
    std::vector<std::shared_ptr<const Dictionary>> candidates;
    auto add = [&](const std::string& data) {
      auto d = std::make_shared<Dictionary>();
      d->id = int64_t(candidates.size());  // its index here
      d->data = data;
      d->fingerprint.add(d->data);
      candidates.push_back(std::move(d));
    };
    for (const std::string& data : dictionaries) add(data);
    add(general);
    DictionarySet set(std::move(candidates));
    members.assign(dictionaries.size(), {});
    for (size_t i = 0; i < samples.size(); ++i) {
      const Dictionary* chosen = set.choose(samples[i]);
      if (chosen && size_t(chosen->id) < dictionaries.size()) members[size_t(chosen->id)].push_back(i);
    }
    const bool last_round = round + 1 == kRegroupRounds;
    dictionaries =
        pack_groups(samples, members, max_dictionaries, min_bytes, size, last_round ? kStride : kCoarseStride);
  }
  return dictionaries;
}

DictionarySet::DictionarySet(std::vector<std::shared_ptr<const Dictionary>> dictionaries)
    : dictionaries_(std::move(dictionaries)) {
  for (const auto& d : dictionaries_) generation_ = std::max(generation_, d->id);
  if (dictionaries_.size() < 2 || dictionaries_.size() > 128) return;
  holders_.assign(size_t(2) << Fingerprint::kBits, 0);
  for (size_t d = 0; d < dictionaries_.size(); ++d) {
    const auto& words = dictionaries_[d]->fingerprint.words();
    for (size_t w = 0; w < words.size(); ++w)
      for (uint64_t bits = words[w]; bits; bits &= bits - 1) {
        size_t hash = w * 64 + size_t(__builtin_ctzll(bits));
        holders_[2 * hash + d / 64] |= uint64_t(1) << (d % 64);
      }
  }
}

const Dictionary* DictionarySet::choose(std::string_view bytes) const {
  if (dictionaries_.empty()) return nullptr;
  if (dictionaries_.size() == 1) return dictionaries_[0].get();
  auto hashes = sample_hashes(bytes);
  std::vector<uint32_t> counts(dictionaries_.size());
  if (!holders_.empty()) {
    // The table is larger than the caches: ask for the lines a few hashes
    // ahead, so that the look-ups overlap instead of waiting in turn.
    constexpr size_t kAhead = 16;
    for (size_t i = 0; i < std::min(kAhead, hashes.size()); ++i) __builtin_prefetch(&holders_[2 * size_t(hashes[i])]);
    for (size_t i = 0; i < hashes.size(); ++i) {
      if (i + kAhead < hashes.size()) __builtin_prefetch(&holders_[2 * size_t(hashes[i + kAhead])]);
      const uint64_t* holders = &holders_[2 * size_t(hashes[i])];
      for (size_t word = 0; word < 2; ++word)
        for (uint64_t bits = holders[word]; bits; bits &= bits - 1) ++counts[word * 64 + size_t(__builtin_ctzll(bits))];
    }
  } else {
    for (size_t d = 0; d < dictionaries_.size(); ++d) counts[d] = uint32_t(dictionaries_[d]->fingerprint.count(hashes));
  }
  // The most; the first of them on a tie.
  size_t best = 0;
  for (size_t d = 1; d < counts.size(); ++d)
    if (counts[d] > counts[best]) best = d;
  return dictionaries_[best].get();
}

}  // namespace itemfs::store
