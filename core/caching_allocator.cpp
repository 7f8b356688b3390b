#include "core/caching_allocator.h"

#include <new>

namespace xgrad {

std::size_t CachingAllocator::rounded(std::size_t nbytes) {
  constexpr std::size_t kSmall = 512, kLarge = std::size_t{1} << 20;
  const std::size_t step = nbytes < kLarge ? kSmall : kLarge;
  const std::size_t n = nbytes == 0 ? 1 : nbytes;
  return (n + step - 1) / step * step;
}

void* CachingAllocator::allocate(std::size_t nbytes) {
  const std::size_t size = bucket(nbytes);
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = free_blocks_.find(size);
  if (it != free_blocks_.end() && !it->second.empty()) {
    void* p = it->second.back();
    it->second.pop_back();
    stats_.bytes_cached -= size;
    stats_.bytes_in_use += size;
    return p;
  }
  void* p = raw_allocate_(size);
  if (!p && stats_.bytes_cached) {  // out of memory: give the cached blocks back and try once more
    for (auto& [block_size, blocks] : free_blocks_)
      for (void* b : blocks) raw_free_(b, block_size);
    free_blocks_.clear();
    stats_.bytes_cached = 0;
    p = raw_allocate_(size);
  }
  if (!p) throw std::bad_alloc();
  ++stats_.raw_allocations;
  stats_.bytes_in_use += size;
  return p;
}

void CachingAllocator::release(void* ptr, std::size_t nbytes) noexcept {
  if (!ptr) return;
  const std::size_t size = bucket(nbytes);
  std::lock_guard<std::mutex> lock(mutex_);
  if (stats_.bytes_cached + size > max_cached_bytes_) {
    raw_free_(ptr, size);
    stats_.bytes_in_use -= size;
    return;
  }
  try {
    free_blocks_[size].push_back(ptr);
  } catch (...) {  // no memory to remember the block: free it instead
    raw_free_(ptr, size);
    stats_.bytes_in_use -= size;
    return;
  }
  stats_.bytes_in_use -= size;
  stats_.bytes_cached += size;
}

void CachingAllocator::release_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [block_size, blocks] : free_blocks_)
    for (void* b : blocks) raw_free_(b, block_size);
  free_blocks_.clear();
  stats_.bytes_cached = 0;
}

CachingAllocator::Stats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace xgrad
