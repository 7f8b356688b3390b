// Shapes computed inside the graph: shape_of(x) is an int64 value, and reshape / expand take their target
// as a value. Exporters write a dynamic batch this way (Shape -> Gather -> Concat -> Reshape). A Program
// computes shape_of and the small arithmetic on it while it plans each feed-shape signature
// (autodiff/shape_folding.h), so these ops get static shapes there and cost a view at run time.
#include <algorithm>
#include <cmath>

#include "autodiff/shape_folding.h"
#include "core/graph.h"
#include "core/onnx_lowering.h"
#include "ops/ops.h"

namespace xgrad {

namespace {

using G = std::vector<Var>;

constexpr std::int64_t kUnknown = INT64_MIN;  // an entry of a target whose value is not known yet

// The target's entries (kUnknown for all of them when its value is not known yet).
Shape target_entries(const std::vector<TensorType>& in, const Tensor* value) {
  const TensorType& target = in[1];
  if (target.dtype != DType::int64) throw TypeError("the target shape must be int64, got " + std::string(dtype_name(target.dtype)));
  if (target.shape.size() != 1 || target.shape[0] == kDynamic)
    throw ValueError("the target shape must be 1-D with a static length, got shape " + to_string(target.shape));
  const auto n = static_cast<std::size_t>(target.shape[0]);
  if (!value) return Shape(n, kUnknown);
  const Tensor host = value->astype(DType::int64).contiguous();
  const auto* p = static_cast<const std::int64_t*>(host.raw_data());
  return Shape(p, p + n);
}

// The output dims the builder knew (the "dims" attr, kDynamic where it did not) fill in what the target's
// value cannot tell yet, and must agree with what it tells once known.
Shape with_known_dims(Shape out, const Attrs& attrs) {
  if (!attrs.has("dims")) return out;
  const Shape& dims = attrs.get_ints("dims");
  if (dims.size() != out.size())
    throw ValueError("the output has " + std::to_string(out.size()) + " dims, but the graph was built for " + to_string(dims));
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (dims[i] < kDynamic) throw ValueError("invalid dim " + std::to_string(dims[i]) + " in the shape " + to_string(dims));
    if (dims[i] == kDynamic) continue;
    if (out[i] != kDynamic && out[i] != dims[i])
      throw ValueError("the output shape " + to_string(out) + " contradicts the shape " + to_string(dims) + " the graph was built with");
    out[i] = dims[i];
  }
  return out;
}

TensorType infer_shape_of(const std::vector<TensorType>& in, const Attrs&) {
  return {DType::int64, {static_cast<std::int64_t>(in[0].shape.size())}};
}

void shape_of_kernel(const Tensor* const* in, Tensor& out, const Attrs&) {
  const Shape& s = in[0]->shape();
  Tensor host = Tensor::empty(DType::int64, {static_cast<std::int64_t>(s.size())});
  std::copy(s.begin(), s.end(), static_cast<std::int64_t*>(host.raw_data()));
  out.copy_from(host);
}

// ONNX Reshape: -1 takes the remaining elements; 0 copies the input's dim when copy_zeros is set, else is 0.
// Unknown entries stay symbolic until the plan knows them.
TensorType infer_reshape_to(const std::vector<TensorType>& in, const std::vector<const Tensor*>& values, const Attrs& attrs) {
  const Shape entries = target_entries(in, values[1]);
  const Shape& x = in[0].shape;
  const bool copy_zeros = attrs.has("copy_zeros") && attrs.get_int("copy_zeros");
  Shape out(entries.size());
  int free = -1;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const std::int64_t e = entries[i];
    if (e == kUnknown) {
      out[i] = kDynamic;
    } else if (e == 0 && copy_zeros) {
      if (i >= x.size()) throw ValueError("a 0 at entry " + std::to_string(i) + " of the target copies no dim of " + to_string(x));
      out[i] = x[i];
    } else if (e == -1) {
      if (free >= 0) throw ValueError("only one entry of the target shape " + to_string(entries) + " can be -1");
      free = static_cast<int>(i);
      out[i] = kDynamic;
    } else if (e < 0) {
      throw ValueError("invalid entry " + std::to_string(e) + " in the target shape " + to_string(entries));
    } else {
      out[i] = e;
    }
  }
  const std::int64_t count = numel(x);
  if (free >= 0) {
    Shape rest = out;
    rest.erase(rest.begin() + free);
    const std::int64_t known = numel(rest);
    if (count >= 0 && known > 0) {
      if (count % known) throw ValueError("cannot reshape " + to_string(x) + " into " + to_string(entries));
      out[static_cast<std::size_t>(free)] = count / known;
    } else if (count >= 0 && known == 0 && is_static(rest)) {
      throw ValueError("cannot reshape " + to_string(x) + " into " + to_string(entries) + ": the -1 is ambiguous");
    }
  }
  if (count >= 0 && is_static(out) && numel(out) != count)
    throw ValueError("cannot reshape " + to_string(x) + " (" + std::to_string(count) + " elements) into " + to_string(out));
  return {in[0].dtype, with_known_dims(out, attrs)};
}

