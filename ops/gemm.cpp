#include "ops/gemm.h"

#include <cblas.h>

namespace xgrad::blas {

namespace {

CBLAS_TRANSPOSE flag(bool transposed) { return transposed ? CblasTrans : CblasNoTrans; }
blasint as_int(std::int64_t v) { return static_cast<blasint>(v); }

// One body for both precisions: matrix-vector products go to gemv, which
// BLAS runs several times faster than a gemm with one column.
template <class T, class Gemm, class Gemv>
void gemm(std::int64_t m, std::int64_t n, std::int64_t k, MatrixArg a, MatrixArg b, T* c, Gemm gemm_fn, Gemv gemv_fn) {
  const T* ap = static_cast<const T*>(a.data);
  const T* bp = static_cast<const T*>(b.data);
  if (n == 1) {  // c (m) = A (m x k) . b (k): b's elements are ld apart unless stored transposed
    const std::int64_t incb = b.transposed ? 1 : b.ld;
    if (a.transposed) gemv_fn(CblasRowMajor, CblasTrans, as_int(k), as_int(m), T(1), ap, as_int(a.ld), bp, as_int(incb), T(0), c, 1);
    else gemv_fn(CblasRowMajor, CblasNoTrans, as_int(m), as_int(k), T(1), ap, as_int(a.ld), bp, as_int(incb), T(0), c, 1);
    return;
  }
  if (m == 1) {  // c (n) = B^T (n x k) . a (k)
    const std::int64_t inca = a.transposed ? a.ld : 1;
    if (b.transposed) gemv_fn(CblasRowMajor, CblasNoTrans, as_int(n), as_int(k), T(1), bp, as_int(b.ld), ap, as_int(inca), T(0), c, 1);
    else gemv_fn(CblasRowMajor, CblasTrans, as_int(k), as_int(n), T(1), bp, as_int(b.ld), ap, as_int(inca), T(0), c, 1);
    return;
  }
  gemm_fn(CblasRowMajor, flag(a.transposed), flag(b.transposed), as_int(m), as_int(n), as_int(k), T(1), ap, as_int(a.ld), bp,
          as_int(b.ld), T(0), c, as_int(n));
}

}  // namespace

void gemm_f32(std::int64_t m, std::int64_t n, std::int64_t k, MatrixArg a, MatrixArg b, float* c) {
  gemm<float>(m, n, k, a, b, c, cblas_sgemm, cblas_sgemv);
}

void gemm_f64(std::int64_t m, std::int64_t n, std::int64_t k, MatrixArg a, MatrixArg b, double* c) {
  gemm<double>(m, n, k, a, b, c, cblas_dgemm, cblas_dgemv);
}

}  // namespace xgrad::blas
