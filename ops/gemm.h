// Strided-matrix GEMM through OpenBLAS, and how a strided view reaches a
// BLAS (OpenBLAS here, cuBLAS in cuda/) without a copy. Kept apart from other
// kernels because OpenBLAS's cblas.h clashes with the one in xtensor-blas.
#pragma once
#include <algorithm>
#include <cstdint>

#include "core/tensor.h"

// Internal to the library: not exported from libxgrad.so.
#pragma GCC visibility push(hidden)

namespace xgrad::blas {

struct MatrixArg {
  const void* data;
  bool transposed;     // stored column-major (a transposed row-major view)
  std::int64_t ld;     // leading dimension in elements
};

// How BLAS can read a rows x cols matrix with strides (s0, s1) in place, if it can.
inline bool as_blas_operand(const void* data, std::int64_t rows, std::int64_t cols, std::int64_t s0, std::int64_t s1,
                            MatrixArg& arg) {
  arg.data = data;
  if ((cols <= 1 || s1 == 1) && (rows <= 1 || s0 >= std::max<std::int64_t>(cols, 1))) {
    arg.transposed = false;
    arg.ld = rows <= 1 ? std::max<std::int64_t>(cols, 1) : s0;
    return true;
  }
  if ((rows <= 1 || s0 == 1) && (cols <= 1 || s1 >= std::max<std::int64_t>(rows, 1))) {
    arg.transposed = true;
    arg.ld = cols <= 1 ? std::max<std::int64_t>(rows, 1) : s1;
    return true;
  }
  return false;
}

// Whether the last two axes of t are a matrix BLAS reads in place (else the kernel copies it once).
inline bool blas_readable(const Tensor& t) {
  MatrixArg arg{};
  const auto r = t.ndim();
  return as_blas_operand(nullptr, t.shape()[r - 2], t.shape()[r - 1], t.strides()[r - 2], t.strides()[r - 1], arg);
}

// The leading (batch) axes of a matmul operand's shape or strides.
inline std::vector<std::int64_t> batch_of(const std::vector<std::int64_t>& s) {
  return std::vector<std::int64_t>(s.begin(), s.end() - 2);
}

// C (m x n, row-major contiguous) = A (m x k) * B (k x n).
void gemm_f32(std::int64_t m, std::int64_t n, std::int64_t k, MatrixArg a, MatrixArg b, float* c);
void gemm_f64(std::int64_t m, std::int64_t n, std::int64_t k, MatrixArg a, MatrixArg b, double* c);

}  // namespace xgrad::blas
#pragma GCC visibility pop
