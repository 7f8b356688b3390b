// Indexing by int64 tensors: take (numpy.take; embeddings, index_select),
// take_along_axis (gather; picking class scores) and one_hot. The gradients
// scatter-add into zeros of the source's shape; the scatters are linear, and
// their gradients are the gathers again.
#include <cstring>

#include "ops/elementwise.h"
#include "ops/gather_util.h"
#include "core/onnx_lowering.h"
#include "ops/ops.h"

namespace xgrad {

namespace {

using G = std::vector<Var>;

void require_indices(const TensorType& t) {
  if (t.dtype != DType::int64) throw TypeError(std::string("indices must be int64, got ") + dtype_name(t.dtype));
}

// A checked index into an axis of size n; negative counts from the end, as in numpy.
inline std::int64_t resolve_index(std::int64_t i, std::int64_t n) {
  const std::int64_t r = i < 0 ? i + n : i;
  if (r < 0 || r >= n)
    throw ValueError("index " + std::to_string(i) + " is out of bounds for an axis of size " + std::to_string(n));
  return r;
}

// ---- take: out = x[..., idx, ...] with idx's whole shape in place of `axis` ----

Shape take_shape(const Shape& x, const Shape& idx, std::int64_t axis) {
  Shape out(x.begin(), x.begin() + axis);
  out.insert(out.end(), idx.begin(), idx.end());
  out.insert(out.end(), x.begin() + axis + 1, x.end());
  return out;
}

TensorType infer_take(const std::vector<TensorType>& in, const Attrs& a) {
  infer::require_floating(in[0]);
  require_indices(in[1]);
  return {in[0].dtype, take_shape(in[0].shape, in[1].shape, axis_attr(a, in[0].shape.size()))};
}

// Gather (scatter = false: out = x[idx]) or scatter-add (true: x[idx] += out) over out's index space.
template <bool kScatter>
void walk_run(const GatherWalk& w, const Tensor& x, const Tensor& idx, const Tensor& out) {
  const std::int64_t* ip = idx.data<std::int64_t>();
  kernels::dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* xp = static_cast<T*>(x.raw_data());
    T* op = static_cast<T*>(out.raw_data());
    strided_loop<3>(out.shape(), {&out.strides(), &w.x, &w.idx}, [&](std::int64_t n, const auto& off, const auto& st) {
      for (std::int64_t i = 0; i < n; ++i) {
        T* src = xp + off[1] + i * st[1] + resolve_index(ip[off[2] + i * st[2]], w.axis_size) * w.axis_stride;
        if (kScatter) *src += op[off[0] + i * st[0]];
        else op[off[0] + i * st[0]] = *src;
      }
    });
  });
}

void take_kernel(const Tensor* const* in, Tensor& out, const Attrs& a) {
  walk_run<false>(take_walk(*in[0], *in[1], axis_attr(a, in[0]->shape().size())), *in[0], *in[1], out);
}

// in: dy, idx, like(x). out (x's shape) = zeros, then out[idx] += dy.
void take_grad_kernel(const Tensor* const* in, Tensor& out, const Attrs& a) {
  out.fill_zero();
  walk_run<true>(take_walk(out, *in[1], axis_attr(a, out.shape().size())), out, *in[1], *in[0]);
}

TensorType infer_take_grad(const std::vector<TensorType>& in, const Attrs&) {
  require_indices(in[1]);
  return {in[0].dtype, in[2].shape};
}

// ---- take_along_axis: out[..., j, ...] = x[..., idx[..., j, ...], ...] ----

TensorType infer_take_along_axis(const std::vector<TensorType>& in, const Attrs& a) {
  const Shape& x = in[0].shape;
  const Shape& idx = in[1].shape;
  infer::require_floating(in[0]);
  require_indices(in[1]);
  if (x.size() != idx.size())
    throw ValueError("indices " + to_string(idx) + " must have the rank of the input " + to_string(x));
  const auto axis = axis_attr(a, x.size());
  Shape out = x;
  for (std::size_t d = 0; d < x.size(); ++d) {
    if (static_cast<std::int64_t>(d) == axis) { out[d] = idx[d]; continue; }
    if (idx[d] != 1 && idx[d] != x[d] && idx[d] != kDynamic && x[d] != kDynamic)
      throw ValueError("indices " + to_string(idx) + " do not broadcast against the input " + to_string(x) +
                       " outside axis " + std::to_string(axis));
  }
  return {in[0].dtype, out};
}

