// A CPU stand-in for the part of the CUDA runtime and kernel language that cuda/ uses, so that the
// backend's sources compile with g++ and its kernels run on machines without a GPU (CMake option
// XGRAD_CUDA_EMULATOR; `make test-cuda-emulator`). It is a test harness, not a device: nothing here
// is fast, and a kernel that passes here can still race or be slow on a GPU.
//
// What it checks that a GPU would not report as clearly:
// - kernels run block after block; each CUDA thread is a fiber that yields at __syncthreads, and a
//   barrier not reached by every thread of the block is a launch error;
// - device memory is host memory the host may touch only inside the emulated calls (a host read of a
//   device pointer faults), with a guard page right after each allocation's last byte, and fresh
//   allocations are filled with NaN bytes (0xFF) so reads of unwritten memory show up;
// - kernel pointer arguments, copies and cuBLAS operands must lie in device allocations.
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

void __syncthreads();

// Fibers switch only at __syncthreads, so a read-modify-write cannot be interleaved.
template <class T>
T atomicAdd(T* address, T value) {
  const T old = *address;
  *address = old + value;
  return old;
}
inline unsigned long long atomicCAS(unsigned long long* address, unsigned long long compare, unsigned long long value) {
  const unsigned long long old = *address;
  if (old == compare) *address = value;
  return old;
}

namespace xgrad::cuda::emulator {

// Runs thunk(body) once per thread of the grid, as XGRAD_LAUNCH's kernel call; the result becomes the
// launch's error (cudaGetLastError).
void run_grid(dim3 grid, dim3 block, const char* kernel, void (*thunk)(void*), void* body);
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
    if constexpr (std::is_pointer_v<A>) return check_pointer_argument(arg, name_, position);
    else return true;
  }

  dim3 grid_, block_;
  const char* name_;
  Kernel kernel_;
};

}  // namespace xgrad::cuda::emulator
#pragma GCC visibility pop
