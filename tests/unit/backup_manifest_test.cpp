// MANIFEST.json: the direct parse of ManifestWriter's layout (format 2) and
// of format 1's against the general (SAX) reader, and the gzip layer whose
// level changes between archive entries.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "backup/io.h"
#include "backup/manifest.h"
#include "tests/unit/temp_dir.h"

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
  std::string out;
  ManifestWriter w(out);
  w.begin(m, true);
  for (const auto& e : items) w.item(e.id, e.meta);
  w.end();
  return out;
}

void append_hex(std::string& out, const base::Sha256& sha) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (uint8_t b : sha) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
}

// The layout of format 1, as itemfs wrote it before format 2.
std::string write_v1(const Manifest& m, const std::vector<MapEntry>& items) {
  std::string s = "{\n  \"format\": \"itemfs-backup\",\n  \"format_version\": 1,\n  \"id\": \"" + m.id +
                  "\",\n  \"kind\": \"" + m.kind + "\",\n  \"parent\": " +
                  (m.parent.empty() ? "null" : "\"" + m.parent + "\"") +
                  ",\n  \"created\": \"2026-11-21T06:45:00.123456789Z\",\n  \"created_ns\": " +
                  std::to_string(m.created_ns) +
                  ",\n  \"encrypted\": false,\n  \"store_format_version\": 1,\n  \"item_count\": " +
                  std::to_string(m.item_count) + ",\n  \"item_bytes\": 0,\n  \"archived_count\": " +
                  std::to_string(m.archived_count) + ",\n  \"archived_bytes\": 0,\n  \"chain\": [";
  for (size_t i = 0; i < m.chain.size(); ++i) s += (i ? ", \"" : "\"") + m.chain[i] + "\"";
  s += "],\n  \"deleted\": [";
  for (size_t i = 0; i < m.deleted.size(); ++i) {
    s += i ? ",\n    " : "\n    ";
    append_json_string(s, m.deleted[i]);
  }
  s += m.deleted.empty() ? "]" : "\n  ]";
  s += ",\n  \"items\": {";
  for (size_t i = 0; i < items.size(); ++i) {
    const ItemMeta& im = items[i].meta;
    s += i ? ",\n    " : "\n    ";
    append_json_string(s, items[i].id);
    s += ": {\"sha256\": \"";
    append_hex(s, im.sha256);
    s += "\", \"size\": " + std::to_string(im.size) + ", \"mode\": " + std::to_string(im.mode) +
         ", \"uid\": " + std::to_string(im.uid) + ", \"gid\": " + std::to_string(im.gid) +
         ", \"mtime_ns\": " + std::to_string(im.mtime_ns) + ", \"archive\": \"" + m.chain[im.archive] + "\"}";
  }
  s += items.empty() ? "}\n}\n" : "\n  }\n}\n";
  return s;
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

using Writer = std::string (*)(const Manifest&, const std::vector<MapEntry>&);

TEST(BackupManifest, LayoutParseAgreesWithTheGeneralReader) {
  for (Writer writer : {&write, &write_v1}) {
    Manifest m = header("20261121T064500Z-incr", {"20261121T063000Z-full", "20261121T064500Z-incr"});
    m.deleted = {"gone-1", "gone-\xc3\xa9"};
    m.default_uid = 1000;  // format 2 leaves out attributes equal to these
    m.default_gid = 4294967295u;
    std::vector<MapEntry> items = {
        {"a", meta(0x00, 0, -5, 0)},
        {"abc", meta(0xab, 9223372036854775807ull, 1700000000123456789, 1)},
        {"with space", meta(0x7f, 12, 0, 0)},
        {"\xc3\xa9t\xc3\xa9", meta(0xff, 3, 1, 1)},
        {"\xe6\x97\xa5\xe6\x9c\xac\xf0\x9f\x98\x80", meta(0x10, 4, 2, 0)},
    };
    items[2].meta.mode = 0100600;
    items[3].meta.uid = 0;
    std::string text = writer(m, items);
    Manifest direct;
    std::vector<MapEntry> got;
    EXPECT_TRUE(parse_manifest_layout(text, direct, got)) << text;
    expect_agree(text, items);

    // Nothing deleted, nothing at all.
    Manifest empty = header("20261121T063000Z-full", {"20261121T063000Z-full"});
    std::string none = writer(empty, {});
    EXPECT_TRUE(parse_manifest_layout(none, direct, got)) << none;
    EXPECT_TRUE(got.empty());
    expect_agree(none, {});
  }
}

TEST(BackupManifest, FormatTwoLeavesOutDefaultAttributes) {
  Manifest m = header("20261121T063000Z-full", {"20261121T063000Z-full"});
  std::vector<MapEntry> items = {{"b", meta(1, 1, 1, 0)}, {"c", meta(2, 2, 2, 0)}};
  items[1].meta.mode = 0100755;
  m.default_uid = 1000;
  m.default_gid = 4294967295u;
  std::string text = write(m, items);
  std::string b_line = "\n\"b\":[\"0101010101010101010101010101010101010101010101010101010101010101\",1,1,0]";
  EXPECT_NE(text.find(b_line + ",\n"), std::string::npos) << text;
  EXPECT_NE(text.find(",2,2,0,33261,1000,4294967295]\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\"format_version\": 2,"), std::string::npos);
  EXPECT_NE(text.find("\"item_defaults\": {\"mode\": 33188, \"uid\": 1000, \"gid\": 4294967295}"),
            std::string::npos);

  // Defaults given after the items still apply; none at all, for an entry
  // that needs them, is an error; an entry of 5 fields, too.
  std::string late = text;
  size_t d = late.find(",\n  \"item_defaults\"");
  size_t e = late.find(",\n  \"deleted\"");
  std::string defaults = late.substr(d, e - d);
  late.erase(d, e - d);
  late.replace(late.rfind("\n}\n"), 3, defaults + "\n}");
  Manifest out;
  std::istringstream in(late);
  read_manifest(in, false, out, "test");
  ASSERT_EQ(out.items.size(), 2u);
  EXPECT_EQ(out.items.at("b").uid, 1000u);
  EXPECT_EQ(out.items.at("b").gid, 4294967295u);
  EXPECT_EQ(out.items.at("b").mode, 0100644u);
  EXPECT_EQ(out.items.at("c").mode, 0100755u);
  std::string none = text;
  none.erase(d, e - d);
  std::istringstream in2(none);
  EXPECT_THROW(read_manifest(in2, false, out, "test"), JobError);
  std::vector<MapEntry> got;
  EXPECT_FALSE(parse_manifest_layout(none, out, got));
  std::string five = text;
  five.replace(five.find(",1,1,0]"), 7, ",1,1,0,33188]");
  std::istringstream in3(five);
  EXPECT_THROW(read_manifest(in3, false, out, "test"), JobError);
  EXPECT_FALSE(parse_manifest_layout(five, out, got));
}

TEST(BackupManifest, AnythingElseGoesThroughTheGeneralReader) {
  for (Writer writer : {&write, &write_v1}) {
    bool v1 = writer == &write_v1;
    Manifest m = header("20261121T063000Z-full", {"20261121T063000Z-full"});
    m.default_uid = 1000;
    m.default_gid = 4294967295u;
    std::vector<MapEntry> items = {{"b", meta(1, 1, 1, 0)}, {"c", meta(2, 2, 2, 0)}};
    std::string text = writer(m, items);
    Manifest out;
    std::vector<MapEntry> got;

    // Ids that need escapes in JSON: valid, but not the direct parse's business.
    std::vector<MapEntry> odd = {{"quote\"d", meta(3, 3, 3, 0)}, {"tab\there", meta(4, 4, 4, 0)}};
    std::string escaped = writer(m, odd);
    EXPECT_FALSE(parse_manifest_layout(escaped, out, got));
    expect_agree(escaped, odd);

    // Out of order: the general reader, then sorted.
    std::string unsorted = writer(m, {items[1], items[0]});
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
    std::vector<std::string> bads = {text + " ", edit("\"chain\"", "\"items\": {}, \"chain\"")};
    if (v1) {
      for (const std::string& b :
           {edit("\"size\": 2,", "\"size\": 2, \"x\": 1,"), edit("\"c\": {", "\"b\": {"),
            edit("\"uid\": 1000, \"gid\": 4294967295, \"mtime_ns\": 2",
                 "\"uid\": 1000, \"gid\": 4294967296, \"mtime_ns\": 2"),
            edit("\"size\": 1,", "\"size\": 01,"),
            edit("\"archive\": \"20261121T063000Z-full\"}\n", "\"archive\": \"20261121T063000Z-fulx\"}\n")}) {
        bads.push_back(b);
      }
    } else {
      for (const std::string& b :
           {edit(",2,2,0]", ",2,2,0,1]"), edit("\"c\":[", "\"b\":["), edit(",2,2,0]", ",2,2,0,33188,1000,4294967296]"),
            edit(",1,1,0]", ",01,1,0]"), edit(",1,1,0]", ",1,1,1]"), edit(",1,1,0]", ",1,1,\"0\"]"),
            edit("\"size\", \"mtime_ns\"", "\"mtime_ns\", \"size\""), edit("\"format_version\": 2", "\"format_version\": 3"),
            edit("\"item_defaults\": {\"mode\": 33188", "\"item_defaults\": {\"mode\": -1")}) {
        bads.push_back(b);
      }
    }
    for (const std::string& bad : bads) {
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

// A segment made by another deflate stream, spliced in between what a gzip
// stream wrote before and after it: one gzip member holding all of it in
// order, whatever the levels, and whether the segment stayed in memory or
// went to its spool file.
TEST(BackupGzip, SplicedSegmentsDecodeInPlace) {
  std::string text, other;
  for (int i = 0; i < 20000; ++i) text += "{\"n\": " + std::to_string(i % 97) + "}\n";
  for (int i = 0; i < 30000; ++i) other += "[\"" + std::to_string(i * 7919 % 10007) + "\", " + std::to_string(i % 13) + "]\n";
  TempDir dir;
  for (int before : {0, 4}) {
    for (int level : {1, 6}) {
      for (size_t memory : {size_t(0), size_t(100), size_t(1) << 20}) {
        for (bool empty : {false, true}) {
          SCOPED_TRACE(std::to_string(before) + " " + std::to_string(level) + " " + std::to_string(memory) + " " +
                       std::to_string(empty));
          StringSink sink;
          SpoolSink blocks(dir.path(), memory);
          GzipSink seg(blocks, level, GzipSink::Mode::kSegment);
          if (!empty) {
            seg.write(other.data(), other.size());
            seg.write(text.data(), 5000);
          }
          seg.finish();
          GzipSink gz(sink, before);
          gz.write(text.data(), text.size());
          gz.splice(seg, blocks);
          gz.set_level(1);
          gz.write(text.data(), text.size());  // refers back only as far as the segment's end
          gz.finish();
          EXPECT_EQ(gunzip(sink.out), text + (empty ? "" : other + text.substr(0, 5000)) + text);
        }
      }
    }
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "the spool file has no name";
}

// A source over a string, handing out at most `step` bytes per read.
class StringSource : public ByteSource {
 public:
  StringSource(std::string data, size_t step) : data_(std::move(data)), step_(step) {}
  size_t read(void* buf, size_t cap) override {
    size_t n = std::min({cap, step_, data_.size() - pos_});
    std::memcpy(buf, data_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  size_t pos() const { return pos_; }

 private:
  std::string data_;
  size_t step_;
  size_t pos_ = 0;
};

std::string gzip_of(const std::string& text, int level) {
  StringSink sink;
  GzipSink gz(sink, level);
  gz.write(text.data(), text.size());
  gz.finish();
  return sink.out;
}

// Everything the source gives, read `cap` bytes at a time; the error's
// message if one is thrown.
std::string read_all(GunzipSource& src, size_t cap, std::string* error = nullptr) {
  std::string out;
  std::vector<char> buf(cap);
  try {
    for (size_t n; (n = src.read(buf.data(), buf.size())) > 0;) out.append(buf.data(), n);
  } catch (const JobError& e) {
    if (error) *error = e.what();
  }
  return out;
}

// The inflating thread hands over the same bytes whatever the read sizes,
// across several 1 MiB chunks, and through members one after another as
// gzip(1) reads them.
TEST(BackupGunzip, InflatesOnItsOwnThreadWhatGzipReads) {
  std::string text;
  for (int64_t i = 0; i < 300000; ++i) text += "{\"n\": " + std::to_string(i * 7919 % 10007) + "}\n";
  ASSERT_GT(text.size(), size_t(3) << 20);
  std::string two = gzip_of(text, 1) + gzip_of("tail\n", 6);
  for (size_t step : {size_t(1) << 16, size_t(7)}) {
    for (size_t cap : {size_t(1), size_t(4096), size_t(3) << 20}) {
      if (step == 7 && cap == 1) continue;  // slow, and no new case
      SCOPED_TRACE(std::to_string(step) + " " + std::to_string(cap));
      StringSource raw(two, step);
      GunzipSource src(raw);
      std::string error;
      EXPECT_TRUE(read_all(src, cap, &error) == text + "tail\n");
      EXPECT_EQ(error, "");
      EXPECT_EQ(raw.pos(), two.size());
    }
  }
  StringSource empty("", 10);
  GunzipSource none(empty);
  EXPECT_EQ(read_all(none, 10), "");
}

// Damage is reported after the good bytes before it: a cut, a flipped byte,
// garbage after the last member, a wrong CRC in the trailer.
TEST(BackupGunzip, DamageIsAnErrorAfterTheGoodBytes) {
  std::string text;
  for (int i = 0; i < 50000; ++i) text += "line " + std::to_string(i) + "\n";
  std::string gz = gzip_of(text, 6);
  std::string cut = gz.substr(0, gz.size() / 2);
  std::string garbage = gz + "not gzip";
  std::string crc = gz;
  crc[crc.size() - 6] ^= 0x10;
  std::string flipped = gz;
  flipped[gz.size() / 2] ^= 0x55;
  for (const std::string* bad : {&cut, &garbage, &crc, &flipped}) {
    StringSource raw(*bad, 4096);
    GunzipSource src(raw);
    std::string error;
    std::string out = read_all(src, 1000, &error);
    EXPECT_NE(error.find("archive damaged"), std::string::npos) << error;
    if (bad != &flipped) {
      EXPECT_TRUE(out == text.substr(0, out.size()));
    }
    if (bad == &garbage || bad == &crc) {
      EXPECT_TRUE(out == text) << out.size() << " of " << text.size();
    }
  }
}

// A reader that stops early (a tar reader at the end-of-archive marker)
// still gets the trailer checked by finish(); one that gives up is not
// kept waiting by the thread.
TEST(BackupGunzip, FinishChecksTheRestAndGivingUpStops) {
  std::string text(5 << 20, 'x');
  std::string crc = gzip_of(text, 1);
  crc[crc.size() - 6] ^= 0x01;
  {
    StringSource raw(crc, 1 << 16);
    GunzipSource src(raw);
    char c;
    ASSERT_EQ(src.read(&c, 1), 1u);
    EXPECT_THROW(src.finish(), JobError);
  }
  {
    StringSource raw(gzip_of(text, 1), 1 << 16);
    GunzipSource src(raw);
    char c;
    ASSERT_EQ(src.read(&c, 1), 1u);
    EXPECT_NO_THROW(src.finish());
  }
  StringSource raw(gzip_of(text + text + text, 1), 1 << 10);
  {
    GunzipSource src(raw);
    char c;
    ASSERT_EQ(src.read(&c, 1), 1u);
  }  // destroyed with most of the stream unread
  EXPECT_LT(raw.pos(), gzip_of(text + text + text, 1).size());
}

}  // namespace
}  // namespace itemfs::backup
