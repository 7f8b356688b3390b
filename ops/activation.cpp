// Activation functions with parameters.
#include <cmath>

#include "core/onnx_lowering.h"
#include "ops/elementwise.h"
#include "ops/ops.h"

namespace xgrad {

namespace {

using G = std::vector<Var>;
using kernels::unary_kernel;

using ew::kGeluTanhCubic;
using ew::kGeluTanhScale;
using ew::kInvSqrt2;
constexpr double kInvSqrt2Pi = 0.39894228040143268;

// ONNX float attributes are float32: float64 graphs spell parameterized
// activations out with float64 constants so that no precision is lost.
bool float_attrs_exact(const OnnxLowerCtx& c) { return c.out_type().dtype == DType::float32; }

std::string lower_leaky_relu(OnnxLowerCtx& c) {
  const double slope = c.attrs().get_float("negative_slope");
  if (float_attrs_exact(c)) return c.op("LeakyRelu", {c.in()}, {{"alpha", slope}});
  return c.op("Where", {c.op("Greater", {c.in(), c.scalar(0)}), c.in(), c.op("Mul", {c.in(), c.scalar(slope)})});
}

std::string lower_elu(OnnxLowerCtx& c) {
  const double alpha = c.attrs().get_float("alpha");
  if (float_attrs_exact(c)) return c.op("Elu", {c.in()}, {{"alpha", alpha}});
  const std::string em1 = c.op("Sub", {c.op("Exp", {c.in()}), c.scalar(1)});
  return c.op("Where", {c.op("Greater", {c.in(), c.scalar(0)}), c.in(), c.op("Mul", {em1, c.scalar(alpha)})});
}

// Gelu joins the standard set only at opset 20.
std::string lower_gelu(OnnxLowerCtx& c) {
  const std::string& x = c.in();
  std::string inner;
  if (c.attrs().get_int("tanh")) {
    const std::string cubic = c.op("Mul", {c.op("Mul", {c.op("Mul", {x, x}), x}), c.scalar(kGeluTanhCubic)});
    inner = c.op("Tanh", {c.op("Mul", {c.op("Add", {x, cubic}), c.scalar(kGeluTanhScale)})});
  } else {
    inner = c.op("Erf", {c.op("Mul", {x, c.scalar(kInvSqrt2)})});
  }
  return c.op("Mul", {c.op("Mul", {x, c.scalar(0.5)}), c.op("Add", {inner, c.scalar(1)})});
}

// The kernel's overflow-free form: max(x, 0) + log(1 + e^-|x|).
std::string lower_softplus(OnnxLowerCtx& c) {
  const std::string& x = c.in();
  const std::string tail = c.op("Log", {c.op("Add", {c.op("Exp", {c.op("Neg", {c.op("Abs", {x})})}), c.scalar(1)})});
  return c.op("Add", {c.op("Max", {x, c.scalar(0)}), tail});
}

std::string lower_clip(OnnxLowerCtx& c) {
  return c.op("Clip", {c.in(), c.scalar(c.attrs().get_float("min")), c.scalar(c.attrs().get_float("max"))});
}

// F's math as the op's kernel and as its span kernel (for tiled groups).
template <class F>
OpDef activation(const char* name, LowerFn onnx) {
  return OpDef(name).infer(infer::same_floating).kernel(kernels::unary_kernel<F>).span(kernels::unary_span<F>).onnx(onnx);
}

const OpDef& leaky_relu_op = register_op(activation<ew::LeakyReluF>("leaky_relu", lower_leaky_relu)
    .grad([](const GradCtx& c) { return G{where(gt(c.x(), 0.0), c.dy, c.dy * c.attrs.get_float("negative_slope"))}; }));

const OpDef& elu_op = register_op(activation<ew::EluF>("elu", lower_elu).grad([](const GradCtx& c) {
  return G{where(gt(c.x(), 0.0), c.dy, c.dy * (c.output + c.attrs.get_float("alpha")))};
}));

const OpDef& gelu_op = register_op(activation<ew::GeluF>("gelu", lower_gelu).grad([](const GradCtx& c) {
  const Var& x = c.x();
  if (c.attrs.get_int("tanh")) {
    const Var t = tanh((x + pow(x, 3.0) * kGeluTanhCubic) * kGeluTanhScale);
    const Var du = (square(x) * (3.0 * kGeluTanhCubic) + 1.0) * kGeluTanhScale;
    return G{c.dy * ((t + 1.0) * 0.5 + x * 0.5 * (1.0 - square(t)) * du)};
  }
  const Var cdf = (erf(x * kInvSqrt2) + 1.0) * 0.5;
  const Var pdf = exp(square(x) * -0.5) * kInvSqrt2Pi;
  return G{c.dy * (cdf + x * pdf)};
}));

const OpDef& softplus_op = register_op(activation<ew::SoftplusF>("softplus", lower_softplus).grad([](const GradCtx& c) {
  return G{c.dy * sigmoid(c.x())};
}));

// As torch.clamp: the gradient passes where lo <= x <= hi.
const OpDef& clip_op = register_op(activation<ew::ClipF>("clip", lower_clip).grad([](const GradCtx& c) {
  const Var& x = c.x();
  return G{where(ge(x, c.attrs.get_float("min")), where(le(x, c.attrs.get_float("max")), c.dy, 0.0), 0.0)};
}));

}  // namespace

Var leaky_relu(Var x, double negative_slope) {
  return x.graph().apply(leaky_relu_op, {x}, {{"negative_slope", negative_slope}});
}
Var elu(Var x, double alpha) { return x.graph().apply(elu_op, {x}, {{"alpha", alpha}}); }
Var gelu(Var x, bool tanh_approximation) {
  return x.graph().apply(gelu_op, {x}, {{"tanh", std::int64_t{tanh_approximation}}});
}
Var softplus(Var x) { return x.graph().apply(softplus_op, {x}); }
Var clip(Var x, double lo, double hi) {
  if (lo > hi) throw ValueError("clip: min " + std::to_string(lo) + " is greater than max " + std::to_string(hi));
  return x.graph().apply(clip_op, {x}, {{"min", lo}, {"max", hi}});
}

}  // namespace xgrad
