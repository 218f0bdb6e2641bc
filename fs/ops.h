// The libfuse low-level operations table of the mount. Each operation is
// one short function that finds the kind of node it is about
// (Filesystem::target, or the kind of open handle) and hands the request to
// that kind's part (fs/nodes.h). The session's user data is an FsHolder.
#pragma once

#include <fuse_lowlevel.h>

#include <memory>

#include "fs/nodes.h"

namespace itemfs::fs {

// The Filesystem needs the store, which is opened after daemonizing (SQLite
// locks do not survive fork), so it is created behind a holder.
struct FsHolder {
  std::unique_ptr<Filesystem> fs;
};

const fuse_lowlevel_ops& low_level_ops();

}  // namespace itemfs::fs
