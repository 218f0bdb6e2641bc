// Tests of who may see what in itemfs::search::Index: a query, its facets and
// suggestions answer a Reader with the items it may read, and nothing else.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "search/search.h"
#include "store/store.h"

namespace fs = std::filesystem;
using itemfs::search::Index;
using itemfs::search::Reader;
using itemfs::search::Results;
using itemfs::store::Attrs;
using itemfs::store::Store;
using itemfs::store::WriteBatch;
using nlohmann::json;

namespace {

Attrs attrs(uint32_t mode, uint32_t uid, uint32_t gid) {
  Attrs a;
  a.mode = 0100000 | mode;
  a.uid = uid;
  a.gid = gid;
  return a;
}

// A store with its index in a temp directory.
struct Indexed {
  explicit Indexed(const std::string& tag) {
    std::random_device rd;
    dir = fs::temp_directory_path() / ("itemfs-readers-" + tag + std::to_string(rd()) + std::to_string(rd()));
    store = Store::open(dir);
    index = std::make_unique<Index>(*store);
  }
  ~Indexed() {
    index.reset();
    store.reset();
    fs::remove_all(dir);
  }
  void put(const std::string& id, const json& doc, const Attrs& a) {
    store->write([&](WriteBatch& b) {
      std::istringstream in(doc.dump());
      auto st = b.put(id, in, a);
      ASSERT_TRUE(st.ok()) << st.message;
    });
  }
  void set_attrs(const std::string& id, const Attrs& a) {
    store->write([&](WriteBatch& b) { ASSERT_TRUE(b.set_attrs(id, a).ok()); });
  }
  Results run(const std::string& q, const Reader& who) {
    Results r;
    auto st = index->run(q, r, who);
    EXPECT_TRUE(st.ok()) << q << ": " << st.message;
    return r;
  }
  std::vector<std::string> ids(const std::string& q, const Reader& who) {
    std::vector<std::string> out;
    for (const auto& h : run(q, who).hits) out.push_back(h.id);
    std::sort(out.begin(), out.end());
    return out;
  }
  json facets(const std::string& q, const Reader& who) {
    std::string out;
    EXPECT_TRUE(index->facets_json(q, out, who).ok());
    return json::parse(out);
  }
  json suggest(const std::string& prefix, const Reader& who) {
    std::string out;
    EXPECT_TRUE(index->suggest_json(prefix, out, who).ok());
    return json::parse(out);
  }

  fs::path dir;
  std::unique_ptr<Store> store;
  std::unique_ptr<Index> index;
};

using V = std::vector<std::string>;

const Reader kRoot{};
const Reader kUser{1000, 1000, {}};
const Reader kTeam{1000, 1000, {50}};  // also in group 50

// pub 0644 root; priv 0600 root (ranks first: the word in its title); team
// 0640 group 50; own 0044 owned by the user (whose owner bits say no).
void load(Indexed& x, bool with_private = true) {
  x.put("pub", {{"title", "Open notes"}, {"content", "A quokka smiles in the open."}, {"url", "https://open.example.com/a"},
                {"author", "Alice Open"}, {"tags", {"visible"}}},
        attrs(0644, 0, 0));
  if (with_private) {
    x.put("priv", {{"title", "Quokka confession"}, {"content", "The quokka xylophage stays hidden."},
                   {"url", "https://secret.example.org/b"}, {"author", "Mallory Hidden"}, {"tags", {"covert"}}},
          attrs(0600, 0, 0));
  }
  x.put("team", {{"title", "Team page"}, {"content", "quokka for the team"}}, attrs(0640, 0, 50));
  x.put("own", {{"title", "Own page"}, {"content", "quokka the owner may not read"}}, attrs(0044, 1000, 0));
}

}  // namespace

