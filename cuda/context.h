// The CUDA backend's shared state for kernel files: the stream every kernel
// and copy runs on, and error checking. Internal to cuda/.
#pragma once
#include <cuda_runtime.h>

#include <string>

// Internal to the library: not exported from libxgrad.so.
#pragma GCC visibility push(hidden)

namespace xgrad::cuda {

// The one stream of device 0: kernels, copies and cuBLAS calls run on it in order, so memory a
// finished run released can be handed to the next one without waiting.
cudaStream_t stream();

// Throws RuntimeError "<what>: <CUDA's message>" unless err is cudaSuccess.
void check(cudaError_t err, const char* what);

// After a launch: a bad configuration shows up here, not at the next call.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

// Launches a kernel on the backend's stream: XGRAD_LAUNCH(blocks, threads, kernel)(args...) is
// kernel<<<blocks, threads, 0, stream()>>>(args...). The CPU emulator (cuda/emulator/) runs the same
// launch block by block, checking that pointer arguments are device memory.
#if defined(XGRAD_CUDA_EMULATOR)
#define XGRAD_LAUNCH(blocks, threads, ...) \
  ::xgrad::cuda::emulator::Launch((blocks), (threads), #__VA_ARGS__, [](const auto&... args) { __VA_ARGS__(args...); })
#else
#define XGRAD_LAUNCH(blocks, threads, ...) __VA_ARGS__<<<(blocks), (threads), 0, ::xgrad::cuda::stream()>>>
#endif

constexpr int kThreads = 256;
inline unsigned blocks_for(long long n) {
  const long long b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 65535 * 16 ? (b > 0 ? b : 1) : 65535 * 16);  // grid-stride loops cover the rest
}

}  // namespace xgrad::cuda
#pragma GCC visibility pop
