// The commit rules of items/ (fs/commit_rules.h).
#include "fs/commit_rules.h"

#include <cerrno>

#include "fs/inodes.h"

namespace itemfs::fs {

CommitStep commit_step(const BodyView& body, bool final) {
  if (!body.dirty) return CommitStep::kNothing;
  if (body.size == 0 && body.emptied_by_open && !final) return CommitStep::kDefer;
  if (body.refused_version == body.version) return CommitStep::kRefused;
  return CommitStep::kPut;
}

RenamePlan plan_rename(const Resolved& from, const std::string& from_name, const Resolved& to,
                       const std::string& to_name) {
  RenamePlan plan;
  if (from.what == Resolved::kShard || to.what == Resolved::kShard) {
    plan.error = EINVAL;
  } else if (to.what == Resolved::kBadItemName) {
    plan.error = to.error;
    plan.log_refusal = true;
  } else if (to_name.size() > kNameMax) {
    plan.error = ENAMETOOLONG;
    plan.log_refusal = true;
  } else if (from_name.size() > kNameMax) {
    plan.error = ENAMETOOLONG;
  } else if (from.what == Resolved::kBadItemName) {
    plan.error = ENOENT;
  } else if (from.what == Resolved::kItem) {
    plan.kind = to.what == Resolved::kItem ? RenameKind::kItemToItem : RenameKind::kItemToScratch;
  } else {
    plan.kind = to.what == Resolved::kItem ? RenameKind::kScratchToItem : RenameKind::kScratchToScratch;
  }
  return plan;
}

UnlinkKind plan_unlink(const Resolved& name) {
  if (name.what == Resolved::kItem) return UnlinkKind::kItem;
  if (name.what == Resolved::kBadItemName) return UnlinkKind::kNoSuchName;
  return UnlinkKind::kScratch;
}

}  // namespace itemfs::fs
