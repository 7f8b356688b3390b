// 2-D matrix product through BLAS. Transposed operands arrive as views
// (strides swapped) and go to BLAS as transpose flags, never as copies.
#include <algorithm>
#include <cstring>

#include "ops/elementwise.h"
#include "ops/gemm.h"
#include "ops/ops.h"

namespace xgrad {

namespace {

using G = std::vector<Var>;

TensorType infer_matmul(const std::vector<TensorType>& in, const Attrs&) {
  const TensorType& a = in[0];
  const TensorType& b = in[1];
  infer::require_floating(a);
  infer::require_same_dtype(a, b);
  if (a.shape.size() != 2 || b.shape.size() != 2)
    throw ValueError("expects 2-D operands, got shapes " + to_string(a.shape) + " and " + to_string(b.shape));
  const auto ka = a.shape[1], kb = b.shape[0];
  if (ka != kb && ka != kDynamic && kb != kDynamic)
    throw ValueError("inner dimensions differ: " + to_string(a.shape) + " @ " + to_string(b.shape) + " (" +
                     std::to_string(ka) + " != " + std::to_string(kb) + ")");
  return {a.dtype, {a.shape[0], b.shape[1]}};
}

// How BLAS can read `t` (rows x cols) in place, if it can.
bool as_blas_operand(const Tensor& t, blas::MatrixArg& arg) {
  const auto rows = t.shape()[0], cols = t.shape()[1];
  const auto s0 = t.strides()[0], s1 = t.strides()[1];
  arg.data = t.raw_data();
  if ((cols <= 1 || s1 == 1) && (rows <= 1 || s0 >= std::max<std::int64_t>(cols, 1))) {
    arg.transposed = false;
    arg.ld = rows <= 1 ? std::max<std::int64_t>(cols, 1) : s0;
    return true;
  }
  if ((rows <= 1 || s0 == 1) && (cols <= 1 || s1 >= std::max<std::int64_t>(rows, 1))) {
    arg.transposed = true;
    arg.ld = cols <= 1 ? std::max<std::int64_t>(rows, 1) : s1;
    return true;
  }
  return false;
}

void matmul_kernel(const Tensor* const* in, Tensor& out, const Attrs&) {
  Tensor a = *in[0], b = *in[1];
  const auto m = a.shape()[0], k = a.shape()[1], n = b.shape()[1];
  if (k != b.shape()[0])
    throw ValueError("matmul: inner dimensions differ at run time: " + to_string(a.shape()) + " @ " + to_string(b.shape()));
  if (m == 0 || n == 0) return;
  if (k == 0) {
    std::memset(out.raw_data(), 0, static_cast<std::size_t>(out.numel()) * itemsize(out.dtype()));
    return;
  }
  blas::MatrixArg aa{}, bb{};
  // Views BLAS cannot read (negative or broadcast strides) are copied once.
  if (!as_blas_operand(a, aa)) { a = a.copy(); as_blas_operand(a, aa); }
  if (!as_blas_operand(b, bb)) { b = b.copy(); as_blas_operand(b, bb); }
  if (out.dtype() == DType::float32) blas::gemm_f32(m, n, k, aa, bb, out.data<float>());
  else blas::gemm_f64(m, n, k, aa, bb, out.data<double>());
}

const OpDef& matmul_op = register_op(OpDef("matmul").arity(2).infer(infer_matmul).kernel(matmul_kernel).onnx("MatMul")
    .grad([](const GradCtx& c) {
      return G{matmul(c.dy, transpose(c.x(1))), matmul(transpose(c.x(0)), c.dy)};
    }));

}  // namespace

Var matmul(Var a, Var b) { return a.graph().apply(matmul_op, {a, b}); }

}  // namespace xgrad
