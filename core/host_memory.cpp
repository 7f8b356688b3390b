#include "core/host_memory.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <new>

#include "core/caching_allocator.h"

namespace xgrad {

namespace {

std::size_t huge_rounded(std::size_t n) { return (n + kHugePage - 1) / kHugePage * kHugePage; }

// Maps n bytes (a multiple of kHugePage) at a kHugePage boundary: over-map by one huge page, trim both ends.
void* map_huge_aligned(std::size_t n) {
  void* raw = mmap(nullptr, n + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto start = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > start) munmap(raw, aligned - start);
  const std::uintptr_t end = start + n + kHugePage;
  if (end > aligned + n) munmap(reinterpret_cast<void*>(aligned + n), end - (aligned + n));
  void* p = reinterpret_cast<void*>(aligned);
  madvise(p, n, MADV_HUGEPAGE);  // a hint: without THP (or with it off) the mapping still works, with small pages
  return p;
}

CachingAllocator& large_blocks() {
  // Never destroyed: tensors released during exit may still return blocks.
  static CachingAllocator* cache = new CachingAllocator(
      map_huge_aligned, [](void* p, std::size_t n) { munmap(p, n); },
      CachingAllocator::Buckets::exact, kMaxCachedHostBytes);  // sizes arrive rounded to whole huge pages
  return *cache;
}

}  // namespace

void* host_allocate(std::size_t nbytes) {
  if (nbytes >= kLargeBlock) return large_blocks().allocate(huge_rounded(nbytes));  // buckets = mappings
  const std::size_t rounded = nbytes == 0 ? kHostAlignment : (nbytes + kHostAlignment - 1) / kHostAlignment * kHostAlignment;
  void* p = std::aligned_alloc(kHostAlignment, rounded);
  if (!p) throw std::bad_alloc();
  return p;
}

void host_release(void* ptr, std::size_t nbytes) noexcept {
  if (nbytes >= kLargeBlock) large_blocks().release(ptr, huge_rounded(nbytes));
  else std::free(ptr);
}

HostMemoryStats host_memory_stats() {
  const CachingAllocator::Stats s = large_blocks().stats();
  return {s.raw_allocations, s.bytes_in_use, s.bytes_cached};
}

void host_release_cache() { large_blocks().release_cache(); }

}  // namespace xgrad
