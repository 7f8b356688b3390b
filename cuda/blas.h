// cuBLAS GEMM in row-major terms, for the CUDA kernels of matmul and conv2d.
// Internal to cuda/.
#pragma once
#include <cstdint>

// Internal to the library: not exported from libxgrad.so.
#pragma GCC visibility push(hidden)

namespace xgrad::cuda {

// For b in [0, batches): C_b (m x n) = op(A_b) (m x k) @ op(B_b) (k x n) + beta * C_b, all row-major.
// A_b starts at a + b * stride_a and is stored with leading dimension lda: as an (m x k) matrix, or,
// when trans_a, as its (k x m) transpose. Likewise B. C_b starts at c + b * stride_c with leading
// dimension ldc. A stride of 0 reuses one matrix for every batch. Runs on the backend's stream.
template <class T>
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, const T* a, std::int64_t lda,
          std::int64_t stride_a, const T* b, std::int64_t ldb, std::int64_t stride_b, T* c, std::int64_t ldc,
          std::int64_t stride_c, std::int64_t batches, T beta = T(0));

}  // namespace xgrad::cuda
#pragma GCC visibility pop
