// base/clock: the one wall clock of itemfs.
//
// The contract: now_ns() is the time of day (the system clock, as time(2)
// and the mtimes of files have it) in nanoseconds since 1970-01-01 UTC. It is
// what item mtimes and ctimes, backup times and log lines are made of; it may
// step back when the system clock is set, so it does not measure durations
// (use std::chrono::steady_clock for those).
#pragma once

#include <cstdint>

namespace itemfs::base {

int64_t now_ns();

}  // namespace itemfs::base
