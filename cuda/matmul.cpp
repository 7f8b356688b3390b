// matmul on the GPU through cuBLAS: numpy semantics as on the CPU (batched,
// broadcasting batch axes, transposed views as transpose flags, no copies for
// strided matrices cuBLAS can read).
#include <string>

#include "core/op.h"
#include "core/strided_loop.h"
#include "cuda/blas.h"
#include "cuda/context.h"
#include "ops/gemm.h"

namespace xgrad::cuda {

namespace {

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
  // Packed on the device when cuBLAS cannot read a matrix in place, or when the innermost batch axis
  // runs backwards (cuBLAS documents no negative batch strides).
  const auto reversed_batch = [](const Tensor& t) { return t.ndim() > 2 && t.strides()[t.ndim() - 3] < 0; };
  if (!blas::blas_readable(a) || reversed_batch(a)) a = a.copy();
  if (!blas::blas_readable(b) || reversed_batch(b)) b = b.copy();
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
        gemm<float>(aa.transposed, bb.transposed, m, n, k, static_cast<const float*>(aa.data), aa.ld, tail(a_batch),
                    static_cast<const float*>(bb.data), bb.ld, tail(b_batch), static_cast<float*>(c), n, tail(out_batch), inner);
      else
        gemm<double>(aa.transposed, bb.transposed, m, n, k, static_cast<const double*>(aa.data), aa.ld, tail(a_batch),
                     static_cast<const double*>(bb.data), bb.ld, tail(b_batch), static_cast<double*>(c), n, tail(out_batch),
                     inner);
    }
  });
}

const bool registered = [] {
  register_device_kernel("matmul", Device::cuda, matmul);
  return true;
}();

}  // namespace

}  // namespace xgrad::cuda
