// A CPU stand-in for the part of the CUDA runtime and kernel language that cuda/ uses, so that the
// backend's sources compile with g++ and its kernels run on machines without a GPU (CMake option
// XGRAD_CUDA_EMULATOR; `make test-cuda-emulator`). It is a test harness, not a device: nothing here
// is fast, and a kernel that passes here can still race or be slow on a GPU.
//
// What it checks that a GPU would not report as clearly:
// - kernels run block after block; each CUDA thread is a fiber that yields at __syncthreads, and a
//   barrier not reached by every thread of the block is a launch error;
// - between barriers the threads of a block run in ascending order, then descending, alternately, so a
//   missing __syncthreads between a write and another thread's read shows up either way;
// - device memory is host memory the host may touch only inside the emulated calls (a host read of a
//   device pointer faults), with a guard page right after each raw allocation's last byte; the backend
//   fills every block it hands out with NaN bytes (0xFF), so reads of unwritten memory show up. (A
//   Program's intermediates share one arena allocation: within it neither check reaches.)
// - pointer arguments of kernels (not pointers inside struct arguments), copies and cuBLAS operands
//   must lie in device allocations.
// What it cannot show: races between threads outside barriers, host/device ordering, speed; errors are
// not sticky as a GPU's faults are.
#pragma once
#include <cstddef>
#include <type_traits>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
// Blocks run one at a time under the emulator's lock, so a function-local static is the block's shared array.
#define __shared__ static

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};

// The builtin variables of the running thread.
#pragma GCC visibility push(hidden)
extern uint3 threadIdx;
extern uint3 blockIdx;
extern dim3 blockDim;
extern dim3 gridDim;

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchFailure = 719,
};
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
};
struct CUstream_st;
using cudaStream_t = CUstream_st*;
constexpr unsigned cudaStreamNonBlocking = 1;

cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaMalloc(void** ptr, std::size_t bytes);
cudaError_t cudaFree(void* ptr);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind, cudaStream_t stream);
cudaError_t cudaMemsetAsync(void* dst, int value, std::size_t bytes, cudaStream_t stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaGetLastError();  // and clears it
// The emulator's description of the last error of this kind on this thread (which says what was wrong).
const char* cudaGetErrorString(cudaError_t error);

// Defined in grid.cpp and never inline: the call is what makes the compiler reload shared (static) arrays
// that other fibers wrote while this one waited.
void __syncthreads();

// Fibers switch only at __syncthreads, so a read-modify-write cannot be interleaved. CUDA's overloads only,
// so that code nvcc would refuse does not compile here either.
template <class T>
inline T fetch_add(T* address, T value) {
  const T old = *address;
  *address = old + value;
  return old;
}
inline int atomicAdd(int* address, int value) { return fetch_add(address, value); }
inline unsigned atomicAdd(unsigned* address, unsigned value) { return fetch_add(address, value); }
inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
  return fetch_add(address, value);
}
inline float atomicAdd(float* address, float value) { return fetch_add(address, value); }
inline double atomicAdd(double* address, double value) { return fetch_add(address, value); }
inline unsigned long long atomicCAS(unsigned long long* address, unsigned long long compare, unsigned long long value) {
  const unsigned long long old = *address;
  if (old == compare) *address = value;
  return old;
}

namespace xgrad::cuda::emulator {

// Fills [p, p + bytes) of device memory with a pattern that reads as NaN in float32 and float64 and as an
// index out of any range in int32 and int64: reads of memory nothing wrote show up in results.
void poison_device(void* p, std::size_t bytes);

// Runs thunk(body) once per thread of the grid, as XGRAD_LAUNCH's kernel call; the result becomes the
// launch's error (cudaGetLastError).
void run_grid(dim3 grid, dim3 threads, const char* kernel, void (*thunk)(void*), void* body);
// True when p is null or points into (or one past) a device allocation; otherwise records the launch error.
bool check_pointer_argument(const void* p, const char* kernel, int position);

// XGRAD_LAUNCH(blocks, threads, kernel)(args...) under the emulator (cuda/context.h).
template <class Kernel>
class Launch {
 public:
  Launch(dim3 grid, dim3 block, const char* name, Kernel kernel) : grid_(grid), block_(block), name_(name), kernel_(kernel) {}

  template <class... Args>
  void operator()(const Args&... args) const {
    int position = 0;
    if (!(pointer_ok(args, position++) && ...)) return;
    auto body = [&] { kernel_(args...); };
    run_grid(grid_, block_, name_, [](void* b) { (*static_cast<decltype(body)*>(b))(); }, &body);
  }

 private:
  template <class A>
  bool pointer_ok(const A& arg, int position) const {
    static_assert(std::is_trivially_copyable_v<A>, "a kernel argument is copied to the GPU byte for byte");
    if constexpr (std::is_pointer_v<A>) return check_pointer_argument(arg, name_, position);
    else return true;
  }

  dim3 grid_, block_;
  const char* name_;
  Kernel kernel_;
};

}  // namespace xgrad::cuda::emulator
#pragma GCC visibility pop
