// Indexing for CUDA kernels over strided tensors: element offsets of several
// operands from one linear index, and the grid-stride loop. Internal to cuda/.
#pragma once
#include <cstdint>
#include <string>

#include "core/strided_loop.h"
#include "core/tensor.h"
#include "ops/dispatch.h"

// Internal to the library: not exported from libxgrad.so.
#pragma GCC visibility push(hidden)

namespace xgrad::cuda {

constexpr int kMaxRank = 8;

// Element offsets of N operands for a linear index into the output's shape
// (row-major); a broadcast operand has stride 0 along its broadcast axes.
template <int N>
struct StridedIndex {
  int rank = 0;
  std::int64_t size[kMaxRank] = {};
  std::int64_t stride[N][kMaxRank] = {};

  __device__ void offsets(std::int64_t linear, std::int64_t (&off)[N]) const {
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = rank - 1; d >= 0; --d) {
      const std::int64_t i = linear % size[d];
      linear /= size[d];
      for (int k = 0; k < N; ++k) off[k] += i * stride[k][d];
    }
  }
};

// Output first, then the inputs, each broadcast to the output's shape.
template <int N>
inline StridedIndex<N> strided_index(const Tensor& out, const Tensor* const* in, const char* op) {
  if (out.ndim() > kMaxRank)
    throw ValueError(std::string(op) + ": the CUDA kernels take up to 8 dimensions, got " + std::to_string(out.ndim()));
  StridedIndex<N> ix;
  ix.rank = static_cast<int>(out.ndim());
  for (int d = 0; d < ix.rank; ++d) {
    ix.size[d] = out.shape()[d];
    ix.stride[0][d] = out.strides()[d];
  }
  for (int k = 1; k < N; ++k) {
    const Strides s = broadcast_strides(in[k - 1]->shape(), in[k - 1]->strides(), out.shape());
    for (int d = 0; d < ix.rank; ++d) ix.stride[k][d] = s[d];
  }
  return ix;
}

inline bool packed_like(const Tensor& t, const Tensor& out) { return t.shape() == out.shape() && t.is_contiguous(); }

#define XGRAD_GRID_STRIDE(i, n) \
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < (n); i += std::int64_t(blockDim.x) * gridDim.x)

}  // namespace xgrad::cuda
#pragma GCC visibility pop