// ONNX Expand: x and the target broadcast against each other.
TensorType infer_expand(const std::vector<TensorType>& in, const std::vector<const Tensor*>& values, const Attrs& attrs) {
  Shape entries = target_entries(in, values[1]);
  for (auto& e : entries) {
    if (e == kUnknown) e = kDynamic;  // broadcasting keeps what x knows of that dim
    else if (e < 0) throw ValueError("invalid entry " + std::to_string(e) + " in the target shape");
  }
  return {in[0].dtype, with_known_dims(broadcast_shapes(in[0].shape, entries), attrs)};
}

// A 0-d input's value as a double.
double scalar_value(const Tensor& t, const char* what) {
  if (t.numel() != 1) throw ValueError(std::string(what) + " must hold one value, has shape " + to_string(t.shape()));
  return t.to(Device::cpu).item();
}

void check_scalars(const std::vector<TensorType>& in, const char* const* names) {
  for (std::size_t k = 0; k < in.size(); ++k)
    if (!in[k].shape.empty()) throw ValueError(std::string(names[k]) + " must be a 0-d scalar, got shape " + to_string(in[k].shape));
}

// arange(start, limit, delta): ceil((limit - start) / delta) values (none when negative), ONNX Range.
std::int64_t arange_length(double start, double limit, double delta) {
  if (delta == 0) throw ValueError("delta must not be 0");
  const double n = std::ceil((limit - start) / delta);
  if (!(n < 1e15)) throw ValueError("arange(" + std::to_string(start) + ", " + std::to_string(limit) + ", " +
                                    std::to_string(delta) + ") is too long");
  return n > 0 ? static_cast<std::int64_t>(n) : 0;
}

TensorType infer_arange(const std::vector<TensorType>& in, const std::vector<const Tensor*>& values, const Attrs&) {
  static const char* const names[] = {"start", "limit", "delta"};
  check_scalars(in, names);
  for (const auto& t : in)
    if (t.dtype != in[0].dtype)
      throw TypeError("start, limit and delta must share a dtype, got " + std::string(dtype_name(in[0].dtype)) + ", " +
                      dtype_name(in[1].dtype) + " and " + dtype_name(in[2].dtype));
  if (!values[0] || !values[1] || !values[2]) return {in[0].dtype, {kDynamic}};
  return {in[0].dtype, {arange_length(scalar_value(*values[0], "start"), scalar_value(*values[1], "limit"),
                                      scalar_value(*values[2], "delta"))}};
}

void arange_kernel(const Tensor* const* in, Tensor& out, const Attrs&) {
  const double start = scalar_value(*in[0], "start"), delta = scalar_value(*in[2], "delta");
  Tensor host = Tensor::empty(DType::float64, out.shape());
  auto* p = static_cast<double*>(host.raw_data());
  for (std::int64_t i = 0; i < host.numel(); ++i) p[i] = start + static_cast<double>(i) * delta;
  out.copy_from(host.astype(out.dtype()));
}

std::int64_t int_value(const Tensor& t) { return t.to(Device::cpu).astype(DType::int64).contiguous().data<std::int64_t>()[0]; }

// The indices a Python slice [start:stop:step] picks from an axis of n (int64 scalars; step an attr).
TensorType infer_slice_indices(const std::vector<TensorType>& in, const std::vector<const Tensor*>& values, const Attrs& attrs) {
  static const char* const names[] = {"n", "start", "stop"};
  check_scalars(in, names);
  for (std::size_t k = 0; k < 3; ++k)
    if (in[k].dtype != DType::int64) throw TypeError(std::string(names[k]) + " must be int64, got " + dtype_name(in[k].dtype));
  const std::int64_t step = attrs.get_int("step");
  if (step == 0) throw ValueError("slice step cannot be zero");
  if (!values[0] || !values[1] || !values[2]) return {DType::int64, {kDynamic}};
  return {DType::int64, {resolve_slice(int_value(*values[0]), int_value(*values[1]), int_value(*values[2]), step).length}};
}

void slice_indices_kernel(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const std::int64_t step = attrs.get_int("step");
  const SliceSpan span = resolve_slice(int_value(*in[0]), int_value(*in[1]), int_value(*in[2]), step);
  Tensor host = Tensor::empty(DType::int64, {span.length});
  auto* p = static_cast<std::int64_t*>(host.raw_data());
  for (std::int64_t k = 0; k < span.length; ++k) p[k] = span.start + k * step;
  out.copy_from(host);
}

// ONNX Slice picks the same elements from Range(0, n) as our Python-style slice does from the axis.
std::string lower_slice_indices(OnnxLowerCtx& c) {
  const std::string all = c.op("Range", {c.scalar(0, DType::int64), c.in(0), c.scalar(1, DType::int64)});
  const std::string axis0 = c.ints({0});
  return c.op("Slice", {all, c.op("Unsqueeze", {c.in(1), axis0}), c.op("Unsqueeze", {c.in(2), axis0}), axis0,
                        c.ints({c.attrs().get_int("step")})});
}

