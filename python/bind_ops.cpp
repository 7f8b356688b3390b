// The op functions of the xgrad module: xg.tanh(x), xg.sum(x, axis=1), ...
#include <pybind11/stl.h>

#include <limits>

#include "python/convert.h"

namespace xgrad::python {

namespace {

bool is_number(const py::handle& h) { return py::isinstance<py::float_>(h) || py::isinstance<py::int_>(h); }

const PyNode& anchor_of(std::initializer_list<const py::object*> objs, const char* name) {
  for (const auto* o : objs)
    if (py::isinstance<PyNode>(*o)) return o->cast<const PyNode&>();
  throw TypeError(std::string(name) + ": at least one operand must be an xgrad node");
}

template <class F>
void def_unary(py::module_& m, const char* name, F f, const char* doc) {
  m.def(name, [f](const PyNode& x) { return wrap(x.graph, f(x.var)); }, py::arg("x"), doc);
}

template <class F>
void def_binary(py::module_& m, const char* name, F f, const char* doc) {
  m.def(name, [f, name](const py::object& a, const py::object& b) { return binary(a, b, f, name); }, py::arg("a"),
        py::arg("b"), doc);
}

using Reduction = Var (*)(Var, const Axes&, bool);

void def_reduction(py::module_& m, const char* name, Reduction f, const char* doc) {
  m.def(name, [f](const PyNode& x, const py::object& axis, bool keepdims) { return wrap(x.graph, f(x.var, parse_axes(axis), keepdims)); },
        py::arg("x"), py::arg("axis") = py::none(), py::arg("keepdims") = false, doc);
}

std::optional<std::int64_t> optional_axis(const py::object& axis) {
  if (axis.is_none()) return std::nullopt;
  return axis.cast<std::int64_t>();
}

}  // namespace

PyNode power(const py::object& a, const py::object& b) {
  if (py::isinstance<PyNode>(a) && is_number(b)) {
    const auto& x = a.cast<const PyNode&>();
    return wrap(x.graph, xgrad::pow(x.var, b.cast<double>()));
  }
  return binary(a, b, static_cast<BinaryBuilder>(xgrad::pow), "pow");
}

void bind_ops(py::module_& m) {
  def_unary(m, "neg", xgrad::neg, "-x");
  def_unary(m, "exp", xgrad::exp, "e**x, elementwise");
  def_unary(m, "expm1", xgrad::expm1, "e**x - 1, accurate for small x");
  def_unary(m, "log", xgrad::log, "natural logarithm, elementwise");
  def_unary(m, "log1p", xgrad::log1p, "log(1 + x), accurate for small x");
  def_unary(m, "tanh", xgrad::tanh, "hyperbolic tangent, elementwise");
  def_unary(m, "sigmoid", xgrad::sigmoid, "1 / (1 + exp(-x)), elementwise");
  def_unary(m, "relu", xgrad::relu, "max(x, 0), elementwise");
  def_unary(m, "square", xgrad::square, "x * x, elementwise");
  def_unary(m, "sqrt", xgrad::sqrt, "square root, elementwise");
  def_unary(m, "rsqrt", xgrad::rsqrt, "1 / sqrt(x), elementwise");
  def_unary(m, "abs", xgrad::abs, "|x|, elementwise");
  def_unary(m, "sign", xgrad::sign, "-1, 0 or 1 by the sign of x (zero gradient)");
  def_unary(m, "sin", xgrad::sin, "sine, elementwise");
  def_unary(m, "cos", xgrad::cos, "cosine, elementwise");
  def_unary(m, "erf", xgrad::erf, "the error function, elementwise");
  def_unary(m, "softplus", xgrad::softplus, "log(1 + exp(x)), computed without overflow");
  def_unary(m, "stop_gradient", xgrad::stop_gradient, "x, treated as a constant by grad (like torch's detach)");
  m.def("leaky_relu", [](const PyNode& x, double slope) { return wrap(x.graph, leaky_relu(x.var, slope)); },
        py::arg("x"), py::arg("negative_slope") = 0.01, "x where x > 0, else negative_slope * x");
  m.def("elu", [](const PyNode& x, double alpha) { return wrap(x.graph, elu(x.var, alpha)); }, py::arg("x"),
        py::arg("alpha") = 1.0, "x where x > 0, else alpha * (exp(x) - 1)");
  m.def("gelu", [](const PyNode& x, const std::string& approximate) {
          if (approximate != "none" && approximate != "tanh")
            throw ValueError("gelu: approximate must be 'none' or 'tanh', got '" + approximate + "'");
          return wrap(x.graph, gelu(x.var, approximate == "tanh"));
        }, py::arg("x"), py::arg("approximate") = "none", "x * Phi(x) (erf form), or its tanh approximation");
  m.def("clip", [](const PyNode& x, const py::object& lo, const py::object& hi) {
          const double inf = std::numeric_limits<double>::infinity();
          if (lo.is_none() && hi.is_none()) throw ValueError("clip: give min, max or both");
          return wrap(x.graph, clip(x.var, lo.is_none() ? -inf : lo.cast<double>(), hi.is_none() ? inf : hi.cast<double>()));
        }, py::arg("x"), py::arg("min") = py::none(), py::arg("max") = py::none(), "x limited to [min, max]");
  m.def("astype", [](const PyNode& x, const py::object& dtype) { return wrap(x.graph, astype(x.var, parse_dtype(dtype, "astype"))); },
        py::arg("x"), py::arg("dtype"), "x converted to dtype (float32, float64, int64, bool)");

  def_binary(m, "add", static_cast<BinaryBuilder>(xgrad::add), "a + b, broadcasting");
  def_binary(m, "sub", static_cast<BinaryBuilder>(xgrad::sub), "a - b, broadcasting");
  def_binary(m, "mul", static_cast<BinaryBuilder>(xgrad::mul), "a * b, broadcasting");
  def_binary(m, "div", static_cast<BinaryBuilder>(xgrad::div), "a / b, broadcasting");
  def_binary(m, "maximum", static_cast<BinaryBuilder>(xgrad::maximum), "elementwise larger of a and b; ties split the gradient");
  def_binary(m, "minimum", static_cast<BinaryBuilder>(xgrad::minimum), "elementwise smaller of a and b; ties split the gradient");
  def_binary(m, "matmul", static_cast<BinaryBuilder>(xgrad::matmul), "matrix product");
  def_binary(m, "eq", static_cast<BinaryBuilder>(xgrad::eq), "a == b (bool)");
  def_binary(m, "ne", static_cast<BinaryBuilder>(xgrad::ne), "a != b (bool)");
  def_binary(m, "lt", static_cast<BinaryBuilder>(xgrad::lt), "a < b (bool)");
  def_binary(m, "le", static_cast<BinaryBuilder>(xgrad::le), "a <= b (bool)");
  def_binary(m, "gt", static_cast<BinaryBuilder>(xgrad::gt), "a > b (bool)");
  def_binary(m, "ge", static_cast<BinaryBuilder>(xgrad::ge), "a >= b (bool)");
  m.def("pow", &power, py::arg("x"), py::arg("exponent"), "x ** exponent; the exponent is a number or a node");
  m.def("where", [](const py::object& cond, const py::object& a, const py::object& b) {
          const PyNode& anchor = anchor_of({&a, &b, &cond}, "where");
          const PyNode& value_anchor = py::isinstance<PyNode>(a) ? a.cast<const PyNode&>()
                                       : py::isinstance<PyNode>(b) ? b.cast<const PyNode&>() : anchor;
          Var c = py::isinstance<PyNode>(cond) ? as_var(cond, anchor)
                                               : anchor.graph->constant(to_tensor(cond, DType::bool_, "where condition"));
          return wrap(anchor.graph, where(c, as_var(a, value_anchor), as_var(b, value_anchor)));
        }, py::arg("cond"), py::arg("a"), py::arg("b"), "a where cond is true, else b (broadcasting)");

  def_reduction(m, "sum", xgrad::sum, "sum over axis (None: all), like numpy");
  def_reduction(m, "mean", xgrad::mean, "mean over axis (None: all)");
  def_reduction(m, "max", xgrad::max, "maximum over axis (None: all); ties share the gradient");
  def_reduction(m, "min", xgrad::min, "minimum over axis (None: all); ties share the gradient");
  def_reduction(m, "prod", xgrad::prod, "product over axis (None: all)");
  def_reduction(m, "logsumexp", xgrad::logsumexp, "log(sum(exp(x))) over axis, computed without overflow");
  m.def("var", [](const PyNode& x, const py::object& axis, bool keepdims, double ddof) {
          return wrap(x.graph, var(x.var, parse_axes(axis), keepdims, ddof));
        }, py::arg("x"), py::arg("axis") = py::none(), py::arg("keepdims") = false, py::arg("ddof") = 0.0,
        "variance over axis; ddof=1 for the sample variance (numpy's convention)");
  m.def("std", [](const PyNode& x, const py::object& axis, bool keepdims, double ddof) {
          return wrap(x.graph, xgrad::std(x.var, parse_axes(axis), keepdims, ddof));
        }, py::arg("x"), py::arg("axis") = py::none(), py::arg("keepdims") = false, py::arg("ddof") = 0.0,
        "standard deviation over axis; ddof as in var");
  m.def("argmax", [](const PyNode& x, const py::object& axis, bool keepdims) {
          return wrap(x.graph, argmax(x.var, optional_axis(axis), keepdims));
        }, py::arg("x"), py::arg("axis") = py::none(), py::arg("keepdims") = false, "int64 index of the maximum");
  m.def("argmin", [](const PyNode& x, const py::object& axis, bool keepdims) {
          return wrap(x.graph, argmin(x.var, optional_axis(axis), keepdims));
        }, py::arg("x"), py::arg("axis") = py::none(), py::arg("keepdims") = false, "int64 index of the minimum");

  m.def("reshape", [](const PyNode& x, const py::object& shape) { return wrap(x.graph, reshape(x.var, parse_shape(shape, "reshape"))); },
        py::arg("x"), py::arg("shape"), "a view with a new shape (one -1 is inferred)");
  m.def("broadcast_to", [](const PyNode& x, const py::object& shape) { return wrap(x.graph, broadcast_to(x.var, parse_shape(shape, "broadcast_to"))); },
        py::arg("x"), py::arg("shape"), "a view of x broadcast to `shape` (numpy rules)");
  m.def("transpose", [](const PyNode& x, const py::object& axes) { return wrap(x.graph, transpose(x.var, parse_axes(axes))); },
        py::arg("x"), py::arg("axes") = py::none(), "a view with permuted axes (None: reversed)");
}

}  // namespace xgrad::python
