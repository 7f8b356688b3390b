// Host memory: large blocks are huge-page aligned, reused after release (no
// page faults for a Program's fresh outputs in steady state), and the cache of
// released blocks stays bounded.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "core/host_memory.h"
#include "core/tensor.h"

using namespace xgrad;

TEST(HostMemory, LargeBlocksAreHugePageAlignedAndReusedAfterRelease) {
  host_release_cache();
  const HostMemoryStats before = host_memory_stats();
  const Shape shape{3, 1 << 20};  // 12 MB of float32
  const void* first = nullptr;
  {
    Tensor t = Tensor::zeros(DType::float32, shape);
    first = t.raw_data();
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(first) % kHugePage, 0u);
    t.data<float>()[t.numel() - 1] = 1.0f;  // the whole block is usable
  }
  EXPECT_EQ(host_memory_stats().large_bytes_cached, before.large_bytes_cached + (12u << 20));
  for (int run = 0; run < 5; ++run) {
    Tensor t = Tensor::empty(DType::float32, shape);
    EXPECT_EQ(t.raw_data(), first);  // the released block, not a new mapping
  }
  EXPECT_EQ(host_memory_stats().large_mappings, before.large_mappings + 1);
  // A block still held is never handed out again.
  Tensor held = Tensor::empty(DType::float32, shape);
  Tensor other = Tensor::empty(DType::float32, shape);
  EXPECT_NE(held.raw_data(), other.raw_data());
}

TEST(HostMemory, SmallBlocksComeFromTheHeapAligned) {
  const HostMemoryStats before = host_memory_stats();
  Tensor t = Tensor::empty(DType::float64, {1000});
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.raw_data()) % 64, 0u);
  EXPECT_EQ(host_memory_stats().large_mappings, before.large_mappings);
}

TEST(HostMemory, TheCacheOfReleasedBlocksIsBounded) {
  host_release_cache();
  {
    std::vector<Tensor> big;  // never touched: mapped, not resident
    for (int k = 0; k < 4; ++k) big.push_back(Tensor::empty(DType::float32, {static_cast<std::int64_t>((kMaxCachedHostBytes / 4 + (1 << 20)) / 4)}));  // bytes / 4
  }
  const HostMemoryStats s = host_memory_stats();
  EXPECT_LE(s.large_bytes_cached, kMaxCachedHostBytes);
  EXPECT_GT(s.large_bytes_cached, 0u);
  host_release_cache();
  EXPECT_EQ(host_memory_stats().large_bytes_cached, 0u);
}
