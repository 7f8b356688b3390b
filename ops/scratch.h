// Per-thread scratch buffers for kernels (internal: only ops/*.cpp include it).
#pragma once
#include <cstdint>
#include <vector>

// Internal to the library: not exported from libxgrad.so.
#pragma GCC visibility push(hidden)

namespace xgrad {

// A buffer of at least `count` Ts for this thread, grown as needed and kept, so that a steady-state Program run
// does not allocate here and concurrent runs on other threads get their own. Slot tells apart buffers one
// kernel needs at the same time. A later call with the same T and Slot may move the buffer: take it once per
// kernel call. (A thread waiting in ThreadPool::run only runs tasks of its own job, so no other kernel reuses
// it meanwhile.)
template <class T, int Slot = 0>
T* scratch(std::int64_t count) {
  thread_local std::vector<T> buffer;
  if (static_cast<std::int64_t>(buffer.size()) < count) buffer.resize(static_cast<std::size_t>(count));
  return buffer.data();
}

}  // namespace xgrad
#pragma GCC visibility pop
