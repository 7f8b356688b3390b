// Kernel launches in the emulator: blocks run one after another; within a
// block each CUDA thread is a fiber (fiber.h) that runs until it reaches
// __syncthreads or returns, so shared memory and barriers behave as on a GPU.
// A block whose thread 0 returns without a barrier runs its other threads as
// plain calls (most kernels: grid-stride loops), which is much faster.
// Between barriers the threads run in ascending order, then descending, in
// turn: a read of another thread's write that lacks a barrier between them
// sees the old value in one of the two orders, whichever thread is ahead.
#include <sys/mman.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "cuda/emulator/include/cuda_runtime.h"
#include "cuda/emulator/device_memory.h"
#include "cuda/emulator/errors.h"
#include "cuda/emulator/fiber.h"

uint3 threadIdx;
uint3 blockIdx;
dim3 blockDim;
dim3 gridDim;

namespace xgrad::cuda::emulator {

namespace {

constexpr unsigned kMaxThreadsPerBlock = 1024;
constexpr std::size_t kStackBytes = std::size_t{256} << 10;

struct Fiber {
  FiberContext context;
  char* stack = nullptr;  // mapped once and kept, with a guard page below
  bool done = false;
  int barriers = 0;  // __syncthreads reached so far
};

// The block being run; only touched under DeviceAccess's lock.
struct Block {
  std::unique_ptr<Fiber[]> fibers = std::make_unique<Fiber[]>(kMaxThreadsPerBlock);
  FiberContext scheduler;
  void (*thunk)(void*) = nullptr;
  void* body = nullptr;
  int current = -1;
  bool plain = false;          // threads run as plain calls: a barrier now is a divergent one
  int plain_barrier_at = -1;   // the first thread that reached a barrier in plain mode
};
Block block;

void set_thread(unsigned t) {
  threadIdx.x = t % blockDim.x;
  threadIdx.y = (t / blockDim.x) % blockDim.y;
  threadIdx.z = t / (blockDim.x * blockDim.y);
}

void fiber_main() {
  Fiber& f = block.fibers[block.current];
  block.thunk(block.body);
  f.done = true;
  switch_fiber(f.context, block.scheduler);  // never resumed
}

void resume(int t) {
  set_thread(static_cast<unsigned>(t));
  block.current = t;
  switch_fiber(block.scheduler, block.fibers[t].context);
  block.current = -1;
}

bool start(int t) {
  Fiber& f = block.fibers[t];
  if (!f.stack) {
    const std::size_t guard = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    void* map = mmap(nullptr, kStackBytes + guard, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED) return false;
    if (mprotect(map, guard, PROT_NONE) != 0) return false;  // an overflowing fiber faults, corrupting nothing
    f.stack = static_cast<char*>(map) + guard;
  }
  make_fiber(f.context, f.stack, kStackBytes, fiber_main);
  f.done = false;
  f.barriers = 0;
  resume(t);
  return true;
}

std::string where(const char* kernel) {
  return std::string(kernel) + " (block " + std::to_string(blockIdx.x) + "," + std::to_string(blockIdx.y) + "," +
         std::to_string(blockIdx.z) + ")";
}

// Runs every thread of the current block; an empty string when all went well.
std::string run_block(unsigned threads, const char* kernel) {
  if (!start(0)) return "could not map a fiber stack";
  if (block.fibers[0].done && block.fibers[0].barriers == 0) {
    struct PlainMode {  // ends with the block, however it ends
      PlainMode() { block.plain = true, block.plain_barrier_at = -1; }
      ~PlainMode() { block.plain = false; }
    } plain;
    for (unsigned t = 1; t < threads; ++t) {
      set_thread(t);
      block.thunk(block.body);
    }
    if (block.plain_barrier_at >= 0)
      return where(kernel) + ": thread " + std::to_string(block.plain_barrier_at) +
             " reached __syncthreads, but thread 0 returned without reaching one (a divergent barrier)";
    return {};
  }
  for (unsigned t = 1; t < threads; ++t)
    if (!start(static_cast<int>(t))) return "could not map a fiber stack";
  std::string problem;
  for (bool descending = true;; descending = !descending) {
    // Every thread now waits at a barrier or has returned; all must be at the same one.
    int waiting = 0, at = -1;
    for (unsigned t = 0; t < threads; ++t) {
      const Fiber& f = block.fibers[t];
      if (f.done) continue;
      ++waiting;
      if (at < 0) at = f.barriers;
      if (problem.empty() && f.barriers != at)
        problem = where(kernel) + ": threads wait at different __syncthreads calls (a divergent barrier)";
    }
    if (waiting == 0) break;
    if (problem.empty() && waiting != static_cast<int>(threads))
      problem = where(kernel) + ": some threads returned while others wait at __syncthreads (a divergent barrier)";
    for (unsigned k = 0; k < threads; ++k) {  // release the barrier (also after a problem, to finish the block)
      const unsigned t = descending ? threads - 1 - k : k;
      if (!block.fibers[t].done) resume(static_cast<int>(t));
    }
  }
  return problem;
}

bool valid_configuration(dim3 grid, dim3 b) {
  const unsigned long long threads = 1ULL * b.x * b.y * b.z;
  return threads >= 1 && threads <= kMaxThreadsPerBlock && b.z <= 64 && grid.x >= 1 && grid.y >= 1 && grid.z >= 1 &&
         grid.x <= 2147483647u && grid.y <= 65535 && grid.z <= 65535;
}

}  // namespace

void run_grid(dim3 grid, dim3 threads, const char* kernel, void (*thunk)(void*), void* body) {
  if (!valid_configuration(grid, threads)) {
    set_error(cudaErrorInvalidConfiguration,
              std::string(kernel) + ": invalid launch configuration (grid " + std::to_string(grid.x) + "x" +
                  std::to_string(grid.y) + "x" + std::to_string(grid.z) + ", block " + std::to_string(threads.x) + "x" +
                  std::to_string(threads.y) + "x" + std::to_string(threads.z) + ")");
    return;
  }
  const DeviceAccess access(kernel);
  gridDim = grid;
  blockDim = threads;
  block.thunk = thunk;
  block.body = body;
  const unsigned per_block = threads.x * threads.y * threads.z;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        blockIdx = {x, y, z};
        const std::string problem = run_block(per_block, kernel);
        if (!problem.empty()) {
          set_error(cudaErrorLaunchFailure, problem);
          return;
        }
      }
}

bool check_pointer_argument(const void* p, const char* kernel, int position) {
  if (!p || is_device_range(p, 0)) return true;
  set_error(cudaErrorInvalidValue, std::string(kernel) + ": argument " + std::to_string(position + 1) +
                                       " points to host memory, which a GPU kernel cannot read");
  return false;
}

}  // namespace xgrad::cuda::emulator

void __syncthreads() {
  using xgrad::cuda::emulator::block;
  if (block.plain) {
    if (block.plain_barrier_at < 0)
      block.plain_barrier_at = static_cast<int>(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
    return;
  }
  if (block.current < 0) return;  // outside a kernel: nothing to wait for
  auto& f = block.fibers[block.current];
  ++f.barriers;
  switch_fiber(f.context, block.scheduler);
}
