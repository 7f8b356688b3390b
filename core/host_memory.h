// Host memory for tensor storage. Small blocks come from the C heap. Large
// ones (kLargeBlock and up) are mapped 2 MiB-aligned with transparent huge
// pages requested, and kept in a bounded cache when released: a Program that
// returns a fresh 64 MB output on every run would otherwise pay 16,384 page
// faults per run (on a virtual machine, ~10 us each), which is the cliff that
// made a 16M-element elementwise op 15x slower per element than a 4M one.
#pragma once
#include <cstddef>

namespace xgrad {

struct HostMemoryStats {
  std::size_t large_mappings = 0;     // large blocks mapped from the OS so far
  std::size_t large_bytes_in_use = 0;
  std::size_t large_bytes_cached = 0;  // released, kept for reuse (at most kMaxCachedHostBytes)
};

constexpr std::size_t kHostAlignment = 64;  // every block; large ones are kHugePage-aligned
constexpr std::size_t kLargeBlock = std::size_t{1} << 20;
constexpr std::size_t kMaxCachedHostBytes = std::size_t{256} << 20;
constexpr std::size_t kHugePage = std::size_t{2} << 20;

void* host_allocate(std::size_t nbytes);  // 64-byte aligned (2 MiB for large blocks); std::bad_alloc when out of memory
void host_release(void* ptr, std::size_t nbytes) noexcept;  // nbytes as given to host_allocate
HostMemoryStats host_memory_stats();
void host_release_cache();  // returns every cached large block to the OS

}  // namespace xgrad
