// Importers for ONNX's elementwise, reduction, shape and matrix ops.
#include <cmath>
#include <numeric>

#include "io/onnx_import.h"

namespace xgrad::io {

namespace {

using Fn = Var (*)(Var);
using Fn2 = Var (*)(Var, Var);

ImportFn unary(Fn f) {
  return [f](ImportCtx& c) { return one(f(c.in(0))); };
}

// Opsets 1-6 broadcast only with broadcast=1: b's dims line up with a's from `axis` on (default: a's last
// dims) and its missing trailing dims act as ones; without the attribute the shapes must already agree.
// Onto numpy broadcasting: b gets those trailing unit axes.
Var legacy_broadcast(ImportCtx& c, const Var& a, const Var& b) {
  if (c.opset >= 7 || !c.attr_int("broadcast", 0)) return b;
  const std::int64_t ra = rank_of(a), rb = rank_of(b);
  std::int64_t axis = c.attr_int("axis", ra - rb);
  if (axis < 0) axis += ra;
  if (axis < 0 || axis + rb > ra)
    c.fail("broadcast axis " + std::to_string(c.attr_int("axis", ra - rb)) + " does not fit B " + to_string(b.shape()) +
           " into A " + to_string(a.shape()));
  Axes trailing;
  for (std::int64_t k = rb; k < ra - axis; ++k) trailing.push_back(k);
  return trailing.empty() ? b : unsqueeze(b, trailing);
}

ImportFn binary(Fn2 f) {
  return [f](ImportCtx& c) { return one(f(c.in(0), legacy_broadcast(c, c.in(0), c.in(1)))); };
}
// Max / Min / Sum / Mean take any number of inputs.
ImportFn variadic(Fn2 f, bool mean = false) {
  return [f, mean](ImportCtx& c) {
    Var acc = c.in(0);
    for (std::size_t k = 1; k < c.n_inputs(); ++k) acc = f(acc, c.in(k));
    if (mean && c.n_inputs() > 1) acc = acc / static_cast<double>(c.n_inputs());
    return one(acc);
  };
}

Var constant_of(ImportCtx& c, const Tensor& value) { return c.g.constant(value); }

// Axes from the attribute (older opsets) or the optional input (newer ones).
std::optional<Axes> reduce_axes_of(ImportCtx& c, bool axes_as_input) {
  if (axes_as_input) {
    if (c.has_input(1)) {
      Axes a = c.const_ints(1);
      if (!a.empty()) return a;
    }
  } else if (c.has_attr("axes")) {
    return c.attr_ints("axes");
  }
  if (c.attr_int("noop_with_empty_axes", 0)) return std::nullopt;
  return Axes{};
}

ImportFn reduce(Var (*f)(Var, const Axes&, bool), std::int64_t axes_input_since) {
  return [f, axes_input_since](ImportCtx& c) {
    const auto axes = reduce_axes_of(c, c.opset >= axes_input_since);
    if (!axes) return one(c.in(0));
    return one(f(c.in(0), *axes, c.attr_int("keepdims", 1) != 0));
  };
}

// The reductions ONNX adds on top of sum: each a sum (or logsumexp) of a transformed input.
Var sum_square(Var x, const Axes& axes, bool keep) { return sum(square(x), axes, keep); }
Var l1_norm(Var x, const Axes& axes, bool keep) { return sum(abs(x), axes, keep); }
Var l2_norm(Var x, const Axes& axes, bool keep) { return sqrt(sum(square(x), axes, keep)); }
Var log_sum(Var x, const Axes& axes, bool keep) { return log(sum(x, axes, keep)); }

// select_last_index: the first hit in the reversed axis, counted from the end.
ImportFn arg_reduce(Var (*f)(Var, std::optional<std::int64_t>, bool)) {
  return [f](ImportCtx& c) {
    const Var x = c.in(0);
    const std::int64_t rank = rank_of(x);
    const std::int64_t axis = normalize_axis(c.attr_int("axis", 0), std::max<std::int64_t>(rank, 1), "ArgMax");
    const bool keep = c.attr_int("keepdims", 1) != 0;
    if (!c.attr_int("select_last_index", 0) || rank == 0) return one(f(x, axis, keep));
    const std::int64_t n = x.shape()[axis];
    if (n == kDynamic) c.fail("select_last_index needs a static size along the axis");
    Axes starts(rank, 0), stops(rank, kSliceEnd), steps(rank, 1);
    starts[axis] = -1;
    stops[axis] = INT64_MIN;
    steps[axis] = -1;
    const Var reversed = f(slice(x, starts, stops, steps), axis, keep);
    return one(astype(static_cast<double>(n - 1) - astype(reversed, DType::float64), DType::int64));
  };
}

// Before opset 13 Softmax worked on the input flattened to 2-D at `axis`.
ImportFn softmax_like(Var (*f)(Var, std::int64_t)) {
  return [f](ImportCtx& c) {
    const Var x = c.in(0);
    const std::int64_t rank = rank_of(x);
    const std::int64_t axis = normalize_axis(c.attr_int("axis", c.opset >= 13 ? -1 : 1), std::max<std::int64_t>(rank, 1), "softmax");
    if (c.opset >= 13 || axis == rank - 1) return one(f(x, axis));
    Shape flat{1, 1};
    for (std::int64_t d = 0; d < rank; ++d) {
      auto& part = flat[d < axis ? 0 : 1];
      part = (part == kDynamic || x.shape()[d] == kDynamic) ? kDynamic : part * x.shape()[d];
    }
    if (flat[0] == kDynamic && flat[1] == kDynamic) c.fail("cannot flatten a tensor with symbolic dims on both sides of the axis");
    if (flat[0] == kDynamic) flat[0] = -1;
    if (flat[1] == kDynamic) flat[1] = -1;
    return one(reshape_like(f(reshape(x, flat), 1), x));
  };
}

Imported import_cast(ImportCtx& c) {
  const DType to = dtype_from_onnx(static_cast<int>(c.attr_int("to", 0)), "Cast target");
  return one(astype(c.in(0), to));
}

Imported import_constant(ImportCtx& c) {
  if (const auto* t = c.attr_tensor("value")) return one(constant_of(c, from_proto(*t, "Constant value")));
  for (const char* name : {"value_float", "value_int"}) {
    if (!c.has_attr(name)) continue;
    const bool is_float = std::string(name) == "value_float";
    return one(constant_of(c, Tensor::full(is_float ? DType::float32 : DType::int64, {},
                                           is_float ? c.attr_float(name, 0) : static_cast<double>(c.attr_int(name, 0)))));
  }
  if (c.has_attr("value_ints")) {
    const Axes v = c.attr_ints("value_ints");
    Tensor t = Tensor::empty(DType::int64, {static_cast<std::int64_t>(v.size())});
    std::copy(v.begin(), v.end(), static_cast<std::int64_t*>(t.raw_data()));
    return one(constant_of(c, t));
  }
  c.fail("only tensor, float and int constants are supported");
}

Imported import_flatten(ImportCtx& c) {
  const Var x = c.in(0);
  const std::int64_t rank = rank_of(x);
  std::int64_t axis = c.attr_int("axis", 1);
  if (axis < 0) axis += rank;
  if (axis < 0 || axis > rank) c.fail("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  Shape flat{1, 1};
  bool dyn[2] = {false, false};
  for (std::int64_t d = 0; d < rank; ++d) {
    if (x.shape()[d] == kDynamic) dyn[d >= axis] = true;
    else flat[d >= axis] *= x.shape()[d];
  }
  if (dyn[0] && dyn[1]) c.fail("cannot flatten symbolic dims on both sides of the axis");
  if (dyn[0]) flat[0] = -1;
  if (dyn[1]) flat[1] = -1;
  return one(reshape(x, flat));
}

Axes axes_input_or_attr(ImportCtx& c, std::int64_t input_since) {
  if (c.opset >= input_since) return c.has_input(1) ? c.const_ints(1) : Axes{};
  return c.attr_ints("axes");
}

Imported import_unsqueeze(ImportCtx& c) { return one(unsqueeze(c.in(0), axes_input_or_attr(c, 13))); }

Imported import_squeeze(ImportCtx& c) {
  const Var x = c.in(0);
  Axes axes = axes_input_or_attr(c, 13);
  if (axes.empty())
    for (std::size_t d = 0; d < x.shape().size(); ++d)
      if (x.shape()[d] == 1) axes.push_back(static_cast<std::int64_t>(d));
  return one(squeeze(x, axes));
}

Imported import_transpose(ImportCtx& c) { return one(transpose(c.in(0), c.attr_ints("perm"))); }

Imported import_concat(ImportCtx& c) {
  std::vector<Var> xs;
  for (std::size_t k = 0; k < c.n_inputs(); ++k) xs.push_back(c.in(k));
  return one(xs.size() == 1 ? xs[0] : concat(xs, c.attr_int("axis", 0)));
}

Imported import_slice(ImportCtx& c) {
  const Var x = c.in(0);
  const std::int64_t rank = rank_of(x);
  Axes starts, ends, axes, steps;
  if (c.opset < 10) {
    starts = c.attr_ints("starts");
    ends = c.attr_ints("ends");
    axes = c.attr_ints("axes");
  } else {
    if (c.has_input(3)) axes = c.const_ints(3);
    if (c.has_input(4)) steps = c.const_ints(4);
    if (!c.is_constant(1) || !c.is_constant(2)) {  // bounds computed from shapes: a gather the plan resolves
      const Var starts_in = c.shape_input(1), ends_in = c.shape_input(2);
      if (starts_in.shape().size() != 1 || starts_in.shape()[0] == kDynamic) c.fail("starts must be 1-D of static length");
      const auto n = static_cast<std::size_t>(starts_in.shape()[0]);
      if (axes.empty())
        for (std::size_t i = 0; i < n; ++i) axes.push_back(static_cast<std::int64_t>(i));
      if (steps.empty()) steps.assign(n, 1);
      return one(slice(x, starts_in, ends_in, axes, steps));
    }
    starts = c.const_ints(1);
    ends = c.const_ints(2);
  }
  if (axes.empty())
    for (std::size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<std::int64_t>(i));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (starts.size() != ends.size() || axes.size() != starts.size() || steps.size() != starts.size())
    c.fail("starts, ends, axes and steps differ in length");
  Axes s(rank, 0), e(rank, kSliceEnd), st(rank, 1);
  std::vector<bool> seen(static_cast<std::size_t>(rank), false);
  for (std::size_t i = 0; i < axes.size(); ++i) {
    const auto d = normalize_axis(axes[i], rank, "Slice");
    if (seen[static_cast<std::size_t>(d)]) c.fail("axis " + std::to_string(d) + " is given twice in axes " + to_string(axes));
    seen[static_cast<std::size_t>(d)] = true;
    st[d] = steps[i];
    s[d] = starts[i];
    e[d] = ends[i];  // ONNX clamps bounds as Python slices do
  }
  return one(slice(x, s, e, st));
}

Imported import_split(ImportCtx& c) {
  const Var x = c.in(0);
  const std::int64_t axis = normalize_axis(c.attr_int("axis", 0), rank_of(x), "Split");
  Axes sizes = c.opset >= 13 ? (c.has_input(1) ? c.const_ints(1) : Axes{}) : c.attr_ints("split");
  if (sizes.empty()) {
    const std::int64_t n = x.shape()[axis];
    const auto parts = static_cast<std::int64_t>(c.node.output_size());
    if (n == kDynamic) c.fail("an equal split of a symbolic dim is not supported");
    if (n % parts) c.fail("dim " + std::to_string(n) + " does not split into " + std::to_string(parts) + " equal parts");
    sizes.assign(parts, n / parts);
  }
  return {split(x, sizes, axis), {}};
}

Imported import_pad(ImportCtx& c) {
  const std::string mode = c.attr_string("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge")
    c.fail("pad mode '" + mode + "' is not supported (constant, reflect and edge are)");
  const Var x = c.in(0);
  const Axes onnx_pads = c.opset >= 11 ? c.const_ints(1) : c.attr_ints("pads");
  const double value = c.opset >= 11 ? (c.has_input(2) ? c.const_scalar(2) : 0.0) : c.attr_float("value", 0.0);
  const auto rank = static_cast<std::size_t>(rank_of(x));
  if (onnx_pads.size() != 2 * rank) c.fail("pads must hold 2 values per axis");
  Axes begin(onnx_pads.begin(), onnx_pads.begin() + rank), end(onnx_pads.begin() + rank, onnx_pads.end());
  // Negative pads crop.
  Axes s(rank, 0), e(rank, kSliceEnd), st(rank, 1), pads(2 * rank);
  bool crop = false;
  for (std::size_t d = 0; d < rank; ++d) {
    if (begin[d] < 0) s[d] = -begin[d], crop = true;
    if (end[d] < 0) e[d] = end[d], crop = true;
    pads[2 * d] = std::max<std::int64_t>(begin[d], 0);
    pads[2 * d + 1] = std::max<std::int64_t>(end[d], 0);
  }
  const Var cropped = crop ? slice(x, s, e, st) : x;
  return one(pad(cropped, pads, value, pad_mode(mode)));
}

Imported import_clip(ImportCtx& c) {
  Var x = c.in(0);
  const bool old = c.opset < 11;
  const bool has_lo = old ? c.has_attr("min") : c.has_input(1);
  const bool has_hi = old ? c.has_attr("max") : c.has_input(2);
  if (old && (has_lo || has_hi))
    return one(clip(x, has_lo ? c.attr_float("min", 0) : -INFINITY, has_hi ? c.attr_float("max", 0) : INFINITY));
  if (has_lo && has_hi && c.is_constant(1) && c.is_constant(2) && c.const_scalar(1) <= c.const_scalar(2))
    return one(clip(x, c.const_scalar(1), c.const_scalar(2)));
  if (has_lo) x = maximum(x, c.in(1));
  if (has_hi) x = minimum(x, c.in(2));
  return one(x);
}

Imported import_pow(ImportCtx& c) {
  if (c.is_constant(1) && c.constant(1).numel() == 1 && c.constant(1).ndim() == 0 && is_floating(c.in(0).dtype()))
    return one(pow(c.in(0), c.const_scalar(1)));
  Var e = legacy_broadcast(c, c.in(0), c.in(1));
  if (e.dtype() != c.in(0).dtype()) e = astype(e, c.in(0).dtype());
  return one(pow(c.in(0), e));
}

Imported import_gemm(ImportCtx& c) {
  Var a = c.in(0), b = c.in(1);
  if (c.attr_int("transA", 0)) a = transpose(a);
  if (c.attr_int("transB", 0)) b = transpose(b);
  Var y = matmul(a, b);
  const double alpha = c.attr_float("alpha", 1.0), beta = c.attr_float("beta", 1.0);
  if (alpha != 1.0) y = y * alpha;
  if (c.has_input(2) && beta != 0.0) y = y + (beta == 1.0 ? c.in(2) : c.in(2) * beta);
  return one(y);
}

Imported import_not(ImportCtx& c) { return one(eq(astype(c.in(0), DType::float32), 0.0)); }

Imported import_reciprocal(ImportCtx& c) { return one(1.0 / c.in(0)); }

Imported import_leaky_relu(ImportCtx& c) { return one(leaky_relu(c.in(0), c.attr_float("alpha", 0.01))); }
Imported import_elu(ImportCtx& c) { return one(elu(c.in(0), c.attr_float("alpha", 1.0))); }

Imported import_where(ImportCtx& c) { return one(where(c.in(0), c.in(1), c.in(2))); }

Imported import_hard_sigmoid(ImportCtx& c) {
  return one(clip(c.in(0) * c.attr_float("alpha", 0.2) + c.attr_float("beta", 0.5), 0.0, 1.0));
}

Imported import_thresholded_relu(ImportCtx& c) {
  const Var x = c.in(0);
  return one(where(gt(x, c.attr_float("alpha", 1.0)), x, 0.0));
}

Imported import_cast_like(ImportCtx& c) { return one(astype(c.in(0), c.in(1).dtype())); }

// gamma * elu(x, alpha), ONNX's default constants (those of Klambauer et al., as float32).
Imported import_selu(ImportCtx& c) {
  const double alpha = c.attr_float("alpha", 1.67326319217681884765625);
  const double gamma = c.attr_float("gamma", 1.05070102214813232421875);
  return one(elu(c.in(0), alpha) * gamma);
}

// x + bias below -lambd, x - bias above lambd, 0 between.
Imported import_shrink(ImportCtx& c) {
  const Var x = c.in(0);
  const double lambd = c.attr_float("lambd", 0.5), bias = c.attr_float("bias", 0.0);
  return one(where(lt(x, -lambd), x + bias, where(gt(x, lambd), x - bias, 0.0)));
}

}  // namespace

void add_math_importers(ImportTable& t) {
  t["Identity"] = unary([](Var x) { return x; });
  t["Neg"] = unary(neg);
  t["Exp"] = unary(exp);
  t["Log"] = unary(log);
  t["Tanh"] = unary(tanh);
  t["Sigmoid"] = unary(sigmoid);
  t["Relu"] = unary(relu);
  t["Sqrt"] = unary(sqrt);
  t["Abs"] = unary(abs);
  t["Sign"] = unary(sign);
  t["Sin"] = unary(sin);
  t["Cos"] = unary(cos);
  t["Erf"] = unary(erf);
  t["Floor"] = unary(floor);
  t["Softplus"] = unary(softplus);
  t["Reciprocal"] = import_reciprocal;
  t["LeakyRelu"] = import_leaky_relu;
  t["Elu"] = import_elu;
  t["Clip"] = import_clip;
  t["Add"] = binary(add);
  t["Sub"] = binary(sub);
  t["Mul"] = binary(mul);
  t["Div"] = binary(div);
  t["Pow"] = import_pow;
  t["Max"] = variadic(maximum);
  t["Min"] = variadic(minimum);
  t["Sum"] = variadic(add);
  t["Mean"] = variadic(add, true);
  t["Equal"] = binary(static_cast<Fn2>(eq));
  t["Less"] = binary(static_cast<Fn2>(lt));
  t["LessOrEqual"] = binary(static_cast<Fn2>(le));
  t["Greater"] = binary(static_cast<Fn2>(gt));
  t["GreaterOrEqual"] = binary(static_cast<Fn2>(ge));
  t["Not"] = import_not;
  t["Where"] = import_where;
  t["Selu"] = import_selu;
  t["HardSigmoid"] = import_hard_sigmoid;
  t["ThresholdedRelu"] = import_thresholded_relu;
  t["CastLike"] = import_cast_like;
  t["ReduceSumSquare"] = reduce(sum_square, 18);
  t["ReduceL1"] = reduce(l1_norm, 18);
  t["ReduceL2"] = reduce(l2_norm, 18);
  t["ReduceLogSum"] = reduce(log_sum, 18);
  t["ReduceLogSumExp"] = reduce(logsumexp, 18);
  t["Shrink"] = import_shrink;
  t["ReduceSum"] = reduce(sum, 13);
  t["ReduceMean"] = reduce(mean, 18);
  t["ReduceMax"] = reduce(max, 18);
  t["ReduceMin"] = reduce(min, 18);
  t["ReduceProd"] = reduce(prod, 18);
  t["ArgMax"] = arg_reduce(argmax);
  t["ArgMin"] = arg_reduce(argmin);
  t["Softmax"] = softmax_like(softmax);
  t["LogSoftmax"] = softmax_like(log_softmax);
  t["MatMul"] = binary(matmul);
  t["Gemm"] = import_gemm;
  t["Cast"] = import_cast;
  t["Constant"] = import_constant;
  t["Flatten"] = import_flatten;
  t["Unsqueeze"] = import_unsqueeze;
  t["Squeeze"] = import_squeeze;
  t["Transpose"] = import_transpose;
  t["Concat"] = import_concat;
  t["Slice"] = import_slice;
  t["Split"] = import_split;
  t["Pad"] = import_pad;
}

const ImportTable& import_table() {
  static const ImportTable table = [] {
    ImportTable t;
    add_math_importers(t);
    add_nn_importers(t);
    add_sequence_importers(t);
    add_shape_importers(t);
    return t;
  }();
  return table;
}

}  // namespace xgrad::io
