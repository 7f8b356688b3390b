#include "ops/gemm.h"

#include <cblas.h>

#if defined(XGRAD_HAVE_DNNL)
#include <dlfcn.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <string>

#include "core/error.h"
#include "core/thread_pool.h"
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

#if defined(XGRAD_HAVE_DNNL)
namespace {

// Debian's oneDNN threads its sgemm with OpenMP, whose workers spin for milliseconds after every call: on a
// small machine they hold the cores that our own pool needs for the elementwise steps between the GEMMs. So
// xgrad splits a large product over its own pool and runs each part with OpenMP held to one thread for
// that call (the calling thread's setting only, restored after: other OpenMP users in the process keep
// theirs). libgomp is already loaded as oneDNN's dependency; its two functions are looked up there (or, for
// another OpenMP runtime, wherever the process has them). Without them, oneDNN threads each product itself.
struct OpenMpThreads {
  int (*get_max)() = nullptr;
  void (*set)(int) = nullptr;
  OpenMpThreads() {
    void* lib = dlopen("libgomp.so.1", RTLD_LAZY | RTLD_NOLOAD);
    void* scope = lib ? lib : RTLD_DEFAULT;
    get_max = reinterpret_cast<int (*)()>(dlsym(scope, "omp_get_max_threads"));
    set = reinterpret_cast<void (*)(int)>(dlsym(scope, "omp_set_num_threads"));
    if (!get_max || !set) get_max = nullptr, set = nullptr;
  }
  bool found() const { return set != nullptr; }
  static const OpenMpThreads& get() {
    static const OpenMpThreads instance;
    return instance;
  }
};

class OneOpenMpThread {
 public:
  OneOpenMpThread() : omp_(OpenMpThreads::get()), previous_(omp_.get_max ? omp_.get_max() : 1) {
    if (previous_ != 1) omp_.set(1);
  }
  ~OneOpenMpThread() {
    if (previous_ != 1) omp_.set(previous_);
  }
  OneOpenMpThread(const OneOpenMpThread&) = delete;
  OneOpenMpThread& operator=(const OneOpenMpThread&) = delete;

 private:
  const OpenMpThreads& omp_;
  int previous_;
};

void dnnl_sgemm_checked(std::int64_t m, std::int64_t n, std::int64_t k, const MatrixArg& a, const MatrixArg& b, float* c,
                        std::int64_t ldc) {
  const dnnl_status_t status = dnnl_sgemm(a.transposed ? 'T' : 'N', b.transposed ? 'T' : 'N', m, n, k, 1.0f,
                                          static_cast<const float*>(a.data), a.ld, static_cast<const float*>(b.data), b.ld,
                                          0.0f, c, ldc);
  if (status != dnnl_success)
    throw RuntimeError("oneDNN sgemm failed (status " + std::to_string(static_cast<int>(status)) + ") for a " +
                       std::to_string(m) + "x" + std::to_string(k) + " by " + std::to_string(k) + "x" + std::to_string(n) +
                       " product");
}

// One part of a split product, on one OpenMP thread.
void dnnl_part(std::int64_t m, std::int64_t n, std::int64_t k, const MatrixArg& a, const MatrixArg& b, float* c, std::int64_t ldc) {
  OneOpenMpThread one;
  dnnl_sgemm_checked(m, n, k, a, b, c, ldc);
}

// Products below this many multiply-adds (a few microseconds on one core) run whole on the calling thread.
constexpr std::int64_t kSplitMultiplyAdds = 1 << 19;
constexpr std::int64_t kSplitAlign = 16;  // rows or columns per part: a multiple of the AVX-512 float width

}  // namespace
#endif

void gemm_f32(std::int64_t m, std::int64_t n, std::int64_t k, MatrixArg a, MatrixArg b, float* c) {
  if (m == 1 || n == 1) return gemv(m, n, k, a, b, c);
#if defined(XGRAD_HAVE_DNNL)
  // oneDNN's sgemm is row-major, like ours; it JITs AVX-512 kernels where the CPU has them.
  ThreadPool& pool = ThreadPool::instance();
  const bool large = m * n * k >= kSplitMultiplyAdds;
  std::int64_t parts = large && OpenMpThreads::get().found() ? static_cast<std::int64_t>(pool.workers()) + 1 : 1;
  // Split the dimension whose parts share the smaller operand: columns of b share all of a (m x k), rows of
  // a share all of b (k x n).
  const bool split_columns = n >= 2 * kSplitAlign && (m <= n || m < 2 * kSplitAlign);
  const std::int64_t extent = split_columns ? n : m;
  parts = std::min(parts, extent / kSplitAlign);
  // Unsplit: small products on one OpenMP thread; a large one too thin to split (X^T X of a tall X, both
  // sides under 32) keeps oneDNN's own threading, which splits k.
  if (parts <= 1) return large ? dnnl_sgemm_checked(m, n, k, a, b, c, n) : dnnl_part(m, n, k, a, b, c, n);
  const std::int64_t chunk = ((extent + parts - 1) / parts + kSplitAlign - 1) / kSplitAlign * kSplitAlign;
  pool.run(static_cast<std::size_t>(parts), [&](std::size_t p) {
    const std::int64_t lo = std::min(extent, static_cast<std::int64_t>(p) * chunk), hi = std::min(extent, lo + chunk);
    if (lo >= hi) return;
    if (split_columns) {  // columns lo.. of b: ld apart when stored transposed, else adjacent
      MatrixArg bp = b;
      bp.data = static_cast<const float*>(b.data) + (b.transposed ? lo * b.ld : lo);
      dnnl_part(m, hi - lo, k, a, bp, c + lo, n);
    } else {  // rows lo.. of a
      MatrixArg ap = a;
      ap.data = static_cast<const float*>(a.data) + (a.transposed ? lo : lo * a.ld);
      dnnl_part(hi - lo, n, k, ap, b, c + lo * n, n);
    }
  });
#else
  blas_gemm(m, n, k, a, b, c, cblas_sgemm);
#endif
}

std::string product_note(DType dtype, std::int64_t rows, std::int64_t cols) {
  if (rows == 1 || cols == 1) return "xgrad gemv";
  std::string note = gemm_library(dtype);
  if (rows == kDynamic || cols == kDynamic) note += ", xgrad gemv at one row";
  return note;
}

std::string matmul_note(const std::vector<TensorType>&, const TensorType& out, const Attrs&) {
  const Shape& s = out.shape;
  const std::int64_t rows = s.size() >= 2 ? s[s.size() - 2] : 1, cols = s.empty() ? 1 : s.back();
  return product_note(out.dtype, rows, cols);
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