bool input_contiguous(const Tensor* const* in, const Shape&, const Attrs&) { return in[0]->is_contiguous(); }
void reshape_copy_kernel(const Tensor* const* in, Tensor& out, const Attrs&) { out.reshape(in[0]->shape()).copy_from(*in[0]); }

const OpDef& shape_of_op = register_op(OpDef("shape_of").infer(infer_shape_of).kernel(shape_of_kernel).any_device().shape_only()
    .onnx("Shape").grad([](const GradCtx&) { return G{Var()}; }));  // the value never depends on x's values

const OpDef& reshape_to_op = register_op(OpDef("reshape_to").arity(2).infer_from_values(infer_reshape_to, {1})
    .view([](const Tensor* const* in, const Shape& out_shape, const Attrs&) { return in[0]->reshape(out_shape); }, input_contiguous)
    .kernel(reshape_copy_kernel).any_device()
    .onnx([](OnnxLowerCtx& c) {
      const bool copy_zeros = c.attrs().has("copy_zeros") && c.attrs().get_int("copy_zeros");
      return c.op("Reshape", {c.in(0), c.in(1)}, {{"allowzero", std::int64_t{!copy_zeros}}});
    })
    .grad([](const GradCtx& c) { return G{reshape_like(c.dy, c.x(0)), Var()}; }));

const OpDef& expand_op = register_op(OpDef("expand").arity(2).infer_from_values(infer_expand, {1})
    .view([](const Tensor* const* in, const Shape& out_shape, const Attrs&) { return in[0]->broadcast_to(out_shape); })
    .onnx([](OnnxLowerCtx& c) { return c.op("Expand", {c.in(0), c.in(1)}); })
    .grad([](const GradCtx& c) { return G{sum_to_like(c.dy, c.x(0)), Var()}; }));

const OpDef& arange_op = register_op(OpDef("arange").arity(3).infer_from_values(infer_arange, {0, 1, 2})
    .kernel(arange_kernel).any_device().onnx("Range")
    .not_differentiable("arange's values step by its inputs, and its length depends on them"));

const OpDef& slice_indices_op = register_op(OpDef("slice_indices").arity(3).infer_from_values(infer_slice_indices, {0, 1, 2})
    .kernel(slice_indices_kernel).any_device().onnx(lower_slice_indices)
    .not_differentiable("indices are integers"));

Attrs with_dims(Attrs attrs, const Shape& dims) {
  if (!dims.empty()) attrs.set("dims", dims);
  return attrs;
}

// A shape or scalar computed from constants only (a static shape's arithmetic) is evaluated now: a constant target.
Var known_now(Var shape) {
  if (shape->kind() == NodeKind::constant) return shape;
  const Tensor value = evaluate_if_constant(shape);
  return value.defined() ? shape.graph().constant(value) : shape;
}

}  // namespace

// A static shape is a constant now, so what is computed from it is static while building too.
Var shape_of(Var x) {
  if (!is_static(x.shape())) return x.graph().apply(shape_of_op, {x});
  Tensor dims = Tensor::empty(DType::int64, {static_cast<std::int64_t>(x.shape().size())});
  std::copy(x.shape().begin(), x.shape().end(), static_cast<std::int64_t*>(dims.raw_data()));
  return x.graph().constant(dims);
}

Var reshape(Var x, Var shape, bool copy_zeros, const Shape& dims) {
  shape = known_now(shape);
  return x.graph().apply(reshape_to_op, {x, shape}, with_dims({{"copy_zeros", std::int64_t{copy_zeros}}}, dims));
}

Var expand(Var x, Var shape, const Shape& dims) {
  return x.graph().apply(expand_op, {x, known_now(shape)}, with_dims({}, dims));
}

Var arange(Var start, Var limit, Var delta) {
  return start.graph().apply(arange_op, {known_now(start), known_now(limit), known_now(delta)});
}

Var slice(Var x, Var starts, Var stops, const Axes& axes, const Axes& steps) {
  if (starts.shape().size() != 1 || stops.shape() != starts.shape() || starts.shape()[0] != static_cast<std::int64_t>(axes.size()))
    throw ValueError("slice: starts " + to_string(starts.shape()) + " and stops " + to_string(stops.shape()) +
                     " must be 1-D with one entry per axis " + to_string(axes));
  if (steps.size() != axes.size()) throw ValueError("slice: " + std::to_string(steps.size()) + " steps for " + std::to_string(axes.size()) + " axes");
  const auto rank = static_cast<std::int64_t>(x.shape().size());
  const Axes normalized = normalize_axes(axes, rank, "slice");  // a repeated axis is an error there
  const Var dims = shape_of(x);
  auto entry = [](Var v, std::int64_t i) { return known_now(reshape(slice(v, {i}, {i + 1}, {1}), Shape{})); };
  for (std::size_t i = 0; i < axes.size(); ++i) {
    const std::int64_t axis = normalized[i];
    const auto k = static_cast<std::int64_t>(i);
    Var picked = x.graph().apply(slice_indices_op, {entry(dims, axis), entry(astype(starts, DType::int64), k), entry(astype(stops, DType::int64), k)},
                                 {{"step", steps[i]}});
    x = take(x, known_now(picked), axis);
  }
  return x;
}

}  // namespace xgrad
