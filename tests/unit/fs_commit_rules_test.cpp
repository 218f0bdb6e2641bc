// The commit rules of items/ (fs/commit_rules.h): when a close, fsync or
// release hands a body to the store, when it waits, when it repeats an
// earlier refusal; when a writer is superseded, when a new item is
// discarded; and what each rename and unlink does by the kinds of its names.
#include <gtest/gtest.h>

#include <cerrno>
#include <string>

#include "fs/commit_rules.h"

namespace itemfs::fs {
namespace {

TEST(FsCommitRulesTest, CleanBodyCommitsNothing) {
  BodyView body;
  EXPECT_EQ(commit_step(body, false), CommitStep::kNothing);
  EXPECT_EQ(commit_step(body, true), CommitStep::kNothing);
}

TEST(FsCommitRulesTest, WrittenBodyIsPut) {
  BodyView body{.dirty = true, .size = 10, .version = 3};
  EXPECT_EQ(commit_step(body, false), CommitStep::kPut);
  EXPECT_EQ(commit_step(body, true), CommitStep::kPut);
}

TEST(FsCommitRulesTest, EmptiedByOpenWaitsUntilTheLastChance) {
  // A shell's `> file` closes one copy of the descriptor before writing.
  BodyView body{.dirty = true, .size = 0, .emptied_by_open = true, .version = 1};
  EXPECT_EQ(commit_step(body, false), CommitStep::kDefer);
  // At release or fsync the empty body is put, and the store refuses it.
  EXPECT_EQ(commit_step(body, true), CommitStep::kPut);
  // Emptied by a truncate, not by open: put at once.
  body.emptied_by_open = false;
  EXPECT_EQ(commit_step(body, false), CommitStep::kPut);
}

TEST(FsCommitRulesTest, RefusedVersionIsNotOfferedTwice) {
  BodyView body{.dirty = true, .size = 4, .version = 7, .refused_version = 7, .refused_error = EINVAL};
  EXPECT_EQ(commit_step(body, true), CommitStep::kRefused);
  ++body.version;  // written since: offered again
  EXPECT_EQ(commit_step(body, true), CommitStep::kPut);
}

TEST(FsCommitRulesTest, SupersededWriter) {
  EXPECT_FALSE(superseded(true, 2, 2));
  EXPECT_TRUE(superseded(true, 1, 2));
  EXPECT_FALSE(superseded(false, 1, 2));  // a reader is never superseded
}

TEST(FsCommitRulesTest, NewItemDiscardedAtLastRelease) {
  EXPECT_TRUE(discard_at_release(true, true, false));
  EXPECT_FALSE(discard_at_release(false, true, false));  // another writer still has it
  EXPECT_FALSE(discard_at_release(true, false, false));  // committed: nothing to discard
  EXPECT_FALSE(discard_at_release(true, true, true));    // already removed
  EXPECT_FALSE(drop_body_when_idle(true, false));        // a pending item is its body
  EXPECT_TRUE(drop_body_when_idle(true, true));
  EXPECT_TRUE(drop_body_when_idle(false, false));
}

Resolved named(Resolved::What what, int error = 0) {
  Resolved r;
  r.what = what;
  r.error = error;
  return r;
}

TEST(FsCommitRulesTest, RenameByKinds) {
  auto item = named(Resolved::kItem), scratch = named(Resolved::kScratch);
  EXPECT_EQ(plan_rename(item, "a.json", item, "b.json").kind, RenameKind::kItemToItem);
  EXPECT_EQ(plan_rename(item, "a.json", scratch, "a.json~").kind, RenameKind::kItemToScratch);
  EXPECT_EQ(plan_rename(scratch, ".a.json.X1", item, "a.json").kind, RenameKind::kScratchToItem);
  EXPECT_EQ(plan_rename(scratch, "x", scratch, "y").kind, RenameKind::kScratchToScratch);
}

TEST(FsCommitRulesTest, RenameRefusals) {
  auto item = named(Resolved::kItem), shard = named(Resolved::kShard);
  RenamePlan p = plan_rename(shard, "ab", item, "a.json");
  EXPECT_EQ(p.kind, RenameKind::kRefused);
  EXPECT_EQ(p.error, EINVAL);
  EXPECT_FALSE(p.log_refusal);
  // A bad target name is the caller's mistake: refused with its errno, and logged.
  p = plan_rename(item, "a.json", named(Resolved::kBadItemName, ENAMETOOLONG), "x.json");
  EXPECT_EQ(p.kind, RenameKind::kRefused);
  EXPECT_EQ(p.error, ENAMETOOLONG);
  EXPECT_TRUE(p.log_refusal);
  std::string long_name(256, 'x');
  p = plan_rename(item, "a.json", named(Resolved::kScratch), long_name);
  EXPECT_EQ(p.error, ENAMETOOLONG);
  EXPECT_TRUE(p.log_refusal);
  p = plan_rename(named(Resolved::kScratch), long_name, item, "a.json");
  EXPECT_EQ(p.error, ENAMETOOLONG);
  EXPECT_FALSE(p.log_refusal);
  // A bad source name names nothing.
  p = plan_rename(named(Resolved::kBadItemName, EINVAL), "...json", item, "a.json");
  EXPECT_EQ(p.error, ENOENT);
}

TEST(FsCommitRulesTest, UnlinkByKinds) {
  EXPECT_EQ(plan_unlink(named(Resolved::kItem)), UnlinkKind::kItem);
  EXPECT_EQ(plan_unlink(named(Resolved::kScratch)), UnlinkKind::kScratch);
  EXPECT_EQ(plan_unlink(named(Resolved::kShard)), UnlinkKind::kScratch);  // a file named like a shard
  EXPECT_EQ(plan_unlink(named(Resolved::kBadItemName, EINVAL)), UnlinkKind::kNoSuchName);
}

}  // namespace
}  // namespace itemfs::fs
