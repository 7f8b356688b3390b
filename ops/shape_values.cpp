// Shapes computed inside the graph: shape_of(x) is an int64 value, and reshape / expand take their target
// as a value. Exporters write a dynamic batch this way (Shape -> Gather -> Concat -> Reshape). A Program
// computes shape_of and the small arithmetic on it while it plans each feed-shape signature
// (autodiff/shape_folding.h), so these ops get static shapes there and cost a view at run time.
#include <algorithm>

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

Attrs with_dims(Attrs attrs, const Shape& dims) {
  if (!dims.empty()) attrs.set("dims", dims);
  return attrs;
}

}  // namespace

// A static shape is a constant now, so what is computed from it is static while building too.
Var shape_of(Var x) {
  if (!is_static(x.shape())) return x.graph().apply(shape_of_op, {x});
  Tensor dims = Tensor::empty(DType::int64, {static_cast<std::int64_t>(x.shape().size())});
  std::copy(x.shape().begin(), x.shape().end(), static_cast<std::int64_t*>(dims.raw_data()));
  return x.graph().constant(dims);
}

// A target computed from constants only (a static shape's arithmetic) is evaluated now: a constant target.
Var known_now(Var shape) {
  if (shape->kind() == NodeKind::constant) return shape;
  const Tensor value = evaluate_if_constant(shape);
  return value.defined() ? shape.graph().constant(value) : shape;
}

Var reshape(Var x, Var shape, bool copy_zeros, const Shape& dims) {
  shape = known_now(shape);
  return x.graph().apply(reshape_to_op, {x, shape}, with_dims({{"copy_zeros", std::int64_t{copy_zeros}}}, dims));
}

Var expand(Var x, Var shape, const Shape& dims) {
  return x.graph().apply(expand_op, {x, known_now(shape)}, with_dims({}, dims));
}

}  // namespace xgrad
