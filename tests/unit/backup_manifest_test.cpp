// MANIFEST.json: the direct parse of ManifestWriter's layout against the
// general (SAX) reader, and the gzip layer whose level changes between
// archive entries.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "backup/io.h"
#include "backup/manifest.h"

namespace itemfs::backup {
namespace {

Manifest header(const std::string& id, std::vector<std::string> chain) {
  Manifest m;
  m.format_version = 1;
  m.id = id;
  m.kind = chain.size() > 1 ? "incremental" : "full";
  m.parent = chain.size() > 1 ? chain[chain.size() - 2] : "";
  m.created_ns = 1795243500123456789;
  m.chain = std::move(chain);
  m.item_count = 2;
  return m;
}

ItemMeta meta(uint8_t fill, uint64_t size, int64_t mtime, uint32_t archive) {
  ItemMeta im;
  im.sha256.fill(fill);
  im.size = size;
  im.mode = 0100644;
  im.uid = 1000;
  im.gid = 4294967295u;
  im.mtime_ns = mtime;
  im.archive = archive;
  return im;
}

// What ManifestWriter writes for `m` with these items (in the given order).
std::string write(const Manifest& m, const std::vector<MapEntry>& items) {
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* f = open_memstream(&buf, &len);
  ManifestWriter w(f);
  w.begin(m, true);
  for (const auto& e : items) w.item(e.id, e.meta, m.chain[e.meta.archive]);
  w.end(!items.empty());
  std::fclose(f);
  std::string out(buf, len);
  std::free(buf);
  return out;
}

bool same(const ItemMeta& a, const ItemMeta& b) {
  return a.sha256 == b.sha256 && a.size == b.size && a.mode == b.mode && a.uid == b.uid && a.gid == b.gid &&
         a.mtime_ns == b.mtime_ns && a.archive == b.archive;
}

// read_manifest_sorted gives what read_manifest gives, sorted by id.
void expect_agree(const std::string& text, const std::vector<MapEntry>& want) {
  Manifest general;
  std::istringstream in(text);
  read_manifest(in, false, general, "test");
  Manifest sorted;
  std::vector<MapEntry> items;
  read_manifest_sorted(text, sorted, items, "test");
  EXPECT_EQ(sorted.id, general.id);
  EXPECT_EQ(sorted.kind, general.kind);
  EXPECT_EQ(sorted.parent, general.parent);
  EXPECT_EQ(sorted.chain, general.chain);
  EXPECT_EQ(sorted.created_ns, general.created_ns);
  EXPECT_EQ(sorted.item_count, general.item_count);
  EXPECT_EQ(sorted.deleted, general.deleted);
  EXPECT_TRUE(sorted.items.empty());
  ASSERT_EQ(items.size(), general.items.size());
  ASSERT_EQ(items.size(), want.size());
  for (size_t i = 0; i < items.size(); ++i) {
    EXPECT_EQ(items[i].id, want[i].id);
    ASSERT_TRUE(general.items.count(items[i].id)) << items[i].id;
    EXPECT_TRUE(same(items[i].meta, general.items.at(items[i].id))) << items[i].id;
    EXPECT_TRUE(same(items[i].meta, want[i].meta)) << items[i].id;
  }
}

TEST(BackupManifest, LayoutParseAgreesWithTheGeneralReader) {
  Manifest m = header("20261121T064500Z-incr", {"20261121T063000Z-full", "20261121T064500Z-incr"});
  m.deleted = {"gone-1", "gone-\xc3\xa9"};
  std::vector<MapEntry> items = {
      {"a", meta(0x00, 0, -5, 0)},
      {"abc", meta(0xab, 9223372036854775807ull, 1700000000123456789, 1)},
      {"with space", meta(0x7f, 12, 0, 0)},
      {"\xc3\xa9t\xc3\xa9", meta(0xff, 3, 1, 1)},
      {"\xe6\x97\xa5\xe6\x9c\xac\xf0\x9f\x98\x80", meta(0x10, 4, 2, 0)},
  };
  std::string text = write(m, items);
  Manifest direct;
  std::vector<MapEntry> got;
  EXPECT_TRUE(parse_manifest_layout(text, direct, got));
  expect_agree(text, items);

  // Nothing deleted, nothing at all.
  Manifest empty = header("20261121T063000Z-full", {"20261121T063000Z-full"});
  std::string none = write(empty, {});
  EXPECT_TRUE(parse_manifest_layout(none, direct, got));
  EXPECT_TRUE(got.empty());
  expect_agree(none, {});
}

TEST(BackupManifest, AnythingElseGoesThroughTheGeneralReader) {
  Manifest m = header("20261121T063000Z-full", {"20261121T063000Z-full"});
  std::vector<MapEntry> items = {{"b", meta(1, 1, 1, 0)}, {"c", meta(2, 2, 2, 0)}};
  std::string text = write(m, items);
  Manifest out;
  std::vector<MapEntry> got;

  // Ids that need escapes in JSON: valid, but not the direct parse's business.
  std::vector<MapEntry> odd = {{"quote\"d", meta(3, 3, 3, 0)}, {"tab\there", meta(4, 4, 4, 0)}};
  std::string escaped = write(m, odd);
  EXPECT_FALSE(parse_manifest_layout(escaped, out, got));
  expect_agree(escaped, odd);

  // Out of order: the general reader, then sorted.
  std::string unsorted = write(m, {items[1], items[0]});
  EXPECT_FALSE(parse_manifest_layout(unsorted, out, got));
  expect_agree(unsorted, items);

  // The same manifest re-indented (as jq would write it).
  std::string compact;
  for (char c : text) {
    if (c != '\n') compact += c;
  }
  EXPECT_FALSE(parse_manifest_layout(compact, out, got));
  expect_agree(compact, items);

  // A field the layout does not have, an id twice, a number out of range,
  // trailing bytes, a second "items" in the header: never accepted directly.
  auto edit = [&](const std::string& from, const std::string& to) {
    std::string t = text;
    size_t at = t.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) t.replace(at, from.size(), to);
    return t;
  };
  for (const std::string& bad :
       {edit("\"size\": 2,", "\"size\": 2, \"x\": 1,"), edit("\"c\": {", "\"b\": {"),
        edit("\"uid\": 1000, \"gid\": 4294967295, \"mtime_ns\": 2", "\"uid\": 1000, \"gid\": 4294967296, \"mtime_ns\": 2"),
        edit("\"size\": 1,", "\"size\": 01,"), text + " ", edit("\"chain\"", "\"items\": {}, \"chain\""),
        edit("\"archive\": \"20261121T063000Z-full\"}\n", "\"archive\": \"20261121T063000Z-fulx\"}\n")}) {
    EXPECT_FALSE(parse_manifest_layout(bad, out, got)) << bad;
    std::istringstream in(bad);
    Manifest general;
    bool general_ok = true;
    try {
      read_manifest(in, false, general, "test");
    } catch (const JobError&) {
      general_ok = false;
    }
    bool sorted_ok = true;
    try {
      read_manifest_sorted(bad, out, got, "test");
    } catch (const JobError&) {
      sorted_ok = false;
    }
    EXPECT_EQ(sorted_ok, general_ok) << bad;
  }
}

class StringSink : public ByteSink {
 public:
  void write(const void* data, size_t size) override { out.append(static_cast<const char*>(data), size); }
  void finish() override { finished = true; }
  std::string out;
  bool finished = false;
};

std::string gunzip(const std::string& gz) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  std::string out;
  std::vector<unsigned char> buf(1 << 16);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  int rc;
  do {
    z.next_out = buf.data();
    z.avail_out = static_cast<uInt>(buf.size());
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(reinterpret_cast<char*>(buf.data()), buf.size() - z.avail_out);
  } while (rc == Z_OK);
  EXPECT_EQ(rc, Z_STREAM_END);
  EXPECT_EQ(z.avail_in, 0u);  // one gzip member, nothing after it
  inflateEnd(&z);
  return out;
}

// One gzip stream whatever the level changes; level 0 stores.
TEST(BackupGzip, LevelChangesBetweenWritesKeepOneStream) {
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "{\"n\": " + std::to_string(i % 97) + "}\n";
  for (int first : {0, 1, 4, 9}) {
    StringSink sink;
    {
      GzipSink gz(sink, first);
      gz.write(text.data(), text.size());
      gz.set_level(0);
      gz.write(text.data(), text.size());
      gz.set_level(6);
      gz.set_level(6);
      gz.write(text.data(), 1);
      gz.write(text.data(), text.size());
      gz.finish();
    }
    EXPECT_TRUE(sink.finished);
    EXPECT_EQ(gunzip(sink.out), text + text + text.substr(0, 1) + text) << "first level " << first;
    // Stored copies are at least as long as the text; compressed ones shorter.
    size_t stored = first == 0 ? 2 : 1;
    EXPECT_GT(sink.out.size(), stored * text.size()) << "first level " << first;
    EXPECT_LT(sink.out.size(), (stored + 1) * text.size()) << "first level " << first;
  }
}

}  // namespace
}  // namespace itemfs::backup
