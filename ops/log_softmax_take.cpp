// log_softmax_take(x, idx) = take_along_axis(log_softmax(x, 1), idx, 1) for x (N, C) and idx (N, 1): the
// log-probability of each row's target class, the heart of cross_entropy with class indices. The compiler
// forms it (autodiff/fusion.cpp) from that composite, and its gradient from the composite's gradient
//   dx = A - softmax(x) * sum(A, 1),  A = take_along_axis_grad(d, idx, x)  (d at the target, 0 elsewhere)
// so that the forward pass reads each row once and writes one number, instead of writing the (N, C)
// log-probabilities, and the backward pass writes dx in one pass instead of zero-fill, scatter, exp, sum,
// multiply and subtract. Both use log_softmax's own row arithmetic (ops/softmax_rows.h), so the forward pass
// rounds as the composite's does, and the backward pass within an ulp.
#include <cmath>

#include "core/onnx_lowering.h"
#include "ops/elementwise.h"
#include "ops/ops.h"
#include "ops/softmax_rows.h"

namespace xgrad {

namespace {

using G = std::vector<Var>;

void require_rows_and_targets(const TensorType& x, const TensorType& idx) {
  infer::require_floating(x);
  if (idx.dtype != DType::int64) throw TypeError(std::string("indices must be int64, got ") + dtype_name(idx.dtype));
  if (x.shape.size() != 2 || idx.shape.size() != 2 || idx.shape[1] != 1 ||
      (idx.shape[0] != x.shape[0] && idx.shape[0] != 1 && idx.shape[0] != kDynamic && x.shape[0] != kDynamic))
    throw ValueError("expects x (N, C) and indices (N, 1) or (1, 1), got " + to_string(x.shape) + " and " + to_string(idx.shape));
}

TensorType infer_take(const std::vector<TensorType>& in, const Attrs&) {
  require_rows_and_targets(in[0], in[1]);
  return {in[0].dtype, {in[0].shape[0], 1}};
}

TensorType infer_take_grad(const std::vector<TensorType>& in, const Attrs&) {  // (x, idx, d)
  require_rows_and_targets(in[0], in[1]);
  infer::require_same_dtype(in[0], in[2]);
  if (in[2].shape.size() != 2 || in[2].shape[1] != 1)
    throw ValueError("expects the gradient at the targets as (N, 1), got " + to_string(in[2].shape));
  return in[0];
}

// A target column; negative counts from the end (as take_along_axis does), with its error when out of range.
std::int64_t target_column(std::int64_t i, std::int64_t classes) {
  const std::int64_t r = i < 0 ? i + classes : i;
  if (r < 0 || r >= classes)
    throw ValueError("index " + std::to_string(i) + " is out of bounds for an axis of size " + std::to_string(classes));
  return r;
}

void take_kernel(const Tensor* const* in, Tensor& out, const Attrs&) {
  const Tensor x = in[0]->contiguous(), idx = in[1]->contiguous();
  const std::int64_t rows = x.shape()[0], classes = x.shape()[1];
  if (idx.shape()[0] != rows && idx.shape()[0] != 1)
    throw ValueError("indices " + to_string(idx.shape()) + " do not match the rows of " + to_string(x.shape()));
  if (rows == 0) return;
  const std::int64_t* ip = idx.data<std::int64_t>();
  const std::int64_t is = idx.shape()[0] == 1 ? 0 : 1;  // one index for every row broadcasts
  kernels::dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    T* yp = static_cast<T*>(out.raw_data());
    const std::int64_t ys = out.strides()[0];
    kernels::for_rows(rows, classes, [&](std::int64_t r) {
      const T* row = xp + r * classes;
      const std::int64_t t = target_column(ip[r * is], classes);
      const auto s = kernels::row_shift(row, classes);
      yp[r * ys] = (row[t] - s.m) - s.log_total;  // log_softmax's value at t, rounded as log_softmax rounds it
    });
  });
}

