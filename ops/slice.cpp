// Basic slicing (a view, any steps) and concatenation, with the ops their
// gradients need: slice_grad writes dy into zeros of the source's shape, and
// concat_part views one input's share of a concatenation's gradient.
#include <cstring>

#include "core/onnx_lowering.h"
#include "ops/elementwise.h"
#include "ops/ops.h"

namespace xgrad {

namespace {

using G = std::vector<Var>;

struct SliceAttrs {
  const Axes& starts;
  const Axes& stops;
  const Axes& steps;
};
SliceAttrs slice_attrs(const Attrs& a) { return {a.get_ints("starts"), a.get_ints("stops"), a.get_ints("steps")}; }

Shape sliced_shape(const Shape& in, const Attrs& a) {
  const SliceAttrs s = slice_attrs(a);
  if (s.starts.size() != in.size() || s.stops.size() != in.size() || s.steps.size() != in.size())
    throw ValueError("slice bounds for " + std::to_string(s.starts.size()) + " axes given for rank " +
                     std::to_string(in.size()));
  Shape out(in.size());
  for (std::size_t d = 0; d < in.size(); ++d) {
    if (s.steps[d] == 0) throw ValueError("slice step cannot be zero");
    out[d] = in[d] == kDynamic ? kDynamic : resolve_slice(in[d], s.starts[d], s.stops[d], s.steps[d]).length;
  }
  return out;
}

Tensor slice_view(const Tensor& x, const Attrs& a) {
  const SliceAttrs s = slice_attrs(a);
  Tensor t = x;
  for (std::int64_t d = 0; d < x.ndim(); ++d)
    if (s.starts[d] != 0 || s.stops[d] != kSliceEnd || s.steps[d] != 1) t = t.slice(d, s.starts[d], s.stops[d], s.steps[d]);
  return t;
}

// in: dy, like. out (like's shape) = 0 except the sliced region, which holds dy.
void slice_grad_kernel(const Tensor* const* in, Tensor& out, const Attrs& a) {
  out.fill_zero();
  slice_view(out, a).copy_from(*in[0]);
}

// ONNX clamps out-of-range bounds exactly as our (Python) slices do.
std::string lower_slice(OnnxLowerCtx& c) {
  const SliceAttrs s = slice_attrs(c.attrs());
  Axes starts, ends, axes, steps;
  for (std::size_t d = 0; d < s.starts.size(); ++d) {
    if (s.starts[d] == 0 && s.stops[d] == kSliceEnd && s.steps[d] == 1) continue;
    starts.push_back(s.starts[d]);
    ends.push_back(s.stops[d]);
    axes.push_back(static_cast<std::int64_t>(d));
    steps.push_back(s.steps[d]);
  }
  if (axes.empty()) return c.op("Identity", {c.in()});
  return c.op("Slice", {c.in(), c.ints(starts), c.ints(ends), c.ints(axes), c.ints(steps)});
}

// dy scattered into zeros of like's shape: Pad for unit steps (a symbolic
// dim is fine on an axis the slice keeps whole), otherwise ScatterND with the
// positions computed here, which needs the whole shape static.
std::string lower_slice_grad(OnnxLowerCtx& c) {
  const Shape& full = c.out_type().shape;
  const SliceAttrs s = slice_attrs(c.attrs());
  const auto rank = full.size();
  bool unit = true;
  for (std::size_t d = 0; d < rank; ++d) unit = unit && s.steps[d] == 1;
  auto whole = [&](std::size_t d) { return s.starts[d] == 0 && s.stops[d] == kSliceEnd && s.steps[d] == 1; };
  for (std::size_t d = 0; d < rank; ++d)
    if (full[d] == kDynamic && (!unit || !whole(d)))
      throw ValueError("slice_grad lowers a symbolic dim only on an axis the slice keeps whole");
  std::vector<SliceSpan> spans;
  for (std::size_t d = 0; d < rank; ++d)
    spans.push_back(whole(d) ? SliceSpan{0, full[d]} : resolve_slice(full[d], s.starts[d], s.stops[d], s.steps[d]));
  if (unit) {
    Axes pads(2 * rank, 0);
    for (std::size_t d = 0; d < rank; ++d) {
      if (whole(d)) continue;
      pads[d] = spans[d].length ? spans[d].start : full[d];
      pads[rank + d] = full[d] - pads[d] - spans[d].length;
    }
    return c.op("Pad", {c.in(), c.ints(pads), c.scalar(0)});
  }
  Shape dy_shape;
  for (const auto& sp : spans) dy_shape.push_back(sp.length);
  Shape idx_shape = dy_shape;
  idx_shape.push_back(static_cast<std::int64_t>(rank));
  Tensor idx = Tensor::empty(DType::int64, idx_shape);
  auto* p = static_cast<std::int64_t*>(idx.raw_data());
  const std::int64_t count = numel(dy_shape);
  for (std::int64_t flat = 0; flat < count; ++flat) {
    std::int64_t rest = flat;
    for (std::size_t d = rank; d-- > 0;) {
      const std::int64_t i = rest % dy_shape[d];
      rest /= dy_shape[d];
      p[flat * static_cast<std::int64_t>(rank) + static_cast<std::int64_t>(d)] = spans[d].start + i * s.steps[d];
    }
  }
  const std::string zeros = c.op("Expand", {c.scalar(0), c.ints(full)});
  return c.op("ScatterND", {zeros, c.constant(idx), c.in()});
}

const OpDef& slice_grad_op = register_op(OpDef("slice_grad").arity(2).kernel(slice_grad_kernel).any_device().onnx(lower_slice_grad)
    .infer([](const std::vector<TensorType>& in, const Attrs&) { return TensorType{in[0].dtype, in[1].shape}; })
    .grad([](const GradCtx& c) { return G{c.dy.graph().apply(find_op("slice"), {c.dy}, c.attrs), Var()}; }));

const OpDef& slice_op = register_op(OpDef("slice").onnx(lower_slice)
    .infer([](const std::vector<TensorType>& in, const Attrs& a) { return TensorType{in[0].dtype, sliced_shape(in[0].shape, a)}; })
    .view([](const Tensor* const* in, const Shape&, const Attrs& a) { return slice_view(*in[0], a); })
    .grad([](const GradCtx& c) { return G{c.dy.graph().apply(slice_grad_op, {c.dy, c.x()}, c.attrs)}; }));

// ---- concat ----

std::int64_t concat_axis(const Attrs& a, std::size_t rank) {
  return normalize_axis(a.get_int("axis"), static_cast<std::int64_t>(rank), "concat");
}

TensorType infer_concat(const std::vector<TensorType>& in, const Attrs& a) {
  if (in.empty()) throw ValueError("needs at least one input");
  const Shape& first = in[0].shape;
  if (first.empty()) throw ValueError("cannot concatenate scalars (use stack)");
  const auto axis = concat_axis(a, first.size());
  Shape out = first;
  for (std::size_t i = 1; i < in.size(); ++i) {
    infer::require_same_dtype(in[0], in[i]);
    const Shape& s = in[i].shape;
    if (s.size() != first.size())
      throw ValueError("input " + std::to_string(i) + " has rank " + std::to_string(s.size()) + ", not " +
                       std::to_string(first.size()));
    for (std::size_t d = 0; d < s.size(); ++d) {
      if (static_cast<std::int64_t>(d) == axis) {
        out[d] = (out[d] == kDynamic || s[d] == kDynamic) ? kDynamic : out[d] + s[d];
      } else if (s[d] != first[d] && s[d] != kDynamic && first[d] != kDynamic) {
        throw ValueError("shapes " + to_string(first) + " and " + to_string(s) + " differ outside axis " +
                         std::to_string(axis));
      }
    }
  }
  return {in[0].dtype, out};
}

void concat_kernel(const Tensor* const* in, Tensor& out, const Attrs& a) {
  const auto axis = concat_axis(a, out.shape().size());
  const auto n = static_cast<std::size_t>(a.get_int("count"));
  std::int64_t offset = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t len = in[i]->shape()[axis];
    out.slice(axis, offset, offset + len).copy_from(*in[i]);
    offset += len;
  }
}

// in: dy, then every concatenated input. out: input `index`'s part of dy, a view.
Tensor concat_part_view(const Tensor* const* in, const Shape&, const Attrs& a) {
  const auto axis = concat_axis(a, in[0]->shape().size());
  const auto index = a.get_int("index");
  std::int64_t offset = 0;
  for (std::int64_t i = 0; i < index; ++i) offset += in[1 + i]->shape()[axis];
  return in[0]->slice(axis, offset, offset + in[1 + index]->shape()[axis]);
}

// Input `index`'s part of dy: a Slice whose bounds add up the sizes before it.
std::string lower_concat_part(OnnxLowerCtx& c) {
  const auto axis = concat_axis(c.attrs(), c.in_type().shape.size());
  const auto index = static_cast<std::size_t>(c.attrs().get_int("index"));
  auto size_of = [&](std::size_t input) {
    const std::int64_t d = c.in_type(input).shape[axis];
    return d != kDynamic ? c.ints({d}) : c.op("Gather", {c.op("Shape", {c.in(input)}), c.ints({axis})});
  };
  std::string start = c.ints({0});
  for (std::size_t i = 0; i < index; ++i) start = c.op("Add", {start, size_of(1 + i)});
  const std::string end = c.op("Add", {start, size_of(1 + index)});
  return c.op("Slice", {c.in(), start, end, c.ints({axis})});
}

std::string lower_concat(OnnxLowerCtx& c) {
  return c.op("Concat", c.ins(), {{"axis", concat_axis(c.attrs(), c.out_type().shape.size())}});
}

const OpDef& concat_part_op = register_op(OpDef("concat_part").arity(-1).onnx(lower_concat_part).view(concat_part_view)
    .infer([](const std::vector<TensorType>& in, const Attrs& a) {
      return TensorType{in[0].dtype, in.at(1 + static_cast<std::size_t>(a.get_int("index"))).shape};
    })
    .grad([](const GradCtx& c) {
      // The part's gradient sits at its place among zeros for the other parts.
      const auto index = static_cast<std::size_t>(c.attrs.get_int("index"));
      std::vector<Var> parts;
      for (std::size_t i = 1; i < c.inputs.size(); ++i) parts.push_back(i - 1 == index ? c.dy : zeros_like(c.inputs[i]));
      std::vector<Var> grads(c.inputs.size());
      grads[0] = concat(parts, c.attrs.get_int("axis"));
      return grads;
    }));

const OpDef& concat_op = register_op(OpDef("concat").arity(-1).infer(infer_concat).kernel(concat_kernel).any_device().onnx(lower_concat)
    .grad([](const GradCtx& c) {
      std::vector<Var> with_dy{c.dy};
      with_dy.insert(with_dy.end(), c.inputs.begin(), c.inputs.end());
      std::vector<Var> grads;
      for (std::size_t i = 0; i < c.inputs.size(); ++i)
        grads.push_back(c.dy.graph().apply(concat_part_op, with_dy,
                                           {{"axis", c.attrs.get_int("axis")}, {"index", static_cast<std::int64_t>(i)}}));
      return grads;
    }));

// ---- pad ----

TensorType infer_pad(const std::vector<TensorType>& in, const Attrs& a) {
  const Axes& pads = a.get_ints("pads");
  Shape out = in[0].shape;
  if (pads.size() != 2 * out.size())
    throw ValueError("pads need (before, after) for each of the " + std::to_string(out.size()) + " axes");
  for (std::size_t d = 0; d < out.size(); ++d) {
    if (pads[2 * d] < 0 || pads[2 * d + 1] < 0) throw ValueError("pads must be non-negative");
    if (out[d] != kDynamic) out[d] += pads[2 * d] + pads[2 * d + 1];
  }
  return {in[0].dtype, out};
}

// The region of the padded tensor that holds the input.
Attrs interior(const Axes& pads) {
  Axes starts, stops, steps;
  for (std::size_t d = 0; d < pads.size() / 2; ++d) {
    starts.push_back(pads[2 * d]);
    stops.push_back(pads[2 * d + 1] > 0 ? -pads[2 * d + 1] : kSliceEnd);
    steps.push_back(1);
  }
  return {{"starts", starts}, {"stops", stops}, {"steps", steps}};
}

void pad_kernel(const Tensor* const* in, Tensor& out, const Attrs& a) {
  out.fill(a.get_float("value"));
  slice_view(out, interior(a.get_ints("pads"))).copy_from(*in[0]);
}

// ONNX lists every axis's start pad, then every end pad.
std::string lower_pad(OnnxLowerCtx& c) {
  const Axes& pads = c.attrs().get_ints("pads");
  const std::size_t rank = pads.size() / 2;
  Axes onnx_pads(pads.size());
  for (std::size_t d = 0; d < rank; ++d) {
    onnx_pads[d] = pads[2 * d];
    onnx_pads[rank + d] = pads[2 * d + 1];
  }
  return c.op("Pad", {c.in(), c.ints(onnx_pads), c.scalar(c.attrs().get_float("value"))});
}

const OpDef& pad_op = register_op(OpDef("pad").infer(infer_pad).kernel(pad_kernel).any_device().onnx(lower_pad)
    .grad([](const GradCtx& c) { return G{c.dy.graph().apply(slice_op, {c.dy}, interior(c.attrs.get_ints("pads")))}; }));

}  // namespace

