// How many threads extract the text of a batch of changed items: the
// small batches a mount's writes bring stay on the follower's thread; a
// build's batches and a long catch-up's use up to 4 threads, no more than
// the CPUs.
#include <gtest/gtest.h>

#include "search/index_impl.h"

namespace itemfs::search {
namespace {

TEST(SearchExtractionTest, SmallBatchesStayOnTheFollowersThread) {
  EXPECT_EQ(extraction_threads(0, 8), 0u);
  EXPECT_EQ(extraction_threads(1, 8), 1u);
  EXPECT_EQ(extraction_threads(73, 2), 1u);  // the largest batch of a 25,000-file cp -r
  EXPECT_EQ(extraction_threads(kParallelExtractFrom - 1, 16), 1u);
}

TEST(SearchExtractionTest, BuildsAndCatchUpsUseUpToFourThreads) {
  EXPECT_EQ(extraction_threads(kParallelExtractFrom, 2), 2u);
  EXPECT_EQ(extraction_threads(kRebuildBatch, 2), 2u);
  EXPECT_EQ(extraction_threads(kRebuildBatch, 1), 1u);
  EXPECT_EQ(extraction_threads(kRebuildBatch, 0), 1u);
  EXPECT_EQ(extraction_threads(kFeedBatch, 16), 4u);
  EXPECT_GE(kRebuildBatch, kParallelExtractFrom);
  EXPECT_GE(kFeedBatch, kParallelExtractFrom);
}

}  // namespace
}  // namespace itemfs::search
