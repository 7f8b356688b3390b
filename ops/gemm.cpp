#include "ops/gemm.h"

#include <cblas.h>

namespace xgrad::blas {

namespace {
CBLAS_TRANSPOSE flag(const MatrixArg& m) { return m.transposed ? CblasTrans : CblasNoTrans; }
blasint as_int(std::int64_t v) { return static_cast<blasint>(v); }
}  // namespace

void gemm_f32(std::int64_t m, std::int64_t n, std::int64_t k, MatrixArg a, MatrixArg b, float* c) {
  cblas_sgemm(CblasRowMajor, flag(a), flag(b), as_int(m), as_int(n), as_int(k), 1.0f, static_cast<const float*>(a.data),
              as_int(a.ld), static_cast<const float*>(b.data), as_int(b.ld), 0.0f, c, as_int(n > 0 ? n : 1));
}

void gemm_f64(std::int64_t m, std::int64_t n, std::int64_t k, MatrixArg a, MatrixArg b, double* c) {
  cblas_dgemm(CblasRowMajor, flag(a), flag(b), as_int(m), as_int(n), as_int(k), 1.0, static_cast<const double*>(a.data),
              as_int(a.ld), static_cast<const double*>(b.data), as_int(b.ld), 0.0, c, as_int(n > 0 ? n : 1));
}

}  // namespace xgrad::blas
