// adam_update(w, m, v, k, e) = w - k * m / (sqrt(v) + e): Adam's parameter step in one pass over the param
// (the moments m and v come from lerp / lerp_square, k and e are the step's bias-corrected scalars). Inside a
// tiled group the three ops of an Adam update read each element of w, g, m and v once.
#include <cmath>

#include "core/onnx_lowering.h"
#include "ops/elementwise.h"
#include "ops/ops.h"

namespace xgrad {

namespace {

TensorType infer_adam_update(const std::vector<TensorType>& in, const Attrs&) {
  for (std::size_t i = 0; i < in.size(); ++i) {
    infer::require_floating(in[i]);
    infer::require_same_dtype(in[0], in[i]);
  }
  if (in[1].shape != in[0].shape || in[2].shape != in[0].shape)
    throw ValueError("w, m and v must have one shape, got " + to_string(in[0]) + ", " + to_string(in[1]) + ", " +
                     to_string(in[2]));
  for (std::size_t i : {3u, 4u})
    if (numel(in[i].shape) != 1) throw ValueError("k and e must be single values, got " + to_string(in[i]));
  return in[0];
}

template <class T>
void adam_update_contiguous(const T* w, const T* m, const T* v, T k, T e, T* out, std::int64_t n) {
  using B = xsimd::batch<T>;
  constexpr std::int64_t lanes = B::size;
  const B kb(k), eb(e);
  std::int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const B den = xsimd::sqrt(B::load_unaligned(v + i)) + eb;
    (B::load_unaligned(w + i) - kb * (B::load_unaligned(m + i) / den)).store_unaligned(out + i);
  }
  for (; i < n; ++i) out[i] = w[i] - k * (m[i] / (std::sqrt(v[i]) + e));
}

// Tiles: w, m and v are tile pointers (or, for an operand of one element, that element), k and e single values.
void adam_update_span(const void* const* in, const bool* scalar, void* out, std::int64_t n, DType dtype, const Attrs&) {
  kernels::dispatch_floating(dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* w = static_cast<const T*>(in[0]);
    const T* m = static_cast<const T*>(in[1]);
    const T* v = static_cast<const T*>(in[2]);
    const T k = *static_cast<const T*>(in[3]), e = *static_cast<const T*>(in[4]);
    T* y = static_cast<T*>(out);
    if (!scalar[0] && !scalar[1] && !scalar[2]) return adam_update_contiguous(w, m, v, k, e, y, n);
    for (std::int64_t i = 0; i < n; ++i) {  // params of one element
      const T wi = w[scalar[0] ? 0 : i], mi = m[scalar[1] ? 0 : i], vi = v[scalar[2] ? 0 : i];
      y[i] = wi - k * (mi / (std::sqrt(vi) + e));
    }
  });
}

void adam_update_kernel(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  // Outside a tiled group (small params): the same loop over whole, contiguous operands.
  Tensor c[5];
  const void* ptr[5];
  bool scalar[5];
  for (int i = 0; i < 5; ++i) {
    c[i] = in[i]->is_contiguous() ? *in[i] : in[i]->copy();
    ptr[i] = c[i].raw_data();
    scalar[i] = i >= 3;
  }
  adam_update_span(ptr, scalar, out.raw_data(), out.numel(), out.dtype(), attrs);
}

std::string lower_adam_update(OnnxLowerCtx& c) {
  const std::string den = c.op("Add", {c.op("Sqrt", {c.in(2)}), c.in(4)});
  return c.op("Sub", {c.in(0), c.op("Mul", {c.in(3), c.op("Div", {c.in(1), den})})});
}

const OpDef& adam_update_op = register_op(OpDef("adam_update").arity(5).infer(infer_adam_update).kernel(adam_update_kernel)
    .span(adam_update_span).onnx(lower_adam_update)
    .grad([](const GradCtx& c) {
      const Var& m = c.x(1);
      const Var& v = c.x(2);
      const Var& k = c.x(3);
      const Var root = sqrt(v);
      const Var den = root + c.x(4);
      const Var ratio = m / den;
      const Var dk = reshape_like(sum(-(c.dy * ratio)), k);
      const Var de = reshape_like(sum(c.dy * ratio / den), c.x(4)) * k;  // d/de of -k m / (sqrt(v) + e)
      return std::vector<Var>{c.dy, -(c.dy * k / den), c.dy * k * ratio / (den * root * 2.0), dk, de};
    }));

}  // namespace

Var adam_update(Var w, Var m, Var v, Var k, Var e) { return w.graph().apply(adam_update_op, {w, m, v, k, e}); }

}  // namespace xgrad
