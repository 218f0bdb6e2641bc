// Suggestions (Index::suggest_json: the words that complete a prefix, by
// how many items have them) and facets (Index::facets_json: the hosts,
// authors, tags, languages and years of a query's items, counted).

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "search/access.h"
#include "search/index_impl.h"
#include "search/matching.h"

namespace itemfs::search {

namespace {

using json = nlohmann::json;

std::string dump(const json& j) { return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n"; }

}  // namespace

Status Index::suggest_json(std::string_view prefix, std::string& out, const Reader& who) {
  Tokenizer tok(impl_->lib);
  if (prefix.size() > kMaxQueryBytes) return Status::error(EINVAL, "the prefix is longer than 4096 bytes");
  bool single = false;
  auto tokens = query_tokens(tok, prefix, &single);
  if (tokens.empty()) return Status::error(EINVAL, "the prefix has no letters or digits to complete");
  const std::string& t = tokens.back();
  auto view = impl_->query_view(nullptr);
  if (!view) return Status::error(EIO, "the search index is missing; run itemfs reindex");
  sqlite3* db = view->db();
  base::Stmt s(db, "SELECT term, doc FROM search_vocab WHERE term >= ?1 AND term < ?2");
  s.bind(1, t).bind(2, t + "\xF4\x90");
  std::vector<std::pair<std::string, int64_t>> terms;
  while (s.step()) {
    std::string_view term = s.text(0);
    if (is_marker(term)) continue;
    terms.emplace_back(term, s.int64(1));
  }
  auto before = [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; };
  std::sort(terms.begin(), terms.end(), before);
  if (const std::vector<int64_t> closed = unreadable_gens(db, impl_->store, who); !closed.empty()) {
    // The index counts every item's words; this reader's counts leave out
    // the items it may not read, which needs each word's rows. A word's
    // count can only shrink, so words are taken most frequent first until
    // the next one cannot reach the 50th count found.
    std::vector<std::pair<std::string, int64_t>> mine;
    std::vector<int64_t> least;  // a min-heap of the best 50 counts so far
    for (auto& [term, docs] : terms) {
      if (least.size() == 50 && docs < least.front()) break;
      const std::vector<int64_t> rows = rows_matching(db, fts_phrase({term}));
      int64_t readable = int64_t(rows.size());
      for (int64_t c : closed) readable -= std::binary_search(rows.begin(), rows.end(), c);
      if (readable <= 0) continue;  // a word only unreadable items have
      mine.emplace_back(std::move(term), readable);
      least.push_back(readable);
      std::push_heap(least.begin(), least.end(), std::greater<>());
      if (least.size() > 50) {
        std::pop_heap(least.begin(), least.end(), std::greater<>());
        least.pop_back();
      }
    }
    std::sort(mine.begin(), mine.end(), before);
    terms.swap(mine);
  }
  if (terms.size() > 50) terms.resize(50);
  json list = json::array();
  for (const auto& [term, docs] : terms) list.push_back(json{{"term", term}, {"docs", docs}});
  out = dump(json{{"prefix", std::string(prefix)}, {"terms", std::move(list)}});
  return Status::success();
}

Status Index::facets_json(std::string_view query, std::string& out, const Reader& who) {
  Tokenizer tok(impl_->lib);
  Query q;
  if (Status st = parse_query(query, tok, q); !st.ok()) return st;
  auto view = impl_->query_view(nullptr);
  if (!view) return Status::error(EIO, "the search index is missing; run itemfs reindex");
  sqlite3* db = view->db();
  auto snap = impl_->store.snapshot();
  base::Stmt s(db, match_sql(q, true, "d.host, d.author, d.lang, d.tags, d.date"));
  bind_match(s, q);
  base::Stmt lookup(db, kItemOfGen);
  const CheckPlan check(db, q);
  const std::vector<int64_t> closed = unreadable_gens(db, impl_->store, who);  // not counted
  // Host, author and lang are counted by search_value id; the values of the
  // largest are read at the end.
  std::unordered_map<int64_t, uint64_t> host, author, lang, tag_list;
  std::unordered_map<std::string, uint64_t> tag;
  std::unordered_map<int, uint64_t> year;
  uint64_t total = 0;
  while (s.step()) {
    if (!closed.empty() && contains(closed, s.int64(0))) continue;
    if (check.needed(s.int64(0)) && !exact_match(*snap, lookup, tok, q, s.int64(0))) continue;
    ++total;
    if (!s.is_null(1)) ++host[s.int64(1)];
    if (!s.is_null(2)) ++author[s.int64(2)];
    if (!s.is_null(3)) ++lang[s.int64(3)];
    if (!s.is_null(4)) ++tag_list[s.int64(4)];
    if (!s.is_null(5)) ++year[year_of(s.int64(5))];
  }
  base::Stmt value_of(db, "SELECT value FROM search_value WHERE id=?");
  for (const auto& [id, count] : tag_list) {
    base::StmtScope r(value_of);
    if (!value_of.bind(1, id).step()) continue;
    std::string_view tags = value_of.text(0);
    std::vector<std::string_view> seen;  // an item counts once for a tag it has twice
    while (!tags.empty()) {
      const size_t sep = tags.find('\x1f');
      std::string_view one = tags.substr(0, sep);
      if (!one.empty() && std::find(seen.begin(), seen.end(), one) == seen.end()) {
        seen.push_back(one);
        tag[std::string(one)] += count;
      }
      if (sep == std::string_view::npos) break;
      tags.remove_prefix(sep + 1);
    }
  }
  // The 20 largest, ties by value: only values that can be among them are read.
  auto top = [&](const auto& counts, auto name) {
    std::vector<uint64_t> sizes;
    sizes.reserve(counts.size());
    for (const auto& kv : counts) sizes.push_back(kv.second);
    uint64_t least = 0;
    if (sizes.size() > 20) {
      std::nth_element(sizes.begin(), sizes.begin() + 19, sizes.end(), std::greater<>());
      least = sizes[19];
    }
    std::vector<std::pair<std::string, uint64_t>> v;
    for (const auto& [key, count] : counts) {
      if (count >= least) v.emplace_back(name(key), count);
    }
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    if (v.size() > 20) v.resize(20);
    json list = json::array();
    for (const auto& [value, count] : v) list.push_back(json{{"value", value}, {"count", count}});
    return list;
  };
  auto value = [&](int64_t id) {
    base::StmtScope r(value_of);
    return value_of.bind(1, id).step() ? std::string(value_of.text(0)) : std::string();
  };
  json facets{{"host", top(host, value)},
              {"author", top(author, value)},
              {"tag", top(tag, [](const std::string& t) { return t; })},
              {"lang", top(lang, value)},
              {"year", top(year, [](int y) { return std::to_string(y); })}};
  out = dump(json{{"query", std::string(query)}, {"total", total}, {"facets", std::move(facets)}});
  return Status::success();
}

}  // namespace itemfs::search
