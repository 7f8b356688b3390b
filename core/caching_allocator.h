// A size-bucketed cache in front of a slow allocator (cudaMalloc): freed
// blocks are kept and handed out again for requests that round to the same
// size, so a Program that runs the same shapes again allocates nothing new.
// Generic over the raw allocate/free functions, so the CPU tests check it.
#pragma once
#include <cstddef>
#include <functional>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace xgrad {

class CachingAllocator {
 public:
  using RawAllocate = std::function<void*(std::size_t)>;  // nullptr when out of memory
  using RawFree = std::function<void(void*, std::size_t)>;  // the block and its bucket size

  struct Stats {
    std::size_t raw_allocations = 0;  // calls that reached the raw allocator
    std::size_t bytes_in_use = 0;     // handed out and not yet released (bucket sizes)
    std::size_t bytes_cached = 0;     // released, kept for reuse
  };

  // rounded: requests share buckets (rounded() below); exact: one bucket per byte count (for the CUDA emulator,
  // which guards each raw allocation's end).
  enum class Buckets { rounded, exact };
  // max_cached_bytes bounds what the cache keeps: a released block that would exceed it goes back to the raw
  // allocator at once (the host cache must not hold on to a huge temporary for the rest of the process).
  CachingAllocator(RawAllocate allocate, RawFree free, Buckets buckets = Buckets::rounded,
                   std::size_t max_cached_bytes = static_cast<std::size_t>(-1))
      : raw_allocate_(std::move(allocate)), raw_free_(std::move(free)), buckets_(buckets),
        max_cached_bytes_(max_cached_bytes) {}
  ~CachingAllocator() { release_cache(); }
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // Requests round up to a multiple of 512 bytes below 1 MiB and of 1 MiB above,
  // so nearby sizes share buckets. Throws std::bad_alloc when even an emptied cache does not help.
  static std::size_t rounded(std::size_t nbytes);
  void* allocate(std::size_t nbytes);
  void release(void* ptr, std::size_t nbytes) noexcept;  // nbytes as given to allocate
  void release_cache();  // returns every cached block to the raw allocator
  Stats stats() const;

 private:
  RawAllocate raw_allocate_;
  RawFree raw_free_;
  Buckets buckets_;
  std::size_t max_cached_bytes_;
  std::size_t bucket(std::size_t nbytes) const { return buckets_ == Buckets::exact ? nbytes : rounded(nbytes); }
  mutable std::mutex mutex_;
  std::unordered_map<std::size_t, std::vector<void*>> free_blocks_;  // bucket size -> blocks
  Stats stats_;
};

}  // namespace xgrad
