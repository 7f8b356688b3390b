// Emulated cuBLAS: strided-batched GEMM with cuBLAS's own argument checks,
// computed by the CPU BLAS (column-major, as cuBLAS). The row-major wrapper in
// cuda/blas.cpp is thereby tested against an independent contract.
#include "cuda/emulator/include/cublas_v2.h"

#include <cblas.h>

#include <algorithm>
#include <string>

#include "cuda/emulator/device_memory.h"
#include "cuda/emulator/errors.h"

struct cublasContext {
  cudaStream_t stream = nullptr;
};

namespace xgrad::cuda::emulator {

namespace {

cublasStatus_t fail(cublasStatus_t status, const std::string& message) {
  set_blas_message(status, message);
  return status;
}

// Whether the column-major rows x cols matrix at p (leading dimension ld) lies in one device allocation.
template <class T>
bool matrix_on_device(const T* p, long long rows, long long cols, long long ld) {
  if (rows == 0 || cols == 0) return true;
  return is_device_range(p, static_cast<std::size_t>((cols - 1) * ld + rows) * sizeof(T));
}

void call_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha, const float* a, int lda,
               const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasColMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
void call_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, double alpha, const double* a, int lda,
               const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasColMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template <class T>
cublasStatus_t gemm_strided_batched(const char* name, cublasHandle_t handle, cublasOperation_t transa,
                                    cublasOperation_t transb, int m, int n, int k, const T* alpha, const T* A, int lda,
                                    long long strideA, const T* B, int ldb, long long strideB, const T* beta, T* C, int ldc,
                                    long long strideC, int batchCount) {
  const std::string what = name;
  if (!handle) return fail(CUBLAS_STATUS_NOT_INITIALIZED, what + ": no handle");
  const long long a_rows = transa == CUBLAS_OP_N ? m : k, a_cols = transa == CUBLAS_OP_N ? k : m;
  const long long b_rows = transb == CUBLAS_OP_N ? k : n, b_cols = transb == CUBLAS_OP_N ? n : k;
  if (m < 0 || n < 0 || k < 0 || batchCount < 0)
    return fail(CUBLAS_STATUS_INVALID_VALUE, what + ": negative size (m " + std::to_string(m) + ", n " + std::to_string(n) +
                                                 ", k " + std::to_string(k) + ", batches " + std::to_string(batchCount) + ")");
  if (lda < std::max(1LL, a_rows) || ldb < std::max(1LL, b_rows) || ldc < std::max(1, m))
    return fail(CUBLAS_STATUS_INVALID_VALUE, what + ": leading dimension too small (lda " + std::to_string(lda) + " for " +
                                                 std::to_string(a_rows) + " rows, ldb " + std::to_string(ldb) + " for " +
                                                 std::to_string(b_rows) + ", ldc " + std::to_string(ldc) + " for " +
                                                 std::to_string(m) + ")");
  if (m == 0 || n == 0 || batchCount == 0) return CUBLAS_STATUS_SUCCESS;
  for (long long i = 0; i < batchCount; ++i) {
    const char* bad = !matrix_on_device(C + i * strideC, m, n, ldc) ? "C"
                      : k > 0 && !matrix_on_device(A + i * strideA, a_rows, a_cols, lda) ? "A"
                      : k > 0 && !matrix_on_device(B + i * strideB, b_rows, b_cols, ldb) ? "B"
                                                                                         : nullptr;
    if (bad)
      return fail(CUBLAS_STATUS_EXECUTION_FAILED, what + ": batch " + std::to_string(i) + "'s " + bad +
                                                      " reaches outside its device allocation (an illegal address on a GPU)");
  }
  const DeviceAccess access(name);
  const auto ta = transa == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, tb = transb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans;
  for (long long i = 0; i < batchCount; ++i) {
    T* c = C + i * strideC;
    if (*beta == T(0))  // cuBLAS does not read C then: NaN there must not leak into the product
      for (int col = 0; col < n; ++col) std::fill(c + static_cast<long long>(col) * ldc, c + static_cast<long long>(col) * ldc + m, T(0));
    call_gemm(ta, tb, m, n, k, *alpha, A + i * strideA, lda, B + i * strideB, ldb, *beta, c, ldc);
  }
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

}  // namespace xgrad::cuda::emulator

using namespace xgrad::cuda::emulator;

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  *handle = new cublasContext();
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

const char* cublasGetStatusString(cublasStatus_t status) { return blas_message(status); }

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m,
                                         int n, int k, const float* alpha, const float* A, int lda, long long strideA,
                                         const float* B, int ldb, long long strideB, const float* beta, float* C, int ldc,
                                         long long strideC, int batchCount) {
  return gemm_strided_batched("cublasSgemmStridedBatched", handle, transa, transb, m, n, k, alpha, A, lda, strideA, B, ldb,
                              strideB, beta, C, ldc, strideC, batchCount);
}

cublasStatus_t cublasDgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m,
                                         int n, int k, const double* alpha, const double* A, int lda, long long strideA,
                                         const double* B, int ldb, long long strideB, const double* beta, double* C,
                                         int ldc, long long strideC, int batchCount) {
  return gemm_strided_batched("cublasDgemmStridedBatched", handle, transa, transb, m, n, k, alpha, A, lda, strideA, B, ldb,
                              strideB, beta, C, ldc, strideC, batchCount);
}
