// Shape ops. All are views over their input's storage; reshape of a
// non-contiguous input is the one case that falls back to a copy kernel.
#include <algorithm>

#include "core/onnx_lowering.h"
#include "ops/ops.h"

namespace xgrad {

namespace {

using G = std::vector<Var>;

bool input_contiguous(const Tensor* const* in, const Shape&, const Attrs&) { return in[0]->is_contiguous(); }

// The copy path of reshape: write x's elements in row-major order into out.
void reshape_copy_kernel(const Tensor* const* in, Tensor& out, const Attrs&) {
  out.reshape(in[0]->shape()).copy_from(*in[0]);
}

Tensor reshape_view(const Tensor* const* in, const Shape& out_shape, const Attrs&) {
  return in[0]->reshape(out_shape);
}

TensorType infer_reshape(const std::vector<TensorType>& in, const Attrs& attrs) {
  const Shape& target = attrs.get_ints("shape");
  const std::int64_t count = numel(in[0].shape);
  if (count >= 0) return {in[0].dtype, resolve_reshape(target, count, "reshape " + to_string(in[0].shape))};
  if (std::count(target.begin(), target.end(), -1) > 1)
    throw ValueError("only one dimension can be -1 in " + to_string(target));
  // The static dims of the input divide its element count, so they must divide a fully given target.
  std::int64_t known = 1, wanted = 1;
  bool overflow = false;
  for (auto d : in[0].shape) overflow |= __builtin_mul_overflow(known, d == kDynamic ? 1 : d, &known);
  for (auto d : target) {
    if (d < -1) throw ValueError("invalid dimension in " + to_string(target));
    overflow |= __builtin_mul_overflow(wanted, d, &wanted);
  }
  if (overflow) throw ValueError("reshape " + to_string(in[0].shape) + " into " + to_string(target) + ": more elements than an int64 counts");
  if (wanted >= 0 && known > 0 && wanted % known != 0)
    throw ValueError("cannot reshape " + to_string(in[0].shape) + " into " + to_string(target) + ": " +
                     std::to_string(wanted) + " is not a multiple of " + std::to_string(known));
  return {in[0].dtype, target};  // the -1 stays symbolic until run time
}

TensorType infer_reshape_like(const std::vector<TensorType>& in, const Attrs&) {
  const std::int64_t a = numel(in[0].shape), b = numel(in[1].shape);
  if (a >= 0 && b >= 0 && a != b)
    throw ValueError("cannot reshape " + to_string(in[0].shape) + " to " + to_string(in[1].shape));
  return {in[0].dtype, in[1].shape};
}

Axes resolved_perm(const Attrs& attrs, std::size_t ndim) {
  Axes perm = attrs.get_ints("perm");
  if (perm.empty())
    for (std::size_t i = 0; i < ndim; ++i) perm.push_back(static_cast<std::int64_t>(ndim - 1 - i));
  return perm;
}

TensorType infer_transpose(const std::vector<TensorType>& in, const Attrs& attrs) {
  const Shape& s = in[0].shape;
  const Axes perm = resolved_perm(attrs, s.size());
  if (perm.size() != s.size())
    throw ValueError("perm " + to_string(perm) + " does not match rank " + std::to_string(s.size()));
  normalize_axes(perm, static_cast<std::int64_t>(s.size()), "transpose");
  Shape out;
  for (auto a : perm) out.push_back(s[normalize_axis(a, static_cast<std::int64_t>(s.size()), "transpose")]);
  return {in[0].dtype, out};
}

TensorType infer_unsqueeze(const std::vector<TensorType>& in, const Attrs& attrs) {
  const auto rank = static_cast<std::int64_t>(in[0].shape.size() + attrs.get_ints("axes").size());
  const Axes axes = normalize_axes(attrs.get_ints("axes"), rank, "unsqueeze");
  Shape out;
  std::size_t next = 0;
  for (std::int64_t i = 0; i < rank; ++i)
    out.push_back(std::find(axes.begin(), axes.end(), i) != axes.end() ? 1 : in[0].shape[next++]);
  return {in[0].dtype, out};
}

TensorType infer_squeeze(const std::vector<TensorType>& in, const Attrs& attrs) {
  const Shape& s = in[0].shape;
  const Axes axes = normalize_axes(attrs.get_ints("axes"), static_cast<std::int64_t>(s.size()), "squeeze");
  Shape out;
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(s.size()); ++i) {
    const bool drop = std::find(axes.begin(), axes.end(), i) != axes.end();
    if (drop && s[i] != 1 && s[i] != kDynamic)
      throw ValueError("cannot squeeze axis " + std::to_string(i) + " of shape " + to_string(s) + ": its size is not 1");
    if (!drop) out.push_back(s[i]);
  }
  return {in[0].dtype, out};
}

// Broadcasting `from` to exactly `to`, with symbolic dims allowed on either side.
void check_broadcastable(const Shape& from, const Shape& to) {
  bool ok = from.size() <= to.size();
  for (std::size_t i = 0; ok && i < from.size(); ++i) {
    const auto f = from[i], t = to[to.size() - from.size() + i];
    ok = f == 1 || f == t || f == kDynamic || t == kDynamic;
  }
  if (!ok) throw ValueError("cannot broadcast " + to_string(from) + " to " + to_string(to));
}

TensorType infer_broadcast_to(const std::vector<TensorType>& in, const Attrs& attrs) {
  const Shape& target = attrs.get_ints("shape");
  check_broadcastable(in[0].shape, target);
  return {in[0].dtype, target};
}

TensorType infer_broadcast_like(const std::vector<TensorType>& in, const Attrs&) {
  check_broadcastable(in[0].shape, in[1].shape);
  return {in[0].dtype, in[1].shape};
}

Tensor broadcast_view(const Tensor* const* in, const Shape& out_shape, const Attrs&) {
  return in[0]->broadcast_to(out_shape);
}

Axes inverse_perm(const Axes& perm) {
  Axes inv(perm.size());
  for (std::size_t i = 0; i < perm.size(); ++i)
    inv[normalize_axis(perm[i], static_cast<std::int64_t>(perm.size()), "transpose")] = static_cast<std::int64_t>(i);
  return inv;
}

// ONNX Reshape reads a 0 as "keep this dim" unless allowzero is set.
std::string lower_reshape(OnnxLowerCtx& c) {
  const Shape& target = c.attrs().get_ints("shape");
  const bool zeros = std::count(target.begin(), target.end(), 0) > 0;
  return c.op("Reshape", {c.in(), c.ints(target)}, {{"allowzero", std::int64_t{zeros}}});
}

// Expand broadcasts against 1, so a symbolic target dim is written as 1 and
// taken from the input, which must then have it too.
std::string lower_broadcast_to(OnnxLowerCtx& c) {
  Shape target = c.attrs().get_ints("shape");
  const Shape& in = c.in_type().shape;
  for (std::size_t i = 0; i < target.size(); ++i) {
    if (target[i] != kDynamic) continue;
    const std::size_t lead = target.size() - in.size();
    if (i < lead || in[i - lead] != kDynamic)
      throw ValueError("a symbolic target dim must come from the input to lower to Expand");
    target[i] = 1;
  }
  return c.op("Expand", {c.in(), c.ints(target)});
}

std::string lower_squeeze(OnnxLowerCtx& c) {
  const Axes& axes = c.attrs().get_ints("axes");
  return axes.empty() ? c.op("Squeeze", {c.in()}) : c.op("Squeeze", {c.in(), c.ints(axes)});
}

const OpDef& reshape_op = register_op(OpDef("reshape").infer(infer_reshape).view(reshape_view, input_contiguous)
    .kernel(reshape_copy_kernel).any_device().onnx(lower_reshape)
    .grad([](const GradCtx& c) { return G{reshape_like(c.dy, c.x())}; }));

const OpDef& reshape_like_op = register_op(OpDef("reshape_like").arity(2).infer(infer_reshape_like)
    .view(reshape_view, input_contiguous).kernel(reshape_copy_kernel).any_device()
    .onnx([](OnnxLowerCtx& c) { return c.op("Reshape", {c.in(0), c.op("Shape", {c.in(1)})}); })
    .grad([](const GradCtx& c) { return G{reshape_like(c.dy, c.x(0)), Var()}; }));

const OpDef& transpose_op = register_op(OpDef("transpose").infer(infer_transpose)
    .onnx([](OnnxLowerCtx& c) {
      Axes perm = resolved_perm(c.attrs(), c.in_type().shape.size());
      for (auto& p : perm) p = normalize_axis(p, static_cast<std::int64_t>(perm.size()), "transpose");
      return c.op("Transpose", {c.in()}, {{"perm", perm}});
    })
    .view([](const Tensor* const* in, const Shape&, const Attrs& a) { return in[0]->permute(resolved_perm(a, in[0]->shape().size())); })
    .grad([](const GradCtx& c) { return G{transpose(c.dy, inverse_perm(resolved_perm(c.attrs, c.x().shape().size())))}; }));

const OpDef& unsqueeze_op = register_op(OpDef("unsqueeze").infer(infer_unsqueeze)
    .onnx([](OnnxLowerCtx& c) { return c.op("Unsqueeze", {c.in(), c.ints(c.attrs().get_ints("axes"))}); })
    .view([](const Tensor* const* in, const Shape& out_shape, const Attrs& a) {
      Tensor t = *in[0];
      for (auto axis : normalize_axes(a.get_ints("axes"), static_cast<std::int64_t>(out_shape.size()), "unsqueeze"))
        t = t.unsqueeze(axis);
      return t;
    })
    .grad([](const GradCtx& c) { return G{squeeze(c.dy, c.attrs.get_ints("axes"))}; }));

const OpDef& squeeze_op = register_op(OpDef("squeeze").infer(infer_squeeze).onnx(lower_squeeze)
    .view([](const Tensor* const* in, const Shape&, const Attrs& a) { return in[0]->squeeze(a.get_ints("axes")); })
    .grad([](const GradCtx& c) { return G{reshape_like(c.dy, c.x())}; }));

const OpDef& broadcast_to_op = register_op(OpDef("broadcast_to").infer(infer_broadcast_to).onnx(lower_broadcast_to)
    .view(broadcast_view).grad([](const GradCtx& c) { return G{sum_to_like(c.dy, c.x())}; }));

const OpDef& broadcast_like_op = register_op(OpDef("broadcast_like").arity(2).infer(infer_broadcast_like)
    .onnx([](OnnxLowerCtx& c) { return c.op("Expand", {c.in(0), c.op("Shape", {c.in(1)})}); })
    .view(broadcast_view).grad([](const GradCtx& c) { return G{sum_to_like(c.dy, c.x(0)), Var()}; }));

const OpDef& stop_gradient_op = register_op(OpDef("stop_gradient").onnx("Identity")
    .infer([](const std::vector<TensorType>& in, const Attrs&) { return in[0]; })
    .view([](const Tensor* const* in, const Shape&, const Attrs&) { return *in[0]; })
    .grad([](const GradCtx&) { return G{Var()}; }));  // treated as a constant by grad

}  // namespace

