// Elementwise binary ops with numpy broadcasting. Gradients are summed back
// to each input's shape by sum_to_like.
#include <cmath>

#include "core/onnx_lowering.h"
#include "ops/elementwise.h"
#include "ops/ops.h"

namespace xgrad {

namespace {

// F's math as the op's kernel and as its span kernel (for tiled groups).
template <class F>
OpDef binary(const char* name, LowerFn onnx) {
  return OpDef(name).arity(2).infer(infer::broadcast_floating).kernel(kernels::binary_kernel<F>).span(kernels::binary_span<F>).onnx(onnx);
}

const OpDef& add_op = register_op(binary<ew::AddF>("add", onnx_same("Add")).grad([](const GradCtx& c) {
  return std::vector<Var>{sum_to_like(c.dy, c.x(0)), sum_to_like(c.dy, c.x(1))};
}));

const OpDef& sub_op = register_op(binary<ew::SubF>("sub", onnx_same("Sub")).grad([](const GradCtx& c) {
  return std::vector<Var>{sum_to_like(c.dy, c.x(0)), sum_to_like(-c.dy, c.x(1))};
}));

const OpDef& mul_op = register_op(binary<ew::MulF>("mul", onnx_same("Mul")).grad([](const GradCtx& c) {
  return std::vector<Var>{sum_to_like(c.dy * c.x(1), c.x(0)), sum_to_like(c.dy * c.x(0), c.x(1))};
}));

const OpDef& div_op = register_op(binary<ew::DivF>("div", onnx_same("Div")).grad([](const GradCtx& c) {
  // d(a/b)/db = -a/b^2 = -y/b
  return std::vector<Var>{sum_to_like(c.dy / c.x(1), c.x(0)), sum_to_like(-(c.dy * c.output) / c.x(1), c.x(1))};
}));

const OpDef& pow_op = register_op(binary<ew::PowF>("pow", onnx_same("Pow")).grad([](const GradCtx& c) {
  const Var& a = c.x(0);
  const Var& b = c.x(1);
  // d/db a^b = a^b log(a); taken as 0 where a == 0 (the limit for b > 0), as in PyTorch.
  const Var db = where(eq(a, 0.0), 0.0, c.dy * c.output * log(a));
  return std::vector<Var>{sum_to_like(c.dy * b * pow(a, b - 1.0), a), sum_to_like(db, b)};
}));

// The gradient of maximum (minimum) goes to the larger (smaller) input; ties split it evenly.
std::vector<Var> select_grad(const GradCtx& c, Var a_wins, Var b_wins) {
  const Var tie = eq(c.x(0), c.x(1));
  const Var half = where(tie, c.dy * 0.5, 0.0);
  return {sum_to_like(where(a_wins, c.dy, half), c.x(0)), sum_to_like(where(b_wins, c.dy, half), c.x(1))};
}

const OpDef& maximum_op = register_op(binary<ew::MaxF>("maximum", onnx_same("Max")).grad([](const GradCtx& c) {
  return select_grad(c, gt(c.x(0), c.x(1)), lt(c.x(0), c.x(1)));
}));

const OpDef& minimum_op = register_op(binary<ew::MinF>("minimum", onnx_same("Min")).grad([](const GradCtx& c) {
  return select_grad(c, lt(c.x(0), c.x(1)), gt(c.x(0), c.x(1)));
}));

Var scalar_like(Var like, double value) { return like.graph().scalar(value, like.dtype()); }

std::string lower_lerp(OnnxLowerCtx& c, bool square) {
  const std::string b = square ? c.op("Mul", {c.in(1), c.in(1)}) : c.in(1);
  return c.op("Add", {c.in(0), c.op("Mul", {c.scalar(c.attrs().get_float("weight")), c.op("Sub", {b, c.in(0)})})});
}

const OpDef& lerp_op = register_op(binary<ew::LerpF>("lerp", [](OnnxLowerCtx& c) { return lower_lerp(c, false); })
    .grad([](const GradCtx& c) {
      const double w = c.attrs.get_float("weight");
      return std::vector<Var>{sum_to_like(c.dy * (1.0 - w), c.x(0)), sum_to_like(c.dy * w, c.x(1))};
    }));

const OpDef& lerp_square_op = register_op(binary<ew::LerpSquareF>("lerp_square", [](OnnxLowerCtx& c) { return lower_lerp(c, true); })
    .grad([](const GradCtx& c) {
      const double w = c.attrs.get_float("weight");
      return std::vector<Var>{sum_to_like(c.dy * (1.0 - w), c.x(0)), sum_to_like(c.dy * c.x(1) * (2.0 * w), c.x(1))};
    }));

}  // namespace

Var lerp(Var a, Var b, double weight) { return a.graph().apply(lerp_op, {a, b}, {{"weight", weight}}); }
Var lerp_square(Var a, Var b, double weight) { return a.graph().apply(lerp_square_op, {a, b}, {{"weight", weight}}); }

Var pow(Var base, Var exponent) { return base.graph().apply(pow_op, {base, exponent}); }
Var maximum(Var a, Var b) { return a.graph().apply(maximum_op, {a, b}); }
Var minimum(Var a, Var b) { return a.graph().apply(minimum_op, {a, b}); }

Var add(Var a, Var b) { return a.graph().apply(add_op, {a, b}); }
Var sub(Var a, Var b) { return a.graph().apply(sub_op, {a, b}); }
Var mul(Var a, Var b) { return a.graph().apply(mul_op, {a, b}); }
Var div(Var a, Var b) { return a.graph().apply(div_op, {a, b}); }

Var operator+(Var a, Var b) { return add(a, b); }
Var operator-(Var a, Var b) { return sub(a, b); }
Var operator*(Var a, Var b) { return mul(a, b); }
Var operator/(Var a, Var b) { return div(a, b); }
Var operator-(Var a) { return neg(a); }
Var operator+(Var a, double b) { return add(a, scalar_like(a, b)); }
Var operator-(Var a, double b) { return sub(a, scalar_like(a, b)); }
Var operator*(Var a, double b) { return mul(a, scalar_like(a, b)); }
Var operator/(Var a, double b) { return div(a, scalar_like(a, b)); }
Var operator+(double a, Var b) { return add(scalar_like(b, a), b); }
Var operator-(double a, Var b) { return sub(scalar_like(b, a), b); }
Var operator*(double a, Var b) { return mul(scalar_like(b, a), b); }
Var operator/(double a, Var b) { return div(scalar_like(b, a), b); }

}  // namespace xgrad
