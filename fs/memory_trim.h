// Giving freed memory back to the system.
//
// Memory freed stays in malloc's arenas, and resident: glibc gives back
// only the top of a heap, never the free chunks between live ones. After
// an `rm -rf` of 100k items (the kernel forgets their inodes, and their
// nodes go) the arenas held 95 MB of which 45 were in use, the daemon
// stayed at 95 MiB, and the `rsync` in after it grew from there to 105
// (creating, writing and renaming 100k files frees as much as it takes).
// So once a period, when the arenas' free bytes have grown by kTrimStep
// since their lowest point since the last trim (memory freed since, which
// may be resident), all their free pages go back to the system. Looking
// costs a walk of malloc's free lists (mallinfo2: a few milliseconds with
// 30k free chunks), so an idle daemon does not look. One thread calls it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace itemfs::fs {

class MemoryTrimmer {
 public:
  static constexpr size_t kTrimStep = size_t(8) << 20;
  // `operations`: a count that grows with the mount's work.
  void tick(uint64_t operations);

 private:
  uint64_t ops_seen_ = 0;       // the operations counted at its last look
  size_t free_low_ = SIZE_MAX;  // and the lowest free bytes seen since its last trim
};

}  // namespace itemfs::fs
