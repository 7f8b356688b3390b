// Elementwise unary ops. Each functor works on scalars and xsimd batches;
// each gradient is written with builder functions, so it differentiates again.
#include <cmath>
#include <cstring>

#include "core/onnx_lowering.h"
#include "ops/elementwise.h"
#include "ops/ops.h"

namespace xgrad {

namespace {

// F's math as the op's kernel and as its span kernel (for tiled groups).
template <class F>
OpDef unary(const char* name, LowerFn onnx) {
  return OpDef(name).arity(1).infer(infer::same_floating).kernel(kernels::unary_kernel<F>).span(kernels::unary_span<F>).onnx(onnx);
}

using kernels::unary_kernel;
using G = std::vector<Var>;
constexpr double kTwoOverSqrtPi = 1.1283791670955126;

const OpDef& neg_op = register_op(unary<ew::NegF>("neg", onnx_same("Neg")).grad([](const GradCtx& c) { return G{-c.dy}; }));
const OpDef& exp_op = register_op(unary<ew::ExpF>("exp", onnx_same("Exp")).grad([](const GradCtx& c) { return G{c.dy * c.output}; }));
const OpDef& log_op = register_op(unary<ew::LogF>("log", onnx_same("Log")).grad([](const GradCtx& c) { return G{c.dy / c.x()}; }));
const OpDef& tanh_op = register_op(unary<ew::TanhF>("tanh", onnx_same("Tanh")).grad([](const GradCtx& c) {
  return G{c.dy * (1.0 - square(c.output))};
}));
const OpDef& sigmoid_op = register_op(unary<ew::SigmoidF>("sigmoid", onnx_same("Sigmoid")).grad([](const GradCtx& c) {
  return G{c.dy * c.output * (1.0 - c.output)};
}));
// where() carries no gradient to its condition, so relu's second derivative is zero, as in PyTorch. The mask
// reads the output (y > 0 exactly where x > 0), so the backward pass leaves x to relu alone and the compiler can
// fuse matmul + bias + relu (autodiff/fusion.h).
const OpDef& relu_op = register_op(unary<ew::ReluF>("relu", onnx_same("Relu")).grad([](const GradCtx& c) {
  return G{where(gt(c.output, 0.0), c.dy, 0.0)};
}));
const OpDef& square_op = register_op(unary<ew::SquareF>("square", [](OnnxLowerCtx& c) { return c.op("Mul", {c.in(), c.in()}); }).grad([](const GradCtx& c) {
  return G{c.dy * c.x() * 2.0};
}));
const OpDef& sqrt_op = register_op(unary<ew::SqrtF>("sqrt", onnx_same("Sqrt")).grad([](const GradCtx& c) {
  return G{c.dy * 0.5 / c.output};
}));
const OpDef& rsqrt_op = register_op(unary<ew::RsqrtF>("rsqrt", [](OnnxLowerCtx& c) { return c.op("Reciprocal", {c.op("Sqrt", {c.in()})}); }).grad([](const GradCtx& c) {
  return G{c.dy * -0.5 * c.output * c.output * c.output};
}));
const OpDef& abs_op = register_op(unary<ew::AbsF>("abs", onnx_same("Abs")).grad([](const GradCtx& c) {
  return G{c.dy * sign(c.x())};
}));
const OpDef& sign_op = register_op(unary<ew::SignF>("sign", onnx_same("Sign")).grad([](const GradCtx&) {
  return G{Var()};  // piecewise constant: zero almost everywhere, as in PyTorch
}));
const OpDef& expm1_op = register_op(unary<ew::Expm1F>("expm1", [](OnnxLowerCtx& c) { return c.op("Sub", {c.op("Exp", {c.in()}), c.scalar(1)}); }).grad([](const GradCtx& c) {
  return G{c.dy * (c.output + 1.0)};
}));
const OpDef& log1p_op = register_op(unary<ew::Log1pF>("log1p", [](OnnxLowerCtx& c) { return c.op("Log", {c.op("Add", {c.in(), c.scalar(1)})}); }).grad([](const GradCtx& c) {
  return G{c.dy / (c.x() + 1.0)};
}));
const OpDef& sin_op = register_op(unary<ew::SinF>("sin", onnx_same("Sin")).grad([](const GradCtx& c) { return G{c.dy * cos(c.x())}; }));
const OpDef& cos_op = register_op(unary<ew::CosF>("cos", onnx_same("Cos")).grad([](const GradCtx& c) { return G{-(c.dy * sin(c.x()))}; }));
const OpDef& erf_op = register_op(unary<ew::ErfF>("erf", onnx_same("Erf")).grad([](const GradCtx& c) {
  return G{c.dy * exp(-square(c.x())) * kTwoOverSqrtPi};
}));
const OpDef& floor_op = register_op(unary<ew::FloorF>("floor", onnx_same("Floor")).grad([](const GradCtx&) {
  return G{Var()};  // piecewise constant
}));
const OpDef& pow_scalar_op = register_op(unary<ew::PowScalarF>("pow_scalar", [](OnnxLowerCtx& c) {
  return c.op("Pow", {c.in(), c.scalar(c.attrs().get_float("exponent"))});
}).grad([](const GradCtx& c) {
  const double p = c.attrs.get_float("exponent");
  return G{c.dy * pow(c.x(), p - 1.0) * p};
}));
const OpDef& zeros_like_op = register_op(
    OpDef("zeros_like").infer([](const std::vector<TensorType>& in, const Attrs&) { return in[0]; })
        .kernel([](const Tensor* const*, Tensor& out, const Attrs&) { out.fill_zero(); })
        .any_device()
        .grad([](const GradCtx&) { return G{Var()}; })
        .onnx([](OnnxLowerCtx& c) { return c.op("Expand", {c.scalar(0), c.op("Shape", {c.in()})}); }));

const OpDef& astype_op = register_op(
    OpDef("astype")
        .elementwise()
        .infer([](const std::vector<TensorType>& in, const Attrs& a) {
          return TensorType{static_cast<DType>(a.get_int("dtype")), in[0].shape};
        })
        .kernel([](const Tensor* const* in, Tensor& out, const Attrs&) { out.copy_from(*in[0]); })
        .any_device()
        .onnx([](OnnxLowerCtx& c) { return c.cast(c.in(), c.out_type().dtype); })
        .grad([](const GradCtx& c) {
          // Only float-to-float casts carry a gradient; from int or bool the input has none.
          if (!is_floating(c.x().dtype()) || !is_floating(c.output.dtype())) return G{Var()};
          return G{astype(c.dy, c.x().dtype())};
        }));

}  // namespace

Var neg(Var x) { return x.graph().apply(neg_op, {x}); }
Var exp(Var x) { return x.graph().apply(exp_op, {x}); }
Var log(Var x) { return x.graph().apply(log_op, {x}); }
Var tanh(Var x) { return x.graph().apply(tanh_op, {x}); }
Var sigmoid(Var x) { return x.graph().apply(sigmoid_op, {x}); }
Var relu(Var x) { return x.graph().apply(relu_op, {x}); }
Var square(Var x) { return x.graph().apply(square_op, {x}); }
Var sqrt(Var x) { return x.graph().apply(sqrt_op, {x}); }
Var rsqrt(Var x) { return x.graph().apply(rsqrt_op, {x}); }
Var abs(Var x) { return x.graph().apply(abs_op, {x}); }
Var sign(Var x) { return x.graph().apply(sign_op, {x}); }
Var expm1(Var x) { return x.graph().apply(expm1_op, {x}); }
Var log1p(Var x) { return x.graph().apply(log1p_op, {x}); }
Var sin(Var x) { return x.graph().apply(sin_op, {x}); }
Var cos(Var x) { return x.graph().apply(cos_op, {x}); }
Var erf(Var x) { return x.graph().apply(erf_op, {x}); }
Var floor(Var x) { return x.graph().apply(floor_op, {x}); }
Var pow(Var x, double exponent) { return x.graph().apply(pow_scalar_op, {x}, {{"exponent", exponent}}); }
Var zeros_like(Var x) { return x.graph().apply(zeros_like_op, {x}); }
Var astype(Var x, DType dtype) {
  if (x.dtype() == dtype) return x;
  return x.graph().apply(astype_op, {x}, {{"dtype", static_cast<std::int64_t>(dtype)}});
}

}  // namespace xgrad