void take_along_axis_kernel(const Tensor* const* in, Tensor& out, const Attrs& a) {
  walk_run<false>(along_axis_walk(*in[0], *in[1], out.shape(), axis_attr(a, in[0]->shape().size())), *in[0], *in[1], out);
}

void take_along_axis_grad_kernel(const Tensor* const* in, Tensor& out, const Attrs& a) {
  out.fill_zero();
  walk_run<true>(along_axis_walk(out, *in[1], in[0]->shape(), axis_attr(a, out.shape().size())), out, *in[1], *in[0]);
}

// ---- one_hot ----

void one_hot_kernel(const Tensor* const* in, Tensor& out, const Attrs& a) {
  const Tensor labels = in[0]->contiguous();
  const std::int64_t classes = a.get_int("num_classes");
  out.fill_zero();
  const std::int64_t* lp = labels.data<std::int64_t>();
  kernels::dispatch_floating(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* op = static_cast<T*>(out.raw_data());
    for (std::int64_t i = 0; i < labels.numel(); ++i) {
      if (lp[i] < 0 || lp[i] >= classes)
        throw ValueError("label " + std::to_string(lp[i]) + " is outside [0, " + std::to_string(classes) + ")");
      op[i * classes + lp[i]] = T(1);
    }
  });
}

// ---- ONNX lowerings ----

// Shape(x) with dim `axis` replaced by Shape(from)[axis] (or by `replace`).
std::string shape_with_axis(OnnxLowerCtx& c, const std::string& x, std::int64_t axis, const std::string& replace) {
  const std::string xs = c.op("Shape", {x});
  const std::string pre = c.op("Slice", {xs, c.ints({0}), c.ints({axis})});
  const std::string post = c.op("Slice", {xs, c.ints({axis + 1}), c.ints({INT64_MAX})});
  return c.op("Concat", {pre, replace, post}, {{"axis", std::int64_t{0}}});
}

// Scatter-add of dy into zeros shaped like in(2), along `axis`, with indices
// already shaped like dy (ScatterElements sums duplicates with reduction=add).
std::string scatter_add(OnnxLowerCtx& c, const std::string& dy, const std::string& idx, std::int64_t axis) {
  const std::string zeros = c.op("Expand", {c.scalar(0), c.op("Shape", {c.in(2)})});
  return c.op("ScatterElements", {zeros, idx, dy}, {{"axis", axis}, {"reduction", std::string("add")}});
}

// take's indices flattened into one axis, so that they line up with dy element by element.
std::string lower_take_grad(OnnxLowerCtx& c) {
  const std::int64_t rank = static_cast<std::int64_t>(c.out_type().shape.size());
  const std::int64_t axis = axis_attr(c.attrs(), rank);
  const std::string dy = c.op("Reshape", {c.in(0), shape_with_axis(c, c.in(2), axis, c.ints({-1}))});
  Axes idx_shape(rank, 1);
  idx_shape[axis] = -1;
  const std::string idx = c.op("Expand", {c.op("Reshape", {c.in(1), c.ints(idx_shape)}), c.op("Shape", {dy})});
  return scatter_add(c, dy, idx, axis);
}

// GatherElements does not broadcast: indices are first expanded to the
// output's shape (Expand keeps a dim given as 1; static targets need no Shape).
std::string lower_take_along_axis(OnnxLowerCtx& c) {
  const Shape& x = c.in_type(0).shape;
  const Shape& idx = c.in_type(1).shape;
  const std::int64_t axis = axis_attr(c.attrs(), x.size());
  Shape target(x.size(), 1);
  bool needs_shape = false;
  for (std::size_t d = 0; d < x.size(); ++d) {
    if (static_cast<std::int64_t>(d) == axis || idx[d] != 1 || x[d] == 1) continue;
    target[d] = x[d];
    needs_shape = needs_shape || x[d] == kDynamic;
  }
  std::string i = c.in(1);
  if (needs_shape) {
    const std::string along = c.op("Slice", {c.op("Shape", {c.in(1)}), c.ints({axis}), c.ints({axis + 1})});
    i = c.op("Expand", {i, shape_with_axis(c, c.in(0), axis, along)});
  } else if (target != Shape(x.size(), 1)) {
    i = c.op("Expand", {i, c.ints(target)});
  }
  return c.op("GatherElements", {c.in(0), i}, {{"axis", axis}});
}