TEST(SearchReaders, MayReadAsDefaultPermissions) {
  EXPECT_TRUE(kRoot.may_read(0000, 5, 5));
  EXPECT_TRUE(kUser.may_read(0400, 1000, 7));
  EXPECT_FALSE(kUser.may_read(0044, 1000, 1000));  // the owner bits decide for the owner
  EXPECT_TRUE(kUser.may_read(0040, 7, 1000));      // primary group
  EXPECT_FALSE(kUser.may_read(0404, 7, 1000));     // the group bits decide for the group
  EXPECT_TRUE(kTeam.may_read(0040, 7, 50));        // supplementary group
  EXPECT_FALSE(kUser.may_read(0040, 7, 50));
  EXPECT_TRUE(kUser.may_read(0004, 7, 7));
  EXPECT_FALSE(kUser.may_read(0640, 7, 7));
  EXPECT_FALSE(kUser.may_read(0333, 7, 7));  // write and execute are not read
}

TEST(SearchReaders, HitsAndCountsAreTheReadersOwn) {
  Indexed x("hits");
  load(x);
  EXPECT_EQ(x.ids("quokka", kRoot), (V{"own", "priv", "pub", "team"}));
  EXPECT_EQ(x.ids("quokka", kUser), (V{"pub"}));
  EXPECT_EQ(x.ids("quokka", kTeam), (V{"pub", "team"}));
  EXPECT_EQ(x.run("quokka", kUser).total, 1u);
  EXPECT_EQ(x.run("quokka", kTeam).total, 2u);
  // The limit applies to what the reader may read: priv ranks first for root.
  EXPECT_EQ(x.run("quokka limit:1", kRoot).hits.at(0).id, "priv");
  Results r = x.run("quokka limit:1", kUser);
  ASSERT_EQ(r.hits.size(), 1u);
  EXPECT_EQ(r.hits[0].id, "pub");
  EXPECT_EQ(r.total, 1u);
  // Every form of query: a word only the private item has, a phrase, a
  // field, dates-only and sort:date, the listing without snippets.
  EXPECT_EQ(x.run("xylophage", kUser).total, 0u);
  EXPECT_EQ(x.run("xylophage", kRoot).total, 1u);
  EXPECT_EQ(x.run("\"quokka xylophage\"", kUser).total, 0u);
  EXPECT_EQ(x.run("author:mallory", kUser).total, 0u);
  EXPECT_EQ(x.run("host:secret.example.org", kUser).total, 0u);
  EXPECT_EQ(x.ids("quokka sort:date", kUser), (V{"pub"}));
  Results listing;
  ASSERT_TRUE(x.index->run_without_snippets("quokka", listing, kUser).ok());
  ASSERT_EQ(listing.hits.size(), 1u);
  EXPECT_EQ(listing.hits[0].id, "pub");
  // No text of the private item in what the user gets.
  // (The query itself is in the document: look at the hits.)
  const std::string doc = json::parse(Index::to_json(x.run("quokka OR xylophage OR confession", kUser)))["hits"].dump();
  for (const char* secret : {"priv", "xylophage", "confession", "hidden", "Mallory"}) {
    EXPECT_EQ(doc.find(secret), std::string::npos) << secret << " in " << doc;
  }
}

TEST(SearchReaders, ScoresTellNothingOfUnreadableItems) {
  // The user's score of pub is the score it would have in a store without
  // the private item: word counts and the number of items leave it out.
  Indexed with("with"), without("without");
  load(with, true);
  load(without, false);
  for (const char* q : {"quokka", "quokka open", "quokka OR xylophage", "quo*"}) {
    Results a = with.run(q, kUser), b = without.run(q, kUser);
    ASSERT_EQ(a.hits.size(), 1u) << q;
    ASSERT_EQ(b.hits.size(), 1u) << q;
    EXPECT_DOUBLE_EQ(a.hits[0].score, b.hits[0].score) << q;
  }
}