Var stop_gradient(Var x) { return x.graph().apply(stop_gradient_op, {x}); }

Var reshape(Var x, const Shape& shape) { return x.graph().apply(reshape_op, {x}, {{"shape", shape}}); }
// A static `like` shape makes these plain reshape / broadcast_to, independent of `like`'s value.
Var reshape_like(Var x, Var like) {
  if (x.shape() == like.shape() && is_static(x.shape())) return x;
  if (is_static(like.shape())) return reshape(x, like.shape());
  return x.graph().apply(reshape_like_op, {x, like});
}
Var transpose(Var x, const Axes& perm) { return x.graph().apply(transpose_op, {x}, {{"perm", perm}}); }
Var unsqueeze(Var x, const Axes& axes) {
  if (axes.empty()) return x;
  return x.graph().apply(unsqueeze_op, {x}, {{"axes", axes}});
}
Var squeeze(Var x, const Axes& axes) {
  Axes resolved = axes;
  if (resolved.empty())  // numpy: every axis of size 1, decided now so run-time shapes cannot change it
    for (std::size_t i = 0; i < x.shape().size(); ++i)
      if (x.shape()[i] == 1) resolved.push_back(static_cast<std::int64_t>(i));
  if (resolved.empty()) return x;
  return x.graph().apply(squeeze_op, {x}, {{"axes", resolved}});
}
Var broadcast_to(Var x, const Shape& shape) { return x.graph().apply(broadcast_to_op, {x}, {{"shape", shape}}); }
Var broadcast_like(Var x, Var like) {
  if (x.shape() == like.shape() && is_static(x.shape())) return x;
  if (is_static(like.shape())) return broadcast_to(x, like.shape());
  return x.graph().apply(broadcast_like_op, {x, like});
}

}  // namespace xgrad