std::string lower_take_along_axis_grad(OnnxLowerCtx& c) {
  const std::int64_t axis = axis_attr(c.attrs(), c.out_type().shape.size());
  std::string idx = c.in(1);
  if (c.in_type(1).shape != c.in_type(0).shape) idx = c.op("Expand", {idx, c.op("Shape", {c.in(0)})});
  return scatter_add(c, c.in(0), idx, axis);
}

// ONNX Runtime's OneHot has no float64 values: 0/1 in float32 are cast exactly.
std::string lower_one_hot(OnnxLowerCtx& c) {
  Tensor values = Tensor::zeros(DType::float32, {2});
  values.slice(0, 1, 2).copy_from(Tensor::full(DType::float32, {1}, 1.0));
  const std::string depth = c.scalar(static_cast<double>(c.attrs().get_int("num_classes")), DType::int64);
  const std::string hot = c.op("OneHot", {c.in(), depth, c.constant(values)}, {{"axis", std::int64_t{-1}}});
  return c.out_type().dtype == DType::float32 ? hot : c.cast(hot, c.out_type().dtype);
}

const OpDef& take_grad_op = register_op(OpDef("take_grad").validates_values().arity(3).infer(infer_take_grad).kernel(take_grad_kernel)
    .onnx(lower_take_grad).grad([](const GradCtx& c) { return G{take(c.dy, c.x(1), c.attrs.get_int("axis")), Var(), Var()}; }));

const OpDef& take_op = register_op(OpDef("take").validates_values().arity(2).infer(infer_take).kernel(take_kernel)
    .onnx([](OnnxLowerCtx& c) { return c.op("Gather", c.ins(), {{"axis", axis_attr(c.attrs(), c.in_type().shape.size())}}); })
    .grad([](const GradCtx& c) { return G{c.x(0).graph().apply(take_grad_op, {c.dy, c.x(1), c.x(0)}, c.attrs), Var()}; }));

const OpDef& take_along_axis_grad_op = register_op(OpDef("take_along_axis_grad").validates_values().arity(3)
    .infer(infer_take_grad).kernel(take_along_axis_grad_kernel).onnx(lower_take_along_axis_grad)
    .grad([](const GradCtx& c) { return G{take_along_axis(c.dy, c.x(1), c.attrs.get_int("axis")), Var(), Var()}; }));

const OpDef& take_along_axis_op = register_op(OpDef("take_along_axis").validates_values().arity(2).infer(infer_take_along_axis)
    .kernel(take_along_axis_kernel).onnx(lower_take_along_axis)
    .grad([](const GradCtx& c) {
      return G{c.x(0).graph().apply(take_along_axis_grad_op, {c.dy, c.x(1), c.x(0)}, c.attrs), Var()};
    }));

const OpDef& one_hot_op = register_op(OpDef("one_hot").validates_values().kernel(one_hot_kernel).onnx(lower_one_hot)
    .infer([](const std::vector<TensorType>& in, const Attrs& a) {
      require_indices(in[0]);
      Shape out = in[0].shape;
      out.push_back(a.get_int("num_classes"));
      return TensorType{static_cast<DType>(a.get_int("dtype")), out};
    })
    .not_differentiable("its input is integer labels"));

}  // namespace

Var take(Var x, Var indices, std::int64_t axis) {
  return x.graph().apply(take_op, {x, indices}, {{"axis", axis}});
}

Var take_along_axis(Var x, Var indices, std::int64_t axis) {
  return x.graph().apply(take_along_axis_op, {x, indices}, {{"axis", axis}});
}

Var one_hot(Var labels, std::int64_t num_classes, DType dtype) {
  if (num_classes <= 0) throw ValueError("one_hot: num_classes must be positive, got " + std::to_string(num_classes));
  if (!is_floating(dtype)) throw TypeError("one_hot: dtype must be float32 or float64");
  return labels.graph().apply(one_hot_op, {labels},
                              {{"num_classes", num_classes}, {"dtype", static_cast<std::int64_t>(dtype)}});
}

}  // namespace xgrad