TEST(SearchReaders, FacetsAndSuggestionsCountReadableItems) {
  Indexed x("facets");
  load(x);
  json f = x.facets("quokka", kUser);
  EXPECT_EQ(f["total"], 1);
  EXPECT_EQ(f["facets"]["host"], json::parse(R"([{"value":"open.example.com","count":1}])"));
  EXPECT_EQ(f["facets"]["author"], json::parse(R"([{"value":"Alice Open","count":1}])"));
  EXPECT_EQ(f["facets"]["tag"], json::parse(R"([{"value":"visible","count":1}])"));
  EXPECT_EQ(x.facets("quokka", kRoot)["total"], 4);
  EXPECT_EQ(x.facets("quokka", kTeam)["total"], 2);

  EXPECT_EQ(x.suggest("quo", kRoot)["terms"], json::parse(R"([{"term":"quokka","docs":4}])"));
  EXPECT_EQ(x.suggest("quo", kUser)["terms"], json::parse(R"([{"term":"quokka","docs":1}])"));
  EXPECT_EQ(x.suggest("quo", kTeam)["terms"], json::parse(R"([{"term":"quokka","docs":2}])"));
  EXPECT_EQ(x.suggest("xylo", kRoot)["terms"], json::parse(R"([{"term":"xylophage","docs":1}])"));
  EXPECT_EQ(x.suggest("xylo", kUser)["terms"], json::array());
  EXPECT_EQ(x.suggest("conf", kUser)["terms"], json::array());
}

TEST(SearchReaders, SuggestionsKeepTheReadersFiftyMostFrequent) {
  // 60 words w00..w59: word k in k+1 public items; the 10 most frequent
  // also in 100 private items, which must neither lift them nor hide them.
  Indexed x("fifty");
  for (int i = 0; i < 60; ++i) {
    std::string text;
    for (int k = i; k < 60; ++k) text += "wq" + std::string(1, char('a' + k / 26)) + std::string(1, char('a' + k % 26)) + " ";
    x.put("p" + std::to_string(i), {{"content", text}}, attrs(0644, 0, 0));
  }
  for (int i = 0; i < 100; ++i) {
    std::string text;
    for (int k = 0; k < 10; ++k) text += "wq" + std::string(1, char('a' + k / 26)) + std::string(1, char('a' + k % 26)) + " ";
    x.put("s" + std::to_string(i), {{"content", text + " wqzz"}}, attrs(0600, 0, 0));
  }
  json terms = x.suggest("wq", kUser)["terms"];
  ASSERT_EQ(terms.size(), 50u);
  for (size_t j = 0; j < 50; ++j) {
    const int k = 59 - int(j);  // the most frequent first: wq + k in k+1 items
    EXPECT_EQ(terms[j]["term"], "wq" + std::string(1, char('a' + k / 26)) + std::string(1, char('a' + k % 26))) << j;
    EXPECT_EQ(terms[j]["docs"], k + 1) << j;
  }
  json all = x.suggest("wq", kRoot)["terms"];
  EXPECT_EQ(all[0]["docs"], 10 + 100);  // wqaj: 10 public + 100 private
  EXPECT_EQ(all[0]["term"], "wqaj");
}

TEST(SearchReaders, ChmodAndChownCountAtOnce) {
  Indexed x("chmod");
  load(x);
  x.set_attrs("priv", attrs(0644, 0, 0));
  EXPECT_EQ(x.ids("quokka", kUser), (V{"priv", "pub"}));
  EXPECT_EQ(x.suggest("xylo", kUser)["terms"], json::parse(R"([{"term":"xylophage","docs":1}])"));
  x.set_attrs("priv", attrs(0600, 0, 0));
  EXPECT_EQ(x.ids("quokka", kUser), (V{"pub"}));
  x.set_attrs("priv", attrs(0600, 1000, 0));  // chown to the user
  EXPECT_EQ(x.ids("quokka", kUser), (V{"priv", "pub"}));
  x.set_attrs("own", attrs(0444, 1000, 0));
  EXPECT_EQ(x.ids("quokka", kUser), (V{"own", "priv", "pub"}));
  // A rename keeps the item's mode.
  x.store->write([&](WriteBatch& b) { ASSERT_TRUE(b.rename("team", "team2").ok()); });
  EXPECT_EQ(x.ids("quokka", kTeam), (V{"own", "priv", "pub", "team2"}));
  EXPECT_EQ(x.ids("quokka", kUser), (V{"own", "priv", "pub"}));
}