void take_grad_kernel(const Tensor* const* in, Tensor& out, const Attrs&) {
  const Tensor x = in[0]->contiguous(), idx = in[1]->contiguous(), d = in[2]->contiguous();
  const std::int64_t rows = x.shape()[0], classes = x.shape()[1];
  if ((idx.shape()[0] != rows && idx.shape()[0] != 1) || d.shape()[0] != rows)
    throw ValueError("indices " + to_string(idx.shape()) + " and gradient " + to_string(d.shape()) +
                     " do not match the rows of " + to_string(x.shape()));
  if (rows == 0) return;
  Tensor dense = out.is_contiguous() ? out : Tensor::empty(out.dtype(), out.shape());
  const std::int64_t* ip = idx.data<std::int64_t>();
  const std::int64_t is = idx.shape()[0] == 1 ? 0 : 1;
  kernels::dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    const T* dp = d.data<T>();
    T* yp = static_cast<T*>(dense.raw_data());
    kernels::for_rows(rows, classes, [&](std::int64_t r) {
      const T* row = xp + r * classes;
      T* dst = yp + r * classes;
      const std::int64_t t = target_column(ip[r * is], classes);
      const auto s = kernels::row_shift(row, classes);
      const T g = dp[r];
      kernels::row_probabilities(row, classes, s, -g, dst);  // -(p d): A is zero off the target
      dst[t] += g;  // A's one nonzero, and sum(A, 1) = d exactly
    });
  });
  if (dense.raw_data() != out.raw_data()) out.copy_from(dense);
}

std::string lower_take(OnnxLowerCtx& c) {
  const std::string log_p = c.op("LogSoftmax", {c.in(0)}, {{"axis", std::int64_t{1}}});
  if (c.in_type(1).shape[0] != 1 || c.in_type(0).shape[0] == 1)
    return c.op("GatherElements", {log_p, c.in(1)}, {{"axis", std::int64_t{1}}});
  // One index for all rows: GatherElements does not broadcast, so gather it at every column of x's shape
  // and keep the first.
  const std::string idx = c.op("Expand", {c.in(1), c.op("Shape", {c.in(0)})});
  const std::string all = c.op("GatherElements", {log_p, idx}, {{"axis", std::int64_t{1}}});
  return c.op("Slice", {all, c.ints({0}), c.ints({1}), c.ints({1})});
}

// d * (onehot(idx) - softmax(x)), the one-hot from the indices' row (negative ones counting from the end).
std::string lower_take_grad(OnnxLowerCtx& c) {
  const DType dt = c.out_type().dtype;
  const std::string depth = c.op("Slice", {c.op("Shape", {c.in(0)}), c.ints({1}), c.ints({2})});
  Tensor values = Tensor::empty(DType::float32, {2});  // ONNX Runtime's OneHot has no float64 output
  values.data<float>()[0] = 0.0f;
  values.data<float>()[1] = 1.0f;
  const std::string labels = c.op("Squeeze", {c.in(1), c.ints({1})});
  std::string hot = c.op("OneHot", {labels, depth, c.constant(values)}, {{"axis", std::int64_t{-1}}});
  if (dt != DType::float32) hot = c.cast(hot, dt);
  const std::string p = c.op("Softmax", {c.in(0)}, {{"axis", std::int64_t{1}}});
  return c.op("Mul", {c.in(2), c.op("Sub", {hot, p})});
}

const OpDef& take_grad_op = register_op(OpDef("log_softmax_take_grad").validates_values().arity(3).infer(infer_take_grad)
    .kernel(take_grad_kernel).onnx(lower_take_grad)
    .grad([](const GradCtx& c) {
      // out = d (onehot - s), s = softmax(x): d/dx <G, out> = -(J_s (G d)), d/dd = sum(G (onehot - s), 1)
      const Var s = softmax(c.x(0), 1);
      const Var h = c.dy * c.x(2);
      const Var dx = -(s * (h - sum(h * s, {1}, true)));
      const Var dd = take_along_axis(c.dy, c.x(1), 1) - sum(c.dy * s, {1}, true);
      return G{dx, Var(), dd};
    }));

const OpDef& take_op = register_op(OpDef("log_softmax_take").validates_values().arity(2).infer(infer_take)
    .kernel(take_kernel).onnx(lower_take)
    .grad([](const GradCtx& c) { return G{c.x(0).graph().apply(take_grad_op, {c.x(0), c.x(1), c.dy}), Var()}; }));

}  // namespace

Var log_softmax_take(Var x, Var indices) { return x.graph().apply(take_op, {x, indices}); }
Var log_softmax_take_grad(Var x, Var indices, Var d) { return x.graph().apply(take_grad_op, {x, indices, d}); }

}  // namespace xgrad
