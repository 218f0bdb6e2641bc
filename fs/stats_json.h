// The figures of stats.json and `itemfs stats`, in one shape for both.
#pragma once

#include <nlohmann/json.hpp>

#include "store/store.h"

namespace itemfs::fs {

inline nlohmann::json stats_json(const store::Stats& s) {
  return {{"items", s.items},
          {"logical_bytes", s.logical_bytes},
          {"unique_bytes", s.unique_bytes},
          {"stored_bytes", s.stored_bytes},
          {"database_bytes", s.database_bytes},
          {"blobs", s.blobs},
          {"dedup_ratio", s.dedup_ratio()},
          {"compression_ratio", s.compression_ratio()},
          {"damaged_reads", s.damaged_reads},
          {"syncs", s.syncs}};
}

}  // namespace itemfs::fs
