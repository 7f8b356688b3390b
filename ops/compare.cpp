// Comparisons (bool out, numpy broadcasting) and where(cond, a, b).
#include "core/onnx_lowering.h"
#include "ops/elementwise.h"
#include "ops/ops.h"

namespace xgrad {

namespace {

using G = std::vector<Var>;

OpDef comparison(const char* name, KernelFn kernel, LowerFn onnx) {
  return OpDef(name).arity(2).infer(infer::broadcast_compare).kernel(kernel).onnx(onnx).elementwise()
      .not_differentiable("a comparison is piecewise constant; its bool output carries no gradient");
}

const OpDef& eq_op = register_op(comparison("eq", kernels::compare_kernel<ew::EqF>, onnx_same("Equal")));
const OpDef& ne_op = register_op(comparison("ne", kernels::compare_kernel<ew::NeF>, [](OnnxLowerCtx& c) { return c.op("Not", {c.op("Equal", c.ins())}); }));
const OpDef& lt_op = register_op(comparison("lt", kernels::compare_kernel<ew::LtF>, onnx_same("Less")));
const OpDef& le_op = register_op(comparison("le", kernels::compare_kernel<ew::LeF>, onnx_same("LessOrEqual")));
const OpDef& gt_op = register_op(comparison("gt", kernels::compare_kernel<ew::GtF>, onnx_same("Greater")));
const OpDef& ge_op = register_op(comparison("ge", kernels::compare_kernel<ew::GeF>, onnx_same("GreaterOrEqual")));

TensorType infer_where(const std::vector<TensorType>& in, const Attrs&) {
  if (in[0].dtype != DType::bool_)
    throw TypeError(std::string("the condition must be bool, got ") + dtype_name(in[0].dtype));
  infer::require_same_dtype(in[1], in[2]);
  return {in[1].dtype, broadcast_shapes(in[0].shape, broadcast_shapes(in[1].shape, in[2].shape))};
}

const OpDef& where_op = register_op(OpDef("where").arity(3).infer(infer_where).kernel(kernels::where_kernel).onnx("Where").elementwise()
    .grad([](const GradCtx& c) {
      const Var zero = c.dy.graph().scalar(0.0, c.dy.dtype());
      return G{Var(), sum_to_like(where(c.x(0), c.dy, zero), c.x(1)), sum_to_like(where(c.x(0), zero, c.dy), c.x(2))};
    }));

Var scalar_like(Var like, double value) { return like.graph().scalar(value, like.dtype()); }

}  // namespace

Var eq(Var a, Var b) { return a.graph().apply(eq_op, {a, b}); }
Var ne(Var a, Var b) { return a.graph().apply(ne_op, {a, b}); }
Var lt(Var a, Var b) { return a.graph().apply(lt_op, {a, b}); }
Var le(Var a, Var b) { return a.graph().apply(le_op, {a, b}); }
Var gt(Var a, Var b) { return a.graph().apply(gt_op, {a, b}); }
Var ge(Var a, Var b) { return a.graph().apply(ge_op, {a, b}); }
Var eq(Var a, double b) { return eq(a, scalar_like(a, b)); }
Var ne(Var a, double b) { return ne(a, scalar_like(a, b)); }
Var lt(Var a, double b) { return lt(a, scalar_like(a, b)); }
Var le(Var a, double b) { return le(a, scalar_like(a, b)); }
Var gt(Var a, double b) { return gt(a, scalar_like(a, b)); }
Var ge(Var a, double b) { return ge(a, scalar_like(a, b)); }
Var where(Var cond, Var a, Var b) { return cond.graph().apply(where_op, {cond, a, b}); }
Var where(Var cond, Var a, double b) { return where(cond, a, scalar_like(a, b)); }
Var where(Var cond, double a, Var b) { return where(cond, scalar_like(b, a), b); }

}  // namespace xgrad
