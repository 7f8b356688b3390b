#include <gtest/gtest.h>

#include <random>

#include "autodiff/memory_plan.h"

using namespace xgrad;

TEST(MemoryPlan, LiveBuffersNeverOverlapAndDeadOnesAreReused) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<BufferRequest> req;
    for (int s = 0; s < 40; ++s) {
      const int life = static_cast<int>(rng() % 6);
      req.push_back({static_cast<std::int64_t>(1 + rng() % 5000), s, s + life});
    }
    const ArenaLayout layout = plan_arena(req);
    std::int64_t sum = 0;
    for (std::size_t i = 0; i < req.size(); ++i) {
      sum += req[i].bytes;
      EXPECT_EQ(layout.offsets[i] % 64, 0);
      EXPECT_LE(layout.offsets[i] + req[i].bytes, layout.total_bytes);
      for (std::size_t j = 0; j < i; ++j) {
        const bool overlap_time = req[i].first_step <= req[j].last_step && req[j].first_step <= req[i].last_step;
        const bool overlap_bytes = layout.offsets[i] < layout.offsets[j] + req[j].bytes &&
                                   layout.offsets[j] < layout.offsets[i] + req[i].bytes;
        EXPECT_FALSE(overlap_time && overlap_bytes) << "buffers " << i << " and " << j;
      }
    }
    EXPECT_LT(layout.total_bytes, sum);  // short lifetimes: memory is reused
  }
}

TEST(MemoryPlan, OutputOfAStepDoesNotAliasItsDyingInput) {
  // Buffer 0 is last read at step 1, where buffer 1 is written.
  const ArenaLayout layout = plan_arena({{100, 0, 1}, {100, 1, 2}});
  EXPECT_NE(layout.offsets[0], layout.offsets[1]);
}

#include "autodiff/tiling.h"

TEST(Tiling, GroupsChainsAndMovesIndependentStepsAround) {
  // values: 0, 1 inputs. steps: 0: v2 = f(v0) tile; 1: v3 = g(v1) small, independent;
  // 2: v4 = h(v2) tile; 3: v5 = k(v4) small, depends; 4: v6 = f(v4) tile.
  const std::vector<TileCandidate> steps{
      {true, 100000, {0}, 2}, {false, 1, {1}, 3}, {true, 100000, {2}, 4}, {false, 1, {4}, 5}, {true, 100000, {4, 3}, 6}};
  const ExecutionOrder plan = plan_tiles(steps);
  ASSERT_EQ(plan.groups.size(), 1u);
  EXPECT_EQ(plan.groups[0], (std::vector<int>{0, 2, 4}));
  ASSERT_EQ(plan.order.size(), 3u);
  EXPECT_EQ(plan.order[0].step, 1);   // hoisted: it does not read the group
  EXPECT_EQ(plan.order[1].group, 0);
  EXPECT_EQ(plan.order[2].step, 3);   // deferred: it reads a member
}

TEST(Tiling, AStepReadingADeferredValueDoesNotJoin) {
  const std::vector<TileCandidate> steps{
      {true, 100000, {0}, 2}, {false, 100000, {2}, 3}, {true, 100000, {3}, 4}, {true, 100000, {2}, 5}};
  const ExecutionOrder plan = plan_tiles(steps);
  ASSERT_EQ(plan.groups.size(), 1u);
  EXPECT_EQ(plan.groups[0], (std::vector<int>{0, 3}));
  // order: group {0, 3}, then 1, then 2 (which reads step 1's value)
  ASSERT_EQ(plan.order.size(), 3u);
  EXPECT_EQ(plan.order[1].step, 1);
  EXPECT_EQ(plan.order[2].step, 2);
}
