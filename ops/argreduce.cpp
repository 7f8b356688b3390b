// argmax / argmin: int64 indices, not differentiable.
#include <limits>

#include "ops/elementwise.h"
#include "core/onnx_lowering.h"
#include "ops/ops.h"

namespace xgrad {

namespace {

// axes attr: [] for the flattened tensor, else [axis].
TensorType infer_arg(const std::vector<TensorType>& in, const Attrs& attrs) {
  const Shape& s = in[0].shape;
  const Axes& axes = attrs.get_ints("axes");
  const bool keepdims = attrs.get_int("keepdims") != 0;
  if (in[0].dtype == DType::bool_) throw TypeError("expects a numeric input, got bool");
  if (axes.empty()) {
    if (numel(s) == 0) throw ValueError("attempt to get the index of an empty sequence");
    return {DType::int64, keepdims ? Shape(s.size(), 1) : Shape{}};
  }
  const auto axis = normalize_axis(axes[0], static_cast<std::int64_t>(s.size()), "arg reduction");
  if (s[axis] == 0) throw ValueError("attempt to get the index of an empty axis");
  Shape out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (static_cast<std::int64_t>(i) != axis) out.push_back(s[i]);
    else if (keepdims) out.push_back(1);
  }
  return {DType::int64, out};
}

// For each position of out, scans `n` elements `step` apart; the first extreme wins, NaN beats all.
template <bool kMax>
void arg_kernel(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  Tensor x = *in[0];
  std::int64_t axis;
  if (attrs.get_ints("axes").empty()) {
    x = x.contiguous().reshape({-1});
    axis = 0;
  } else {
    axis = normalize_axis(attrs.get_ints("axes")[0], x.ndim(), "arg reduction");
  }
  const std::int64_t n = x.shape()[axis], step = x.strides()[axis];
  if (n == 0) throw ValueError("attempt to get the index of an empty axis");
  Shape outer = x.shape();
  outer[axis] = 1;  // walk every other axis; the scan covers this one
  const Strides out_strides = broadcast_strides(outer, contiguous_strides(outer), outer);
  std::int64_t* yp = out.data<std::int64_t>();
  kernels::dispatch_numeric(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = static_cast<const T*>(x.raw_data());
    strided_loop<2>(outer, {&out_strides, &x.strides()}, [&](std::int64_t cnt, const auto& off, const auto& st) {
      for (std::int64_t i = 0; i < cnt; ++i) {
        const T* p = xp + off[1] + i * st[1];
        std::int64_t best = 0;
        T best_v = p[0];
        // The first NaN wins, as in numpy (integers and bools have none).
        auto is_nan = [](T v) {
          if constexpr (std::is_floating_point_v<T>) return v != v;
          else return false;
        };
        for (std::int64_t k = 1; k < n && !is_nan(best_v); ++k) {
          const T v = p[k * step];
          if (is_nan(v) || (kMax ? v > best_v : v < best_v)) {
            best = k;
            best_v = v;
          }
        }
        yp[off[0] + i * st[0]] = best;
      }
    });
  });
}

// No axis means the flattened array, as in numpy.
LowerFn lower_arg(const char* onnx_type) {
  return [onnx_type = std::string(onnx_type)](OnnxLowerCtx& c) {
    const auto& axes = c.attrs().get_ints("axes");
    const std::int64_t keep = c.attrs().get_int("keepdims");
    if (!axes.empty()) return c.op(onnx_type, {c.in()}, {{"axis", axes[0]}, {"keepdims", keep}});
    const std::string flat = c.op(onnx_type, {c.op("Reshape", {c.in(), c.ints({-1})})}, {{"axis", std::int64_t{0}}, {"keepdims", std::int64_t{0}}});
    if (!keep) return flat;
    return c.op("Reshape", {flat, c.ints(std::vector<std::int64_t>(c.in_type().shape.size(), 1))});
  };
}

OpDef arg_op(const char* name, KernelFn kernel, LowerFn onnx) {
  return OpDef(name).infer(infer_arg).kernel(kernel).onnx(onnx).not_differentiable("an index is piecewise constant");
}

const OpDef& argmax_op = register_op(arg_op("argmax", arg_kernel<true>, lower_arg("ArgMax")));
const OpDef& argmin_op = register_op(arg_op("argmin", arg_kernel<false>, lower_arg("ArgMin")));

Attrs arg_attrs(std::optional<std::int64_t> axis, bool keepdims) {
  return {{"axes", axis ? Axes{*axis} : Axes{}}, {"keepdims", std::int64_t{keepdims}}};
}

}  // namespace

Var argmax(Var x, std::optional<std::int64_t> axis, bool keepdims) { return x.graph().apply(argmax_op, {x}, arg_attrs(axis, keepdims)); }
Var argmin(Var x, std::optional<std::int64_t> axis, bool keepdims) { return x.graph().apply(argmin_op, {x}, arg_attrs(axis, keepdims)); }

}  // namespace xgrad
