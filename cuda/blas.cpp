#include "cuda/blas.h"

#include <cublas_v2.h>

#include <string>
#include <type_traits>

#include "core/error.h"
#include "cuda/context.h"

namespace xgrad::cuda {

namespace {

void check_blas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw RuntimeError(std::string(what) + ": " + cublasGetStatusString(status));
}

// One handle per host thread (cuBLAS handles are not for concurrent use), all on the backend's stream.
cublasHandle_t handle() {
  struct Handle {
    cublasHandle_t h = nullptr;
    Handle() {
      check_blas(cublasCreate(&h), "cublasCreate");
      check_blas(cublasSetStream(h, stream()), "cublasSetStream");
    }
    ~Handle() { cublasDestroy(h); }
  };
  thread_local Handle local;
  return local.h;
}

int as_int(std::int64_t v, const char* what) {
  if (v > 2147483647) throw ValueError(std::string("cuBLAS: ") + what + " " + std::to_string(v) + " exceeds 2^31 - 1");
  return static_cast<int>(v);
}

}  // namespace

// Row-major C = A B is column-major C^T = B^T A^T, and a row-major matrix read as column-major is its
// transpose: so B goes first, and an operand stored transposed takes the T flag.
template <class T>
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, const T* a, std::int64_t lda,
          std::int64_t stride_a, const T* b, std::int64_t ldb, std::int64_t stride_b, T* c, std::int64_t ldc,
          std::int64_t stride_c, std::int64_t batches, T beta) {
  const T one = 1;
  const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int M = as_int(m, "rows"), N = as_int(n, "columns"), K = as_int(k, "inner size");
  const int LDA = as_int(lda, "leading dimension"), LDB = as_int(ldb, "leading dimension"), LDC = as_int(ldc, "leading dimension");
  const int count = as_int(batches, "batch count");
  if constexpr (std::is_same_v<T, float>) {
    check_blas(cublasSgemmStridedBatched(handle(), op_b, op_a, N, M, K, &one, b, LDB, stride_b, a, LDA, stride_a, &beta, c,
                                         LDC, stride_c, count),
               "cublasSgemmStridedBatched");
  } else {
    check_blas(cublasDgemmStridedBatched(handle(), op_b, op_a, N, M, K, &one, b, LDB, stride_b, a, LDA, stride_a, &beta, c,
                                         LDC, stride_c, count),
               "cublasDgemmStridedBatched");
  }
}

template void gemm<float>(bool, bool, std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t, std::int64_t,
                          const float*, std::int64_t, std::int64_t, float*, std::int64_t, std::int64_t, std::int64_t, float);
template void gemm<double>(bool, bool, std::int64_t, std::int64_t, std::int64_t, const double*, std::int64_t, std::int64_t,
                           const double*, std::int64_t, std::int64_t, double*, std::int64_t, std::int64_t, std::int64_t,
                           double);

}  // namespace xgrad::cuda
