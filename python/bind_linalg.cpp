// The xgrad.linalg submodule: numpy.linalg-style functions over nodes.
// Matrices are the last two axes; leading axes broadcast as a batch.
#include <pybind11/stl.h>

#include "ops/linalg.h"
#include "python/convert.h"

namespace xgrad::python {

namespace {

// Applies f to two operands of which at least one is a node; the other may be
// an array-like (a constant of the node's dtype).
template <class F>
PyNode two_operands(const py::object& a, const py::object& b, const char* name, F f) {
  const PyNode* anchor = py::isinstance<PyNode>(a) ? &a.cast<const PyNode&>()
                         : py::isinstance<PyNode>(b) ? &b.cast<const PyNode&>() : nullptr;
  if (!anchor) throw TypeError(std::string("linalg.") + name + ": at least one operand must be an xgrad node");
  return wrap(anchor->graph, f(as_var(a, *anchor), as_var(b, *anchor)));
}

template <class F>
void def_unary(py::module_& m, const char* name, F f, const char* doc) {
  m.def(name, [f](const PyNode& x) { return wrap(x.graph, f(x.var)); }, py::arg("a"), doc);
}

}  // namespace

void bind_linalg(py::module_& parent) {
  py::module_ m = parent.def_submodule(
      "linalg",
      "Linear algebra on nodes, like numpy.linalg: the last two axes are the matrix, leading axes a batch that\n"
      "broadcasts. float32 and float64 through LAPACK; every function is differentiable (twice and more).\n"
      "A singular or non-positive-definite matrix raises ValueError when the program runs.");

  def_unary(m, "cholesky", xgrad::cholesky,
            "Lower-triangular L with a = L @ L.T. Reads only a's lower triangle; a must be positive definite.\n"
            "The gradient is the symmetric one (as in PyTorch).");
  def_unary(m, "inv", xgrad::inv, "The inverse of each (square, nonsingular) matrix.");
  def_unary(m, "det", xgrad::det, "Determinants (0 for a singular matrix; the gradient needs a nonsingular one).");
  m.def("slogdet", [](const PyNode& a) {
          const Slogdet r = xgrad::slogdet(a.var);
          return py::make_tuple(wrap(a.graph, r.sign), wrap(a.graph, r.logabsdet));
        }, py::arg("a"),
        "(sign, logabsdet) with det = sign * exp(logabsdet), like numpy.linalg.slogdet; sign has a zero gradient.");
  m.def("solve", [](const py::object& a, const py::object& b) {
          return two_operands(a, b, "solve", [](Var x, Var y) { return xgrad::solve(x, y); });
        }, py::arg("a"), py::arg("b"),
        "x with a @ x = b. b is (..., n, k), or (n,) for one right-hand side (numpy 2's rule).");
  m.def("triangular_solve", [](const py::object& a, const py::object& b, bool lower, bool transpose, bool unit) {
          return two_operands(a, b, "triangular_solve",
                              [&](Var x, Var y) { return xgrad::triangular_solve(x, y, lower, transpose, unit); });
        }, py::arg("a"), py::arg("b"), py::arg("lower") = true, py::arg("transpose") = false,
        py::arg("unitriangular") = false,
        "x with op(a) @ x = b, op(a) = a.T when transpose, for triangular a. Only the lower (or upper)\n"
        "triangle of a is read, and with unitriangular its diagonal counts as ones.");
  m.def("cholesky_solve", [](const py::object& l, const py::object& b) {
          return two_operands(l, b, "cholesky_solve", [](Var x, Var y) { return xgrad::cholesky_solve(x, y); });
        }, py::arg("l"), py::arg("b"), "x with (l @ l.T) @ x = b, for l = cholesky(a): two triangular solves.");
  m.def("lstsq", [](const py::object& a, const py::object& b) {
          return two_operands(a, b, "lstsq", [](Var x, Var y) { return xgrad::lstsq(x, y); });
        }, py::arg("a"), py::arg("b"),
        "The least-squares solution x of a @ x ~ b for a (..., m, n), m >= n, of full column rank (a\n"
        "rank-deficient a raises ValueError). Returns x only, not numpy's (x, residuals, rank, s).");
  m.def("tril", [](const PyNode& x, std::int64_t k) { return wrap(x.graph, xgrad::tril(x.var, k)); }, py::arg("x"),
        py::arg("k") = 0, "x on and below the k-th diagonal, zeros above (like numpy.tril).");
  m.def("triu", [](const PyNode& x, std::int64_t k) { return wrap(x.graph, xgrad::triu(x.var, k)); }, py::arg("x"),
        py::arg("k") = 0, "x on and above the k-th diagonal, zeros below (like numpy.triu).");
  def_unary(m, "matrix_transpose", xgrad::matrix_transpose, "The last two axes swapped (a view).");
}

}  // namespace xgrad::python