Var slice(Var x, const Axes& starts, const Axes& stops, const Axes& steps) {
  return x.graph().apply(slice_op, {x}, {{"starts", starts}, {"stops", stops}, {"steps", steps}});
}

Var concat(const std::vector<Var>& xs, std::int64_t axis) {
  if (xs.empty()) throw ValueError("concat: needs at least one input");
  if (xs.size() == 1) return xs[0];
  return xs[0].graph().apply(concat_op, xs, {{"axis", axis}, {"count", static_cast<std::int64_t>(xs.size())}});
}

Var stack(const std::vector<Var>& xs, std::int64_t axis) {
  if (xs.empty()) throw ValueError("stack: needs at least one input");
  const auto rank = static_cast<std::int64_t>(xs[0].shape().size()) + 1;
  const auto a = normalize_axis(axis, rank, "stack");
  std::vector<Var> parts;
  for (const auto& x : xs) {
    if (x.shape() != xs[0].shape())
      throw ValueError("stack: shapes " + to_string(xs[0].shape()) + " and " + to_string(x.shape()) + " differ");
    parts.push_back(unsqueeze(x, {a}));
  }
  return parts.size() == 1 ? parts[0] : concat(parts, a);
}

std::vector<Var> split(Var x, const std::vector<std::int64_t>& sizes, std::int64_t axis) {
  const auto rank = static_cast<std::int64_t>(x.shape().size());
  const auto a = normalize_axis(axis, rank, "split");
  const std::int64_t n = x.shape()[a];
  std::int64_t total = 0;
  for (auto s : sizes) {
    if (s < 0) throw ValueError("split: sizes must be non-negative");
    total += s;
  }
  if (n != kDynamic && total != n)
    throw ValueError("split: sizes add up to " + std::to_string(total) + ", but axis " + std::to_string(a) + " of " +
                     to_string(x.shape()) + " has " + std::to_string(n));
  std::vector<Var> parts;
  std::int64_t offset = 0;
  for (auto s : sizes) {
    Axes starts(rank, 0), stops(rank, kSliceEnd), steps(rank, 1);
    starts[a] = offset;
    stops[a] = offset + s;
    parts.push_back(slice(x, starts, stops, steps));
    offset += s;
  }
  return parts;
}

