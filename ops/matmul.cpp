// Matrix products with numpy semantics through BLAS. Operands of rank >= 2
// multiply their last two axes and broadcast the leading (batch) axes; 1-D
// operands are promoted by the builder with views. Transposed operands
// arrive as views (strides swapped) and go to BLAS as transpose flags.
#include <algorithm>
#include <cstring>

#include "ops/elementwise.h"
#include "ops/gemm.h"
#include "ops/ops.h"

namespace xgrad {

namespace {

using G = std::vector<Var>;
using blas::batch_of;

TensorType infer_matmul(const std::vector<TensorType>& in, const Attrs&) {
  const TensorType& a = in[0];
  const TensorType& b = in[1];
  infer::require_floating(a);
  infer::require_same_dtype(a, b);
  if (a.shape.size() < 2 || b.shape.size() < 2)
    throw ValueError("expects operands of rank >= 2, got shapes " + to_string(a.shape) + " and " + to_string(b.shape));
  const auto ka = a.shape.back(), kb = b.shape[b.shape.size() - 2];
  if (ka != kb && ka != kDynamic && kb != kDynamic)
    throw ValueError("inner dimensions differ: " + to_string(a.shape) + " @ " + to_string(b.shape) + " (" +
                     std::to_string(ka) + " != " + std::to_string(kb) + ")");
  Shape out;
  try {
    out = broadcast_shapes(batch_of(a.shape), batch_of(b.shape));
  } catch (const ValueError&) {
    throw ValueError("batch dimensions of " + to_string(a.shape) + " and " + to_string(b.shape) + " do not broadcast");
  }
  out.push_back(a.shape[a.shape.size() - 2]);
  out.push_back(b.shape.back());
  return {a.dtype, out};
}

void matmul_kernel(const Tensor* const* in, Tensor& out, const Attrs&) {
  blas::for_each_gemm(*in[0], *in[1], out, false, [&](const blas::GemmCall& g) {
    if (out.dtype() == DType::float32) blas::gemm_f32(g.m, g.n, g.k, g.a, g.b, static_cast<float*>(g.c));
    else blas::gemm_f64(g.m, g.n, g.k, g.a, g.b, static_cast<double*>(g.c));
  });
}

// Swaps the last two axes (a view).
Var transpose_last2(Var x) {
  Axes perm;
  const auto r = static_cast<std::int64_t>(x.shape().size());
  for (std::int64_t i = 0; i < r - 2; ++i) perm.push_back(i);
  perm.push_back(r - 1);
  perm.push_back(r - 2);
  return transpose(x, perm);
}

const OpDef& matmul_op = register_op(OpDef("matmul").arity(2).infer(infer_matmul).kernel(matmul_kernel).kernel_note(blas::matmul_note).onnx("MatMul")
    .grad([](const GradCtx& c) {
      return G{sum_to_like(matmul(c.dy, transpose_last2(c.x(1))), c.x(0)),
               sum_to_like(matmul(transpose_last2(c.x(0)), c.dy), c.x(1))};
    }));

}  // namespace

Var matmul(Var a, Var b) {
  const bool a_vec = a.shape().size() == 1, b_vec = b.shape().size() == 1;
  if (a.shape().empty() || b.shape().empty())
    throw ValueError("matmul: operands must have rank >= 1, got shapes " + to_string(a.shape()) + " and " +
                     to_string(b.shape()));
  // numpy: a vector on the left is a row, on the right a column; the added axis is removed again.
  Var y = a.graph().apply(matmul_op, {a_vec ? unsqueeze(a, {0}) : a, b_vec ? unsqueeze(b, {1}) : b});
  if (a_vec && b_vec) return squeeze(y, {-2, -1});
  if (a_vec) return squeeze(y, {-2});
  if (b_vec) return squeeze(y, {-1});
  return y;
}

}  // namespace xgrad
