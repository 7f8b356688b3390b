#include "ops/gemm.h"

#include <cblas.h>

#if defined(XGRAD_HAVE_DNNL)
#include <oneapi/dnnl/dnnl.h>

#include <string>

#include "core/error.h"
#endif

namespace xgrad::blas {

namespace {

CBLAS_TRANSPOSE flag(bool transposed) { return transposed ? CblasTrans : CblasNoTrans; }
blasint as_int(std::int64_t v) { return static_cast<blasint>(v); }

template <class T, class Gemm>
void blas_gemm(std::int64_t m, std::int64_t n, std::int64_t k, MatrixArg a, MatrixArg b, T* c, Gemm gemm_fn) {
  gemm_fn(CblasRowMajor, flag(a.transposed), flag(b.transposed), as_int(m), as_int(n), as_int(k), T(1),
          static_cast<const T*>(a.data), as_int(a.ld), static_cast<const T*>(b.data), as_int(b.ld), T(0), c, as_int(n));
}

}  // namespace

void gemm_f32(std::int64_t m, std::int64_t n, std::int64_t k, MatrixArg a, MatrixArg b, float* c) {
  if (m == 1 || n == 1) return gemv(m, n, k, a, b, c);
#if defined(XGRAD_HAVE_DNNL)
  // oneDNN's sgemm is row-major, like ours; it JITs AVX-512 kernels where the CPU has them.
  const dnnl_status_t status = dnnl_sgemm(a.transposed ? 'T' : 'N', b.transposed ? 'T' : 'N', m, n, k, 1.0f,
                                          static_cast<const float*>(a.data), a.ld, static_cast<const float*>(b.data), b.ld,
                                          0.0f, c, n);
  if (status != dnnl_success)
    throw RuntimeError("oneDNN sgemm failed (status " + std::to_string(static_cast<int>(status)) + ") for a " +
                       std::to_string(m) + "x" + std::to_string(k) + " by " + std::to_string(k) + "x" + std::to_string(n) +
                       " product");
#else
  blas_gemm(m, n, k, a, b, c, cblas_sgemm);
#endif
}

const char* gemm_library(DType dtype) {
#if defined(XGRAD_HAVE_DNNL)
  if (dtype == DType::float32) return "oneDNN sgemm";
#endif
  return dtype == DType::float32 ? "OpenBLAS sgemm" : "OpenBLAS dgemm";
}

void gemm_f64(std::int64_t m, std::int64_t n, std::int64_t k, MatrixArg a, MatrixArg b, double* c) {
  if (m == 1 || n == 1) return gemv(m, n, k, a, b, c);
  blas_gemm(m, n, k, a, b, c, cblas_dgemm);
}

}  // namespace xgrad::blas
