// Giving freed memory back to the system (fs/memory_trim.h).
#include "fs/memory_trim.h"

#include <malloc.h>

#include <algorithm>

namespace itemfs::fs {

void MemoryTrimmer::tick(uint64_t operations) {
  if (operations == ops_seen_) return;
  ops_seen_ = operations;
  size_t free_bytes = mallinfo2().fordblks;
  free_low_ = std::min(free_low_, free_bytes);
  if (free_bytes < free_low_ + kTrimStep) return;
  malloc_trim(0);
  free_low_ = mallinfo2().fordblks;
}

}  // namespace itemfs::fs
