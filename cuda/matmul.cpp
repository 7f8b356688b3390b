// matmul on the GPU through cuBLAS: numpy semantics as on the CPU (batched,
// broadcasting batch axes, transposed views as transpose flags, no copies for
// strided matrices cuBLAS can read).
#include <cublas_v2.h>

#include <string>

#include "core/op.h"
#include "core/strided_loop.h"
#include "cuda/context.h"
#include "ops/gemm.h"

namespace xgrad::cuda {

namespace {

void check_blas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw RuntimeError(std::string(what) + ": cuBLAS status " + std::to_string(static_cast<int>(status)));
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

// Row-major C = A B is column-major C^T = B^T A^T: a row-major matrix read as column-major is its
// transpose, so B goes first, and a transposed view (column-major storage) takes the T flag.
cublasOperation_t flag(const blas::MatrixArg& arg) { return arg.transposed ? CUBLAS_OP_T : CUBLAS_OP_N; }

template <class T>
void gemm(std::int64_t m, std::int64_t n, std::int64_t k, const blas::MatrixArg& a, const blas::MatrixArg& b, T* c,
          std::int64_t ldc, std::int64_t batches, std::int64_t stride_a, std::int64_t stride_b, std::int64_t stride_c) {
  const T one = 1, zero = 0;
  const auto M = static_cast<int>(m), N = static_cast<int>(n), K = static_cast<int>(k);
  const auto lda = static_cast<int>(a.ld), ldb = static_cast<int>(b.ld), LDC = static_cast<int>(ldc);
  const T* ap = static_cast<const T*>(a.data);
  const T* bp = static_cast<const T*>(b.data);
  if constexpr (std::is_same_v<T, float>) {
    check_blas(cublasSgemmStridedBatched(handle(), flag(b), flag(a), N, M, K, &one, bp, ldb, stride_b, ap, lda, stride_a,
                                         &zero, c, LDC, stride_c, static_cast<int>(batches)),
               "cublasSgemmStridedBatched");
  } else {
    check_blas(cublasDgemmStridedBatched(handle(), flag(b), flag(a), N, M, K, &one, bp, ldb, stride_b, ap, lda, stride_a,
                                         &zero, c, LDC, stride_c, static_cast<int>(batches)),
               "cublasDgemmStridedBatched");
  }
}

void matmul(const Tensor* const* in, Tensor& out, const Attrs&) {
  Tensor a = *in[0], b = *in[1];
  const auto ra = a.ndim(), rb = b.ndim();
  const auto m = a.shape()[ra - 2], k = a.shape()[ra - 1], n = b.shape()[rb - 1];
  if (k != b.shape()[rb - 2])
    throw ValueError("inner dimensions differ at run time: " + to_string(a.shape()) + " @ " + to_string(b.shape()));
  if (out.numel() == 0) return;
  if (k == 0) {
    out.fill_zero();
    return;
  }
  if (!blas::blas_readable(a)) a = a.copy();  // packed on the device
  if (!blas::blas_readable(b)) b = b.copy();
  const Shape batch = blas::batch_of(out.shape());
  const Strides a_batch = broadcast_strides(blas::batch_of(a.shape()), blas::batch_of(a.strides()), batch);
  const Strides b_batch = broadcast_strides(blas::batch_of(b.shape()), blas::batch_of(b.strides()), batch);
  const Strides out_batch = blas::batch_of(out.strides());
  const std::size_t item = itemsize(out.dtype());
  const char* ap = static_cast<const char*>(a.raw_data());
  const char* bp = static_cast<const char*>(b.raw_data());
  char* cp = static_cast<char*>(out.raw_data());
  const auto as0 = a.strides()[ra - 2], as1 = a.strides()[ra - 1];
  const auto bs0 = b.strides()[rb - 2], bs1 = b.strides()[rb - 1];
  // One strided-batched call over the innermost batch axis (the whole batch when there is one axis);
  // outer batch axes, if any, loop on the host.
  const Shape outer(batch.begin(), batch.empty() ? batch.end() : batch.end() - 1);
  const std::int64_t inner = batch.empty() ? 1 : batch.back();
  const auto tail = [](const Strides& s) { return s.empty() ? std::int64_t{0} : s.back(); };
  const Strides outer_out(out_batch.begin(), out_batch.empty() ? out_batch.end() : out_batch.end() - 1);
  const Strides outer_a(a_batch.begin(), a_batch.empty() ? a_batch.end() : a_batch.end() - 1);
  const Strides outer_b(b_batch.begin(), b_batch.empty() ? b_batch.end() : b_batch.end() - 1);
  strided_loop<3>(outer, {&outer_out, &outer_a, &outer_b}, [&](std::int64_t cnt, const auto& off, const auto& st) {
    for (std::int64_t i = 0; i < cnt; ++i) {
      blas::MatrixArg aa{}, bb{};
      blas::as_blas_operand(ap + (off[1] + i * st[1]) * item, m, k, as0, as1, aa);
      blas::as_blas_operand(bp + (off[2] + i * st[2]) * item, k, n, bs0, bs1, bb);
      void* c = cp + (off[0] + i * st[0]) * item;
      if (out.dtype() == DType::float32)
        gemm<float>(m, n, k, aa, bb, static_cast<float*>(c), n, inner, tail(a_batch), tail(b_batch), tail(out_batch));
      else
        gemm<double>(m, n, k, aa, bb, static_cast<double*>(c), n, inner, tail(a_batch), tail(b_batch), tail(out_batch));
    }
  });
}

const bool registered = [] {
  register_device_kernel("matmul", Device::cuda, matmul);
  return true;
}();

}  // namespace

}  // namespace xgrad::cuda