TEST(SearchReaders, ClosedItemsAreFoundThroughAPartialIndex) {
  // Finding the items some reader may not read costs in proportion to
  // their number: the index keeps the modes and owners of those items only
  // (those with a read bit missing), keyed by item.
  Indexed x("plan");
  load(x);
  x.index->catch_up();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((x.dir / "search.db").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*) FROM search_closed", -1, &s, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  int64_t closed = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(db);
  int64_t want = 0;
  auto snap = x.store->snapshot();
  snap->for_each_item([&](const itemfs::store::ItemInfo& item) { want += (item.attrs.mode & 0444) != 0444; });
  EXPECT_GT(want, 0);
  EXPECT_EQ(closed, want);
}

TEST(SearchReaders, ItemsInADirectoryTheReaderMayNotEnterAreClosed) {
  // The kernel checks search permission on items/ and the shard on the way
  // to an item: a 0644 item in a 0700 shard is not the user's to read.
  Indexed x("dirs");
  load(x);
  x.put("hdn", {{"title", "Shut away"}, {"content", "a quokka behind a closed door"}}, attrs(0644, 0, 0));
  auto dir = [](uint32_t mode, uint32_t uid, uint32_t gid) {
    Attrs a = attrs(mode, uid, gid);
    a.mode = 040000 | mode;
    return a;
  };
  EXPECT_EQ(x.ids("quokka", kUser), (V{"hdn", "pub"}));
  x.store->write([&](WriteBatch& b) { ASSERT_TRUE(b.set_dir_attrs("hd", dir(0700, 0, 0)).ok()); });
  EXPECT_EQ(x.ids("quokka", kUser), (V{"pub"}));
  EXPECT_EQ(x.run("door", kUser).total, 0u);
  EXPECT_EQ(x.suggest("doo", kUser)["terms"], json::array());
  EXPECT_EQ(x.facets("quokka", kUser)["total"], 1);
  EXPECT_EQ(x.ids("quokka", kRoot), (V{"hdn", "own", "priv", "pub", "team"}));
  x.store->write([&](WriteBatch& b) { ASSERT_TRUE(b.set_dir_attrs("hd", dir(0750, 0, 1000)).ok()); });
  EXPECT_EQ(x.ids("quokka", kUser), (V{"hdn", "pub"}));  // its group may enter
  x.store->write([&](WriteBatch& b) { ASSERT_TRUE(b.set_dir_attrs("hd", dir(0744, 0, 0)).ok()); });
  EXPECT_EQ(x.ids("quokka", kUser), (V{"pub"}));  // r without x is not enough
  // Shard 00 holds the ids of one character too: shut, they are closed.
  x.put("q", {{"title", "One letter"}, {"content", "a quokka named q"}}, attrs(0644, 0, 0));
  EXPECT_EQ(x.ids("quokka", kUser), (V{"pub", "q"}));
  x.store->write([&](WriteBatch& b) { ASSERT_TRUE(b.set_dir_attrs("00", dir(0700, 0, 0)).ok()); });
  EXPECT_EQ(x.ids("quokka", kUser), (V{"pub"}));
  x.store->write([&](WriteBatch& b) { ASSERT_TRUE(b.set_dir_attrs("00", dir(0755, 0, 0)).ok()); });
  EXPECT_EQ(x.ids("quokka", kUser), (V{"pub", "q"}));
  // items/ itself shut: nothing at all.
  x.store->write([&](WriteBatch& b) { ASSERT_TRUE(b.set_dir_attrs("", dir(0700, 0, 0)).ok()); });
  EXPECT_EQ(x.ids("quokka", kUser), V{});
  EXPECT_EQ(x.run("quokka", kUser).total, 0u);
  EXPECT_EQ(x.suggest("quo", kUser)["terms"], json::array());
  EXPECT_EQ(x.run("quokka", kRoot).total, 6u);
}
