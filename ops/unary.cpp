// Elementwise unary ops. Each functor works on scalars and xsimd batches.
#include <cstring>

#include "ops/elementwise.h"
#include "ops/ops.h"

namespace xgrad {

namespace {


struct NegF { template <class V> V operator()(V x) const { return -x; } };
struct ExpF { template <class V> V operator()(V x) const { return xsimd::exp(x); } };
struct LogF { template <class V> V operator()(V x) const { return xsimd::log(x); } };
struct TanhF { template <class V> V operator()(V x) const { return xsimd::tanh(x); } };
struct SigmoidF { template <class V> V operator()(V x) const { return V(1) / (V(1) + xsimd::exp(-x)); } };
struct ReluF { template <class V> V operator()(V x) const { return xsimd::max(x, V(0)); } };
struct SquareF { template <class V> V operator()(V x) const { return x * x; } };
struct SqrtF { template <class V> V operator()(V x) const { return xsimd::sqrt(x); } };
struct StepF {
  template <class V> V operator()(V x) const {
    if constexpr (std::is_floating_point_v<V>) return x > V(0) ? V(1) : V(0);
    else return xsimd::select(x > V(0), V(1), V(0));
  }
};
struct ZeroF { template <class V> V operator()(V) const { return V(0); } };
struct PowF {
  explicit PowF(const Attrs& a) : p(a.get_float("exponent")) {}
  double p;
  template <class V> V operator()(V x) const {
    if constexpr (std::is_floating_point_v<V>) return std::pow(x, static_cast<V>(p));
    else return xsimd::pow(x, V(static_cast<typename V::value_type>(p)));
  }
};

OpDef unary(const char* name, KernelFn kernel, const char* onnx) {
  return OpDef(name).arity(1).infer(infer::same_floating).kernel(kernel).onnx(onnx);
}

using kernels::unary_kernel;
using G = std::vector<Var>;

const OpDef& neg_op = register_op(unary("neg", unary_kernel<NegF>, "Neg").grad([](const GradCtx& c) { return G{-c.dy}; }));
const OpDef& exp_op = register_op(unary("exp", unary_kernel<ExpF>, "Exp").grad([](const GradCtx& c) { return G{c.dy * c.output}; }));
const OpDef& log_op = register_op(unary("log", unary_kernel<LogF>, "Log").grad([](const GradCtx& c) { return G{c.dy / c.x()}; }));
const OpDef& tanh_op = register_op(unary("tanh", unary_kernel<TanhF>, "Tanh").grad([](const GradCtx& c) {
  return G{c.dy * (1.0 - square(c.output))};
}));
const OpDef& sigmoid_op = register_op(unary("sigmoid", unary_kernel<SigmoidF>, "Sigmoid").grad([](const GradCtx& c) {
  return G{c.dy * c.output * (1.0 - c.output)};
}));
const OpDef& relu_op = register_op(unary("relu", unary_kernel<ReluF>, "Relu").grad([](const GradCtx& c) {
  return G{c.dy * step(c.x())};
}));
const OpDef& square_op = register_op(unary("square", unary_kernel<SquareF>, "Mul").grad([](const GradCtx& c) {
  return G{c.dy * c.x() * 2.0};
}));
const OpDef& sqrt_op = register_op(unary("sqrt", unary_kernel<SqrtF>, "Sqrt").grad([](const GradCtx& c) {
  return G{c.dy * 0.5 / c.output};
}));
const OpDef& pow_op = register_op(unary("pow", unary_kernel<PowF>, "Pow").grad([](const GradCtx& c) {
  const double p = c.attrs.get_float("exponent");
  return G{c.dy * pow(c.x(), p - 1.0) * p};
}));
// step is piecewise constant: its derivative is zero almost everywhere, so
// relu's second derivative comes out as zero, as in PyTorch.
const OpDef& step_op = register_op(unary("step", unary_kernel<StepF>, "Greater").grad([](const GradCtx&) { return G{Var()}; }));
const OpDef& zeros_like_op = register_op(
    OpDef("zeros_like").infer([](const std::vector<TensorType>& in, const Attrs&) { return in[0]; })
        .kernel([](const Tensor* const*, Tensor& out, const Attrs&) {
          std::memset(out.raw_data(), 0, static_cast<std::size_t>(out.numel()) * itemsize(out.dtype()));
        })
        .grad([](const GradCtx&) { return G{Var()}; })
        .onnx("ConstantOfShape"));

}  // namespace

Var neg(Var x) { return x.graph().apply(neg_op, {x}); }
Var exp(Var x) { return x.graph().apply(exp_op, {x}); }
Var log(Var x) { return x.graph().apply(log_op, {x}); }
Var tanh(Var x) { return x.graph().apply(tanh_op, {x}); }
Var sigmoid(Var x) { return x.graph().apply(sigmoid_op, {x}); }
Var relu(Var x) { return x.graph().apply(relu_op, {x}); }
Var square(Var x) { return x.graph().apply(square_op, {x}); }
Var sqrt(Var x) { return x.graph().apply(sqrt_op, {x}); }
Var pow(Var x, double exponent) { return x.graph().apply(pow_op, {x}, {{"exponent", exponent}}); }
Var step(Var x) { return x.graph().apply(step_op, {x}); }
Var zeros_like(Var x) { return x.graph().apply(zeros_like_op, {x}); }

}  // namespace xgrad
