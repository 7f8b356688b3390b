// softmax and log_softmax along an axis, computed stably (shifted by the lane max).
#include <cmath>

#include "ops/elementwise.h"
#include "core/onnx_lowering.h"
#include "ops/ops.h"
#include "ops/softmax_rows.h"

namespace xgrad {

namespace {

using G = std::vector<Var>;

TensorType infer_softmax(const std::vector<TensorType>& in, const Attrs& attrs) {
  infer::require_floating(in[0]);
  normalize_axis(attrs.get_int("axis"), static_cast<std::int64_t>(in[0].shape.size()), "softmax");
  return in[0];
}

template <bool kLog>
void softmax_kernel(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const Tensor& x = *in[0];
  const auto axis = normalize_axis(attrs.get_int("axis"), x.ndim(), "softmax");
  if (x.numel() == 0) return;
  kernels::dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const std::int64_t n = x.shape()[axis];
    if (axis == x.ndim() - 1 && x.is_contiguous() && out.is_contiguous() && n > 0) {
      // Rows in memory order: SIMD exp along each, rows split across threads.
      const T* xp = x.data<T>();
      T* yp = static_cast<T*>(out.raw_data());
      kernels::for_rows(x.numel() / n, n, [&](std::int64_t r) {
        const auto s = kernels::row_shift(xp + r * n, n);
        if (kLog) kernels::row_log_probabilities(xp + r * n, n, s, yp + r * n);
        else kernels::row_probabilities(xp + r * n, n, s, T(1), yp + r * n);
      });
      return;
    }
    kernels::for_each_lane<T>(x, out, axis, [](const T* xp, std::int64_t xs, T* yp, std::int64_t ys, std::int64_t n) {
      T m = xp[0];
      for (std::int64_t i = 1; i < n; ++i) m = std::max(m, xp[i * xs]);
      if (std::isinf(m) && m < 0) m = 0;  // a lane of -inf: exp(-inf - 0) = 0, not NaN
      double total = 0;
      for (std::int64_t i = 0; i < n; ++i) {
        const T e = std::exp(xp[i * xs] - m);
        total += e;
        if (!kLog) yp[i * ys] = e;
      }
      if (kLog) {
        // (x - m) - log(total): x - m is exact, while m + log(total) would round at large m.
        const T log_total = static_cast<T>(std::log(total));
        for (std::int64_t i = 0; i < n; ++i) yp[i * ys] = (xp[i * xs] - m) - log_total;
      } else {
        const T scale = static_cast<T>(1.0 / total);
        for (std::int64_t i = 0; i < n; ++i) yp[i * ys] *= scale;
      }
    });
  });
}

// Softmax normalizes over one axis since opset 13, as ours does.
LowerFn lower_softmax(const char* onnx_type) {
  return [onnx_type = std::string(onnx_type)](OnnxLowerCtx& c) {
    const auto axis = normalize_axis(c.attrs().get_int("axis"), static_cast<std::int64_t>(c.in_type().shape.size()), "softmax");
    return c.op(onnx_type, {c.in()}, {{"axis", axis}});
  };
}

Axes axis_of(const GradCtx& c) { return {c.attrs.get_int("axis")}; }

// d softmax: y * (dy - sum(dy * y)); d log_softmax: dy - softmax * sum(dy).
const OpDef& softmax_op = register_op(OpDef("softmax").infer(infer_softmax).kernel(softmax_kernel<false>).onnx(lower_softmax("Softmax"))
    .grad([](const GradCtx& c) { return G{c.output * (c.dy - sum(c.dy * c.output, axis_of(c), true))}; }));

const OpDef& log_softmax_op = register_op(OpDef("log_softmax").infer(infer_softmax).kernel(softmax_kernel<true>)
    .onnx(lower_softmax("LogSoftmax"))
    .grad([](const GradCtx& c) { return G{c.dy - exp(c.output) * sum(c.dy, axis_of(c), true)}; }));

}  // namespace

Var softmax(Var x, std::int64_t axis) { return x.graph().apply(softmax_op, {x}, {{"axis", axis}}); }
Var log_softmax(Var x, std::int64_t axis) { return x.graph().apply(log_softmax_op, {x}, {{"axis", axis}}); }

}  // namespace xgrad