PadMode pad_mode(const std::string& name) {
  if (name == "constant") return PadMode::constant;
  if (name == "reflect") return PadMode::reflect;
  if (name == "edge" || name == "replicate") return PadMode::edge;
  throw ValueError("pad: mode must be 'constant', 'reflect' or 'edge' ('replicate'), got '" + name + "'");
}

namespace {

// x padded along one axis by gathering: index i of the result reads x at i - before, mirrored (reflect) or
// clamped (edge) into [0, n).
Var gather_padded_axis(Var x, std::size_t axis, std::int64_t before, std::int64_t after, PadMode mode) {
  const std::int64_t n = x.shape()[axis];
  const bool reflect = mode == PadMode::reflect;
  const std::string what = std::string("pad: ") + (reflect ? "reflect" : "edge") + " padding (" +
                           std::to_string(before) + ", " + std::to_string(after) + ") of axis " +
                           std::to_string(axis) + " of " + to_string(x.shape());
  if (n == kDynamic) throw ValueError(what + " needs the axis's size: it is symbolic");
  if (n == 0) throw ValueError(what + ": the axis is empty, there is no edge to repeat");
  if (reflect && (before >= n || after >= n))
    throw ValueError(what + ": each pad must be smaller than the axis (at most " + std::to_string(n - 1) + ")");
  constexpr std::int64_t kMaxGathered = std::int64_t{1} << 31;  // the index is a real tensor of this many int64s
  if (n > kMaxGathered || before > kMaxGathered || after > kMaxGathered || before + n + after > kMaxGathered)
    throw ValueError(what + ": the padded axis would be longer than 2^31");
  Tensor index = Tensor::empty(DType::int64, {before + n + after});
  auto* p = static_cast<std::int64_t*>(index.raw_data());
  for (std::int64_t i = 0; i < before + n + after; ++i) {
    std::int64_t j = i - before;
    if (j < 0) j = reflect ? -j : 0;
    if (j >= n) j = reflect ? 2 * (n - 1) - j : n - 1;
    p[i] = j;
  }
  return take(x, x.graph().constant(index), static_cast<std::int64_t>(axis));
}

}  // namespace

Var pad(Var x, const std::vector<std::int64_t>& pads, double value, PadMode mode) {
  if (mode == PadMode::constant) return x.graph().apply(pad_op, {x}, {{"pads", pads}, {"value", value}});
  const std::size_t rank = x.shape().size();
  if (pads.size() != 2 * rank)
    throw ValueError("pad: pads need (before, after) for each of the " + std::to_string(rank) + " axes of " +
                     to_string(x.shape()) + ", got " + std::to_string(pads.size()) + " values");
  for (auto p : pads)
    if (p < 0) throw ValueError("pad: pads must be non-negative, got " + std::to_string(p));
  Var y = x;
  for (std::size_t d = 0; d < rank; ++d)
    if (pads[2 * d] != 0 || pads[2 * d + 1] != 0) y = gather_padded_axis(y, d, pads[2 * d], pads[2 * d + 1], mode);
  return y;
}

}  // namespace xgrad
