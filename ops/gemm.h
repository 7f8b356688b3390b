// Strided-matrix GEMM through OpenBLAS. Kept apart from other kernels
// because OpenBLAS's cblas.h clashes with the one bundled in xtensor-blas.
#pragma once
#include <cstdint>

namespace xgrad::blas {

struct MatrixArg {
  const void* data;
  bool transposed;     // stored column-major (a transposed row-major view)
  std::int64_t ld;     // leading dimension in elements
};

// C (m x n, row-major contiguous) = A (m x k) * B (k x n).
void gemm_f32(std::int64_t m, std::int64_t n, std::int64_t k, MatrixArg a, MatrixArg b, float* c);
void gemm_f64(std::int64_t m, std::int64_t n, std::int64_t k, MatrixArg a, MatrixArg b, double* c);

}  // namespace xgrad::blas
