// The store's compression dictionaries: trained from the store's items, one
// per group of alike documents, trained again from more items, and chosen
// by the bytes alone.
#include "tests/unit/store_fixture.h"

namespace itemfs::store {
namespace {

TEST(StoreDictionaryTest, TrainedFromTheStoreAndUsedForNewBlobs) {
  auto doc = [](int i) {
    return "{\"url\":\"https://docs.example.org/manual/chapter-" + std::to_string(i % 37) + "/page-" +
           std::to_string(i) + ".html\",\"title\":\"Page " + std::to_string(i) +
           "\",\"metadata\":{\"source\":\"example-docs\",\"lang\":\"en\",\"http_status\":200,"
           "\"content_type\":\"text/html; charset=utf-8\"},\"content\":\"Item " +
           std::to_string(i * 7919) + " of the manual.\"}";
  };
  // The same items in a store that trains no dictionary, for comparison.
  TempDir plain_dir;
  {
    Options options;
    options.train_dictionary = false;
    auto plain = Store::open(plain_dir.path(), options);
    plain->write([&](WriteBatch& batch) {
      for (int i = 0; i < 2500; ++i) {
        std::istringstream in(doc(i));
        ASSERT_TRUE(batch.put(std::string("p").append(std::to_string(i)), in, {}).ok());
      }
    });
  }
  TempDir dir;
  auto store = Store::open(dir.path());
  store->write([&](WriteBatch& batch) {
    for (int i = 0; i < 2500; ++i) {
      std::istringstream in(doc(i));
      ASSERT_TRUE(batch.put(std::string("p").append(std::to_string(i)), in, {}).ok());
    }
  });
  store->wait_idle();  // the training the write made due
  auto db = dir.path() / "store.db";
  ASSERT_GE(scalar(db, "SELECT count(*) FROM dicts"), 1);
  EXPECT_EQ(scalar(plain_dir.path() / "store.db", "SELECT count(*) FROM dicts"), 0);
  // The items stored before the dictionaries were trained are compressed
  // again with them: none is left without one.
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM blobs WHERE dict_id IS NULL"), 0);
  int64_t with = scalar(db, "SELECT sum(stored_size) FROM blobs");
  int64_t without = scalar(plain_dir.path() / "store.db", "SELECT sum(stored_size) FROM blobs");
  EXPECT_LT(with * 10, without * 8) << "the dictionary should save at least a fifth";
  ASSERT_TRUE(put(*store, "q100", doc(100) + " ").ok());
  EXPECT_EQ(scalar(db, "SELECT dict_id IS NOT NULL FROM blobs b JOIN chunks c ON c.blob=b.id JOIN items i ON "
                       "i.ino=c.ino WHERE i.id='q100'"),
            1);
  EXPECT_EQ(read_all(*store, "q100"), doc(100) + " ");
  for (int i = 0; i < 2500; i += 7) ASSERT_EQ(read_all(*store, "p" + std::to_string(i)), doc(i));
  EXPECT_TRUE(store->fsck(false).clean());
  // A reopened store reads both and keeps using the dictionaries.
  int64_t dict_of_q100 = scalar(db, "SELECT dict_id FROM blobs b JOIN chunks c ON c.blob=b.id JOIN items i ON "
                                    "i.ino=c.ino WHERE i.id='q100'");
  store.reset();
  store = Store::open(dir.path());
  EXPECT_EQ(read_all(*store, "q100"), doc(100) + " ");
  ASSERT_TRUE(put(*store, "q101", doc(100) + "  ").ok());
  EXPECT_EQ(scalar(db, "SELECT dict_id FROM blobs b JOIN chunks c ON c.blob=b.id JOIN items i ON "
                       "i.ino=c.ino WHERE i.id='q101'"),
            dict_of_q100);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM blobs WHERE dict_id IS NULL"), 0);
}

TEST(StoreDictionaryTest, GroupsOfAlikeItemsGetTheirOwnDictionaries) {
  TempDir dir;
  auto store = Store::open(dir.path());
  std::mt19937 rng(3);
  std::vector<std::string> docs;
  for (int i = 0; i < 2600; ++i) docs.push_back(doc_in(i % 2, i, rng));
  for (int batch = 0; batch < 13; ++batch) {
    store->write([&](WriteBatch& b) {
      for (int i = batch * 200; i < batch * 200 + 200; ++i) {
        std::istringstream in(docs[size_t(i)]);
        ASSERT_TRUE(b.put("d" + std::to_string(i), in, {}).ok());
      }
    });
  }
  store->wait_idle();
  auto db = dir.path() / "store.db";
  // A general dictionary and one for each language.
  ASSERT_GE(scalar(db, "SELECT count(*) FROM dicts"), 3);
  EXPECT_EQ(scalar(db, "SELECT value FROM meta WHERE key='current_dict'"), scalar(db, "SELECT max(id) FROM dicts"));
  auto dict_of = [&](const std::string& id) {
    return scalar(db, "SELECT b.dict_id FROM blobs b JOIN chunks c ON c.blob=b.id JOIN items i ON i.ino=c.ino "
                      "WHERE i.id='" + id + "'");
  };
  // Most items of one language share a dictionary of its own (a few may
  // find the general one, which holds both languages, as good).
  std::set<int64_t> used[2];
  std::map<int64_t, int> uses[2];
  for (int i = 0; i < 2600; i += 13) {
    int64_t d = dict_of("d" + std::to_string(i));
    used[i % 2].insert(d);
    ++uses[i % 2][d];
  }
  const int64_t general = scalar(db, "SELECT value FROM meta WHERE key='current_dict'");
  int64_t most[2];
  for (int l = 0; l < 2; ++l) {
    auto top = std::max_element(uses[l].begin(), uses[l].end(),
                                [](const auto& a, const auto& b) { return a.second < b.second; });
    most[l] = top->first;
    EXPECT_GT(top->second * 4, 100 * 3) << "language " << l << ": " << top->second << " of 100 items";
    EXPECT_NE(most[l], general);
    EXPECT_EQ(uses[l].count(0), 0u);
  }
  EXPECT_NE(most[0], most[1]);
  EXPECT_EQ(uses[0].count(most[1]), 0u);
  EXPECT_EQ(uses[1].count(most[0]), 0u);
  for (int i = 0; i < 2600; i += 11) ASSERT_EQ(read_all(*store, "d" + std::to_string(i)), docs[size_t(i)]);
  EXPECT_TRUE(store->fsck(false).clean());
  // The same choice after a restart, for new items as for old ones.
  int64_t first = dict_of("d2");
  store.reset();
  store = Store::open(dir.path());
  std::mt19937 later(4);
  const std::string new0 = doc_in(0, 9000, later), new1 = doc_in(1, 9001, later);
  ASSERT_TRUE(put(*store, "new0", new0).ok());
  ASSERT_TRUE(put(*store, "new1", new1).ok());
  EXPECT_TRUE(used[0].count(dict_of("new0")));
  EXPECT_TRUE(used[1].count(dict_of("new1")));
  EXPECT_EQ(dict_of("d2"), first);
  EXPECT_EQ(read_all(*store, "new0"), new0);
  EXPECT_EQ(read_all(*store, "new1"), new1);
}

// Trained again from ten times the items: every blob (of one-chunk items)
// moves to the new dictionaries and the older ones are dropped; no third
// training; a store trained by an older build (no meta.dict_trained_blobs)
// is not trained again.
TEST(StoreDictionaryTest, TrainedAgainFromMoreItems) {
  for (bool older_build : {false, true}) {
    TempDir dir;
    Options options;
    options.train_dictionary_after = 300;
    options.train_dictionary_again_after = 1500;
    auto store = Store::open(dir.path(), options);
    std::mt19937 rng(7);
    std::vector<std::string> docs;
    for (int i = 0; i < 2600; ++i) docs.push_back(doc_in(i % 2, i, rng));
    auto db = dir.path() / "store.db";
    auto put_batch = [&](int from, int to) {
      store->write([&](WriteBatch& b) {
        for (int i = from; i < to; ++i) {
          std::istringstream in(docs[size_t(i)]);
          ASSERT_TRUE(b.put("d" + std::to_string(i), in, {}).ok());
        }
      });
    };
    for (int i = 0; i < 600; i += 200) put_batch(i, i + 200);
    store->wait_idle();
    const int64_t first = scalar(db, "SELECT count(*) FROM dicts");
    ASSERT_GE(first, 2);
    const int64_t first_newest = scalar(db, "SELECT max(id) FROM dicts");
    if (older_build) {
      store.reset();
      exec(db, "DELETE FROM meta WHERE key='dict_trained_blobs'");
      store = Store::open(dir.path(), options);
    } else {
      EXPECT_GE(scalar(db, "SELECT value FROM meta WHERE key='dict_trained_blobs'"), 300);
    }
    for (int i = 600; i < 2600; i += 200) put_batch(i, i + 200);
    store->wait_idle();
    if (older_build) {
      EXPECT_EQ(scalar(db, "SELECT max(id) FROM dicts"), first_newest);
    } else {
      EXPECT_GE(scalar(db, "SELECT value FROM meta WHERE key='dict_trained_blobs'"), 1500);
      EXPECT_GT(scalar(db, "SELECT min(id) FROM dicts"), first_newest) << "the first dictionaries are gone";
      EXPECT_EQ(scalar(db, "SELECT count(*) FROM blobs WHERE dict_id IS NULL OR dict_id <= " +
                               std::to_string(first_newest)), 0);
    }
    for (int i = 0; i < 2600; i += 7) ASSERT_EQ(read_all(*store, "d" + std::to_string(i)), docs[size_t(i)]);
    EXPECT_TRUE(store->fsck(false).clean());
    // No third time, after a restart either.
    const int64_t newest = scalar(db, "SELECT max(id) FROM dicts");
    store.reset();
    store = Store::open(dir.path(), options);
    std::mt19937 later(8);
    store->write([&](WriteBatch& b) {
      for (int i = 0; i < 1600; ++i) {
        std::istringstream in(doc_in(i % 2, 10000 + i, later));
        ASSERT_TRUE(b.put("e" + std::to_string(i), in, {}).ok());
      }
    });
    store->wait_idle();
    EXPECT_EQ(scalar(db, "SELECT max(id) FROM dicts"), newest);
  }
}

// What many documents share goes into the dictionary, what one document
// holds does not: a random body per document between a shared header and
// footer leaves the header and footer, within the size asked for.
TEST(StoreDictionaryTest, TrainingKeepsWhatTheSamplesShare) {
  std::mt19937 rng(11);
  const std::string header = "{\"url\": \"https://help.example.org/7.4/en-US/text/shared/guide/\", \"metadata\": ";
  const std::string footer = "\"content_type\": \"text/html; charset=utf-8\", \"http_status\": 200}";
  std::vector<std::string> samples;
  for (int i = 0; i < 300; ++i) {
    std::string body;
    for (int k = 0; k < 400; ++k) body += char('a' + rng() % 26);
    samples.push_back(header + body + footer);
  }
  const std::string dictionary = train_dictionary(samples, 4096);
  EXPECT_LE(dictionary.size(), 4096u);
  EXPECT_NE(dictionary.find(header.substr(0, 48)), std::string::npos);
  EXPECT_NE(dictionary.find(footer.substr(footer.size() - 48)), std::string::npos);
  // A random body is nobody else's: little of it is kept.
  size_t bodies = 0;
  for (const std::string& sample : samples)
    if (dictionary.find(sample.substr(header.size() + 100, 32)) != std::string::npos) ++bodies;
  EXPECT_LT(bodies, 2u) << bodies;
  EXPECT_EQ(dictionary, train_dictionary(samples, 4096));
  // Samples that all fit are kept whole.
  std::vector<std::string> few(samples.begin(), samples.begin() + 3);
  EXPECT_EQ(train_dictionary(few, 4096), few[2] + few[1] + few[0]);
}

TEST(StoreDictionaryTest, DictionaryChoiceDependsOnlyOnTheBytes) {
  std::mt19937 rng(5);
  std::vector<std::string> samples;
  for (int i = 0; i < 400; ++i) samples.push_back(doc_in(i % 2, i, rng));
  const std::string general = train_dictionary(samples);
  auto groups = train_group_dictionaries(samples, general, 8);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups, train_group_dictionaries(samples, general, 8));
  std::vector<std::shared_ptr<const Dictionary>> dictionaries;
  for (size_t i = 0; i < groups.size(); ++i) {
    auto d = std::make_shared<Dictionary>();
    d->id = int64_t(i + 1);
    d->data = groups[i];
    d->fingerprint.add(d->data);
    dictionaries.push_back(d);
  }
  DictionarySet set(dictionaries);
  EXPECT_EQ(set.generation(), 2);
  std::mt19937 other(6);
  const Dictionary* zero = set.choose(doc_in(0, 1, other));
  const Dictionary* one = set.choose(doc_in(1, 2, other));
  ASSERT_TRUE(zero && one);
  EXPECT_NE(zero->id, one->id);
  EXPECT_EQ(set.choose(doc_in(0, 3, other)), zero);
  // The one whose fingerprint has the most of the sampled sequences.
  for (int i = 0; i < 60; ++i) {
    std::string doc = doc_in(i % 2, 1000 + i, other) + text_in(1 - i % 2, other, i);
    auto hashes = sample_hashes(doc);
    size_t best = 0;
    for (size_t d = 1; d < dictionaries.size(); ++d)
      if (dictionaries[d]->fingerprint.count(hashes) > dictionaries[best]->fingerprint.count(hashes)) best = d;
    EXPECT_EQ(set.choose(doc), dictionaries[best].get()) << doc;
  }
  EXPECT_EQ(DictionarySet().choose("{}"), nullptr);
  EXPECT_EQ(set.choose("{}"), dictionaries[0].get());  // nothing to go by: the first
}

}  // namespace
}  // namespace itemfs::store
