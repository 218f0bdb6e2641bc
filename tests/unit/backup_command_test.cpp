#include <gtest/gtest.h>

#include <cerrno>

#include "backup/backup.h"
#include "backup/manifest.h"

namespace itemfs::backup {
namespace {

using Kind = Command::Kind;

Command parse_ok(std::string_view line) {
  Command c;
  store::Status st = parse_command(line, c);
  EXPECT_TRUE(st.ok()) << "'" << line << "': " << st.message;
  return c;
}

TEST(BackupCommand, AcceptsEveryCommand) {
  EXPECT_EQ(parse_ok("full").kind, Kind::kFull);
  EXPECT_EQ(parse_ok("full\n").kind, Kind::kFull);
  EXPECT_EQ(parse_ok("  incremental \r\n").kind, Kind::kIncremental);
  Command v = parse_ok("verify 20261121T063000Z-full\n");
  EXPECT_EQ(v.kind, Kind::kVerify);
  EXPECT_EQ(v.id, "20261121T063000Z-full");
  EXPECT_EQ(parse_ok("verify all").kind, Kind::kVerifyAll);
  Command r = parse_ok("restore 20261121T063000Z-incr-2");
  EXPECT_EQ(r.kind, Kind::kRestore);
  EXPECT_EQ(r.id, "20261121T063000Z-incr-2");
  EXPECT_FALSE(r.clear);
  Command rc = parse_ok("restore\t20261121T063000Z-full clear\n");
  EXPECT_TRUE(rc.clear);
  EXPECT_TRUE(rc.include.empty());
  Command ri = parse_ok("restore 20261121T063000Z-full items/ab/abc.json items/c?/* items");
  EXPECT_FALSE(ri.clear);
  EXPECT_EQ(ri.include, (std::vector<std::string>{"items/ab/abc.json", "items/c?/*", "items"}));
  Command p = parse_ok("prune keep_last=7 keep_days=30");
  EXPECT_EQ(p.kind, Kind::kPrune);
  EXPECT_EQ(p.keep_last, 7);
  EXPECT_EQ(p.keep_days, 30);
  EXPECT_EQ(parse_ok("prune keep_days=3").keep_last, 0);
  EXPECT_EQ(parse_ok("prune keep_last=2").keep_days, 0);
  Command d = parse_ok("delete 20261121T063000Z-full");
  EXPECT_EQ(d.kind, Kind::kDelete);
}

TEST(BackupCommand, RejectsEverythingElse) {
  for (std::string_view line : std::initializer_list<std::string_view>{
        "", "\n", "   ", "ful", "FULL", "full now", "full\nfull\n", "full\n\n", "verify", "verify a b",
        "verify ../etc", "verify .hidden", "verify a/b", "restore", "restore x clr", "restore x clear y",
        "restore all", "restore x items clear", "restore x ab/abc.json", "restore x items/a clear", "prune", "prune keep_last", "prune keep_last=", "prune keep_last=-1", "prune keep_last=x",
        "prune keep_last=1 keep_last=2", "prune keep_forever=1", "prune keep_last=0", "prune keep_last=0 keep_days=0",
        "prune keep_last=99999999", "delete", "delete a b", "delete all", std::string_view("full\0", 5),
        "incremental\tx"}) {
    Command c;
    store::Status st = parse_command(line, c);
    EXPECT_EQ(st.code, EINVAL) << "accepted: '" << line << "'";
    EXPECT_FALSE(st.message.empty());
  }
  Command c;
  EXPECT_EQ(parse_command(std::string(5000, 'a'), c).code, EINVAL);
}

TEST(BackupCommand, BackupIds) {
  EXPECT_TRUE(valid_backup_id("20261121T063000Z-full"));
  EXPECT_FALSE(valid_backup_id(""));
  EXPECT_FALSE(valid_backup_id("."));
  EXPECT_FALSE(valid_backup_id(".."));
  EXPECT_FALSE(valid_backup_id(".tmp-x"));
  EXPECT_FALSE(valid_backup_id("a/b"));
  EXPECT_FALSE(valid_backup_id("all"));
  EXPECT_FALSE(valid_backup_id(std::string(101, 'a')));
}

TEST(BackupCommand, ItemPathsOnlyInsideItems) {
  EXPECT_EQ(id_from_item_path("items/ab/abc.json"), "abc");
  EXPECT_EQ(id_from_item_path("items/00/a.json"), "a");
  EXPECT_EQ(id_from_item_path("items/\xc3\xa9\xc3\xa9/\xc3\xa9\xc3\xa9x.json"), "\xc3\xa9\xc3\xa9x");
  for (std::string_view bad : {"items/ab/../../etc/passwd.json", "items/../ab.json", "/items/ab/abc.json",
                               "items/xy/abc.json", "items/ab/abc", "items/ab/abc.json/x.json", "items/ab/.json",
                               "items//abc.json", "../items/ab/abc.json", "items/ab/ab/abc.json", "MANIFEST.json",
                               "items/ab/abc.JSON", "items/a/a.json"}) {
    EXPECT_EQ(id_from_item_path(bad), "") << bad;
  }
  for (std::string id : {"abc", "a", "\xc3\xa9\xc3\xa9x", ".x", "a.json"}) {
    EXPECT_EQ(id_from_item_path(store::item_path(id)), id) << id;
  }
}

TEST(BackupCommand, Sha256SumsEscapesLikeCoreutils) {
  store::Sha256 sha{};
  EXPECT_EQ(sha256sums_line(sha, "items/ab/abc.json"), std::string(64, '0') + "  items/ab/abc.json\n");
  EXPECT_EQ(sha256sums_line(sha, "items/a\\/a\\b\nc.json"),
            "\\" + std::string(64, '0') + "  items/a\\\\/a\\\\b\\nc.json\n");
}

}  // namespace
}  // namespace itemfs::backup
