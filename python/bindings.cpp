// pybind11 module xgrad._xgrad: the C++ API with numpy in and out.
// numpy arrays cross without copies where dtype allows: a feed or view is
// wrapped (its Storage keeps the array alive), and a Tensor is handed out
// as an array whose base keeps the Tensor's Storage alive.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "autodiff/grad.h"
#include "autodiff/program.h"
#include "ops/ops.h"

namespace py = pybind11;
using namespace xgrad;

namespace {

// ---- dtypes, shapes, axes -------------------------------------------------

// The xgrad dtype of a numpy dtype; empty for dtypes xgrad does not hold.
std::optional<DType> from_numpy_dtype(const py::dtype& dt) {
  const char kind = dt.kind();
  const auto size = dt.itemsize();
  if (kind == 'f' && size == 4) return DType::float32;
  if (kind == 'f' && size == 8) return DType::float64;
  if (kind == 'i' && size == 8) return DType::int64;
  if (kind == 'b') return DType::bool_;
  return std::nullopt;
}

DType to_dtype(const py::dtype& dt, const std::string& what) {
  if (auto dtype = from_numpy_dtype(dt)) return *dtype;
  throw TypeError(what + ": numpy dtype " + py::repr(py::handle(dt)).cast<std::string>() +
                  " is not supported (use float32, float64, int64 or bool)");
}

DType parse_dtype(const py::object& obj, const std::string& what) {
  if (obj.is_none()) return DType::float32;
  return to_dtype(py::dtype::from_args(obj), what);
}

py::dtype to_numpy_dtype(DType dt) {
  switch (dt) {
    case DType::float32: return py::dtype::of<float>();
    case DType::float64: return py::dtype::of<double>();
    case DType::int64: return py::dtype::of<std::int64_t>();
    case DType::bool_: return py::dtype::of<bool>();
  }
  throw TypeError("unknown dtype");
}

Shape parse_shape(const py::handle& obj, const std::string& what) {
  Shape shape;
  if (py::isinstance<py::int_>(obj)) return {obj.cast<std::int64_t>()};
  if (!py::isinstance<py::sequence>(obj)) throw TypeError(what + ": a shape must be a tuple of ints or None");
  for (const auto& item : obj) {
    if (item.is_none()) shape.push_back(kDynamic);
    else if (py::isinstance<py::int_>(item)) shape.push_back(item.cast<std::int64_t>());
    else throw TypeError(what + ": a shape must be a tuple of ints or None, got " + py::repr(obj).cast<std::string>());
  }
  return shape;
}

py::tuple shape_tuple(const Shape& shape) {
  py::tuple t(shape.size());
  for (std::size_t i = 0; i < shape.size(); ++i)
    t[i] = shape[i] == kDynamic ? py::object(py::none()) : py::object(py::int_(shape[i]));
  return t;
}

Axes parse_axes(const py::object& axis) {
  if (axis.is_none()) return {};
  if (py::isinstance<py::int_>(axis)) return {axis.cast<std::int64_t>()};
  return axis.cast<Axes>();
}

// ---- numpy <-> Tensor -----------------------------------------------------

// Wraps an array without copying. The Storage holds a reference to the array.
Tensor wrap_array(const py::array& arr, const std::string& what) {
  const DType dtype = to_dtype(arr.dtype(), what);
  const auto item = static_cast<py::ssize_t>(itemsize(dtype));
  Shape shape(arr.shape(), arr.shape() + arr.ndim());
  Strides strides(arr.ndim());
  char* data = static_cast<char*>(const_cast<void*>(arr.data()));
  py::ssize_t lo = 0, hi = 0;
  for (py::ssize_t d = 0; d < arr.ndim(); ++d) {
    if (arr.strides(d) % item != 0) return wrap_array(py::array::ensure(arr, py::array::c_style | py::array::forcecast), what);
    strides[d] = arr.strides(d) / item;
    if (shape[d] > 0) (arr.strides(d) < 0 ? lo : hi) += (shape[d] - 1) * arr.strides(d);
  }
  const bool empty = numel(shape) == 0;
  auto owner = std::shared_ptr<void>(new py::object(arr), [](void* p) {
    py::gil_scoped_acquire gil;
    delete static_cast<py::object*>(p);
  });
  const std::size_t nbytes = empty ? 0 : static_cast<std::size_t>(hi - lo + item);
  auto storage = Storage::borrow(data + lo, nbytes, std::move(owner));
  return Tensor::view_of(std::move(storage), dtype, shape, strides, empty ? 0 : -lo / item);
}

// Any array-like as a Tensor of `dtype`: zero-copy for arrays of that dtype,
// converted once otherwise.
Tensor to_tensor(const py::handle& obj, std::optional<DType> dtype, const std::string& what) {
  py::array arr;
  if (py::isinstance<py::array>(obj) && (!dtype || from_numpy_dtype(py::reinterpret_borrow<py::array>(obj).dtype()) == *dtype)) {
    arr = py::reinterpret_borrow<py::array>(obj);
  } else {
    py::object np = py::module_::import("numpy");
    arr = dtype ? np.attr("asarray")(obj, to_numpy_dtype(*dtype)) : np.attr("asarray")(obj);
    if (!dtype && arr.dtype().kind() == 'f') arr = np.attr("asarray")(obj, py::dtype::of<float>());
  }
  return wrap_array(arr, what);
}

// Hands a Tensor to numpy without copying; the array's base keeps the storage alive.
py::array to_numpy(const Tensor& t) {
  std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
  std::vector<py::ssize_t> strides;
  for (auto s : t.strides()) strides.push_back(s * static_cast<py::ssize_t>(itemsize(t.dtype())));
  auto* keep = new Tensor(t);
  py::capsule base(keep, [](void* p) { delete static_cast<Tensor*>(p); });
  return py::array(to_numpy_dtype(t.dtype()), shape, strides, t.raw_data(), base);
}

// ---- Python-side node handle ------------------------------------------------

// A Var plus a reference to its Graph, so a node keeps its graph alive.
struct PyNode {
  std::shared_ptr<Graph> graph;
  Var var;
};

std::shared_ptr<Graph> graph_of(const std::vector<const PyNode*>& nodes) {
  for (const auto* n : nodes)
    if (n) return n->graph;
  return nullptr;
}

// A node, a Python number or an array-like, as a Var in `graph`; scalars take `like`'s dtype.
Var as_var(const py::handle& obj, const PyNode& like) {
  if (py::isinstance<PyNode>(obj)) {
    const auto& n = obj.cast<const PyNode&>();
    if (n.graph != like.graph) throw ValueError("nodes '" + n.var.name() + "' and '" + like.var.name() + "' belong to different graphs");
    return n.var;
  }
  if (py::isinstance<py::float_>(obj) || py::isinstance<py::int_>(obj))
    return like.graph->scalar(obj.cast<double>(), like.var.dtype());
  return like.graph->constant(to_tensor(obj, like.var.dtype(), "constant"));
}

PyNode wrap(const std::shared_ptr<Graph>& g, Var v) { return PyNode{g, v}; }

using BinaryBuilder = Var (*)(Var, Var);
const BinaryBuilder op_add = xgrad::add, op_sub = xgrad::sub, op_mul = xgrad::mul, op_div = xgrad::div,
                    op_matmul = xgrad::matmul;

// Applies a binary builder to any mix of nodes and scalars (at least one node).
PyNode binary(const py::object& a, const py::object& b, BinaryBuilder f, const char* name) {
  const PyNode* anchor = py::isinstance<PyNode>(a) ? &a.cast<const PyNode&>()
                         : py::isinstance<PyNode>(b) ? &b.cast<const PyNode&>() : nullptr;
  if (!anchor) throw TypeError(std::string(name) + ": at least one operand must be an xgrad node");
  return wrap(anchor->graph, f(as_var(a, *anchor), as_var(b, *anchor)));
}

std::string node_repr(const PyNode& n) {
  const Node& node = *n.var.node();
  std::string s = "<xgrad.Node '" + node.name() + "' " + kind_name(node.kind());
  if (node.op()) s += " " + node.op()->name();
  return s + " " + to_string(node.type()) + ">";
}

// ---- Program calls ------------------------------------------------------------

struct PyProgram {
  std::shared_ptr<Graph> graph;
  Program program;
  bool single_output;
};

py::object run_program(const PyProgram& self, const py::args& args, const py::kwargs& kwargs) {
  Program::Feeds feeds;
  auto add_feed = [&](const py::handle& key, const py::handle& value) {
    std::string name;
    if (py::isinstance<PyNode>(key)) name = key.cast<const PyNode&>().var.name();
    else if (py::isinstance<py::str>(key)) name = key.cast<std::string>();
    else throw TypeError("feeds are keyed by input name or input node, got " + py::repr(key).cast<std::string>());
    std::optional<DType> want;
    const auto& names = self.program.input_names();
    for (std::size_t k = 0; k < names.size(); ++k)
      if (names[k] == name) want = self.program.input_types()[k].dtype;  // a reference: no copy per call
    // Arrays keep their dtype (a mismatch is reported by run); other objects are converted.
    feeds.emplace_back(name, to_tensor(value, py::isinstance<py::array>(value) ? std::nullopt : want, "feed '" + name + "'"));
  };
  if (args.size() > 1) throw TypeError("Program takes one dict of feeds or keyword feeds");
  if (args.size() == 1) {
    if (!py::isinstance<py::dict>(args[0])) throw TypeError("Program's positional argument must be a dict of feeds");
    for (const auto& [k, v] : args[0].cast<py::dict>()) add_feed(k, v);
  }
  for (const auto& [k, v] : kwargs) add_feed(k, v);
  std::vector<Tensor> outs;
  {
    py::gil_scoped_release nogil;
    outs = self.program.run(feeds);
  }
  if (self.single_output) return to_numpy(outs[0]);
  py::list result;
  for (const auto& t : outs) result.append(to_numpy(t));
  return std::move(result);
}

}  // namespace

PYBIND11_MODULE(_xgrad, m) {
  m.doc() = "xgrad C++ core";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const xgrad::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const xgrad::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  py::class_<Graph, std::shared_ptr<Graph>>(m, "Graph", "A computation graph: inputs, params, constants and op nodes.")
      .def(py::init([] { return std::make_shared<Graph>(); }))
      .def("input", [](const std::shared_ptr<Graph>& g, const std::string& name, const py::object& shape, const py::object& dtype) {
            return wrap(g, g->input(name, parse_shape(shape, "input '" + name + "'"), parse_dtype(dtype, "input '" + name + "'")));
          }, py::arg("name"), py::arg("shape"), py::arg("dtype") = py::none(),
          "A placeholder fed at run time; None in the shape is a symbolic (batch) dimension.")
      .def("param", [](const std::shared_ptr<Graph>& g, const std::string& name, const py::object& value) {
            return wrap(g, g->param(name, to_tensor(value, std::nullopt, "param '" + name + "'")));
          }, py::arg("name"), py::arg("value"), "A trainable value; the array is copied once into the graph.")
      .def("const", [](const std::shared_ptr<Graph>& g, const py::object& value, const std::string& name) {
            return wrap(g, g->constant(to_tensor(value, std::nullopt, "constant"), name));
          }, py::arg("value"), py::arg("name") = "")
      .def("compile", [](const std::shared_ptr<Graph>& g, const py::object& outputs) {
            std::vector<Var> outs;
            const bool single = py::isinstance<PyNode>(outputs);
            auto take = [&](const py::handle& h) {
              if (!py::isinstance<PyNode>(h)) throw TypeError("compile: outputs must be xgrad nodes, got " + py::repr(h).cast<std::string>());
              const auto& n = h.cast<const PyNode&>();
              if (n.graph != g) throw ValueError("compile: node '" + n.var.name() + "' belongs to another graph");
              outs.push_back(n.var);
            };
            if (single) take(outputs);
            else for (const auto& h : outputs) take(h);
            return PyProgram{g, compile(outs), single};
          }, py::arg("outputs"), "Compiles the nodes needed for `outputs` into a Program.")
      .def("node", [](const std::shared_ptr<Graph>& g, const std::string& name) {
            Var v = g->find(name);
            if (!v) throw ValueError("the graph has no node named '" + name + "'");
            return wrap(g, v);
          })
      .def_property_readonly("inputs", [](const std::shared_ptr<Graph>& g) {
            std::vector<PyNode> out;
            for (auto v : g->inputs()) out.push_back(wrap(g, v));
            return out;
          })
      .def_property_readonly("params", [](const std::shared_ptr<Graph>& g) {
            std::vector<PyNode> out;
            for (auto v : g->params()) out.push_back(wrap(g, v));
            return out;
          })
      .def("__len__", [](const Graph& g) { return g.nodes().size(); })
      .def("to_dot", &Graph::to_dot, "Graphviz DOT text of the whole graph.")
      .def("__str__", &Graph::to_string)
      .def("__repr__", [](const Graph& g) {
            return "<xgrad.Graph: " + std::to_string(g.nodes().size()) + " nodes, " + std::to_string(g.inputs().size()) +
                   " inputs, " + std::to_string(g.params().size()) + " params>";
          });

  py::class_<PyNode>(m, "Node", "A node of a Graph. Arithmetic on nodes builds new nodes.")
      .def_property_readonly("name", [](const PyNode& n) { return n.var.name(); })
      .def_property_readonly("shape", [](const PyNode& n) { return shape_tuple(n.var.shape()); })
      .def_property_readonly("dtype", [](const PyNode& n) { return to_numpy_dtype(n.var.dtype()); })
      .def_property_readonly("ndim", [](const PyNode& n) { return n.var.shape().size(); })
      .def_property_readonly("kind", [](const PyNode& n) { return std::string(kind_name(n.var->kind())); })
      .def_property_readonly("op", [](const PyNode& n) -> py::object {
            if (!n.var->op()) return py::none();
            return py::str(n.var->op()->name());
          })
      .def_property_readonly("inputs", [](const PyNode& n) {
            std::vector<PyNode> out;
            for (Node* in : n.var->inputs()) out.push_back(wrap(n.graph, in));
            return out;
          })
      .def_property_readonly("graph", [](const PyNode& n) { return n.graph; })
      .def_property("value",
          [](const PyNode& n) { return to_numpy(n.var->value()); },
          [](const PyNode& n, const py::object& v) { n.var->set_value(to_tensor(v, n.var.dtype(), "param '" + n.var.name() + "'")); },
          "A param's or constant's value as a numpy view of its storage (no copy). Writing to it in place "
          "(w.value -= ...) or assigning an array (copied in) changes what every compiled Program sees.")
      .def("__repr__", node_repr)
      .def("__add__", [](const py::object& a, const py::object& b) { return binary(a, b, op_add, "add"); }, py::is_operator())
      .def("__radd__", [](const py::object& a, const py::object& b) { return binary(b, a, op_add, "add"); }, py::is_operator())
      .def("__sub__", [](const py::object& a, const py::object& b) { return binary(a, b, op_sub, "sub"); }, py::is_operator())
      .def("__rsub__", [](const py::object& a, const py::object& b) { return binary(b, a, op_sub, "sub"); }, py::is_operator())
      .def("__mul__", [](const py::object& a, const py::object& b) { return binary(a, b, op_mul, "mul"); }, py::is_operator())
      .def("__rmul__", [](const py::object& a, const py::object& b) { return binary(b, a, op_mul, "mul"); }, py::is_operator())
      .def("__truediv__", [](const py::object& a, const py::object& b) { return binary(a, b, op_div, "div"); }, py::is_operator())
      .def("__rtruediv__", [](const py::object& a, const py::object& b) { return binary(b, a, op_div, "div"); }, py::is_operator())
      .def("__matmul__", [](const py::object& a, const py::object& b) { return binary(a, b, op_matmul, "matmul"); }, py::is_operator())
      .def("__rmatmul__", [](const py::object& a, const py::object& b) { return binary(b, a, op_matmul, "matmul"); }, py::is_operator())
      .def("__neg__", [](const PyNode& a) { return wrap(a.graph, neg(a.var)); })
      .def("__pos__", [](const PyNode& a) { return a; })
      .def("__pow__", [](const PyNode& a, const py::object& p) {
            if (!py::isinstance<py::float_>(p) && !py::isinstance<py::int_>(p))
              throw TypeError("pow: the exponent must be a Python number, got " + py::repr(p).cast<std::string>());
            return wrap(a.graph, pow(a.var, p.cast<double>()));
          }, py::is_operator())
      .def("__bool__", [](const PyNode& n) -> bool {
            throw TypeError("the truth value of xgrad node '" + n.var.name() + "' is not known until the graph runs");
          });

  py::class_<PyProgram>(m, "Program", "A compiled graph. Call it with feeds; returns numpy arrays.")
      .def("__call__", run_program)
      .def_property_readonly("input_names", [](const PyProgram& p) { return p.program.input_names(); })
      .def_property_readonly("num_steps", [](const PyProgram& p) { return p.program.num_steps(); })
      .def("__str__", [](const PyProgram& p) { return p.program.to_string(); })
      .def("__repr__", [](const PyProgram& p) {
            std::string s = "<xgrad.Program: " + std::to_string(p.program.num_steps()) + " steps, inputs (";
            const auto& names = p.program.input_names();
            for (std::size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + names[i];
            s += "), " + std::to_string(p.program.output_types().size()) + " outputs>";
            return s;
          });

  // ---- functions ----
  auto unary = [&m](const char* name, Var (*f)(Var), const char* doc) {
    m.def(name, [f](const PyNode& x) { return wrap(x.graph, f(x.var)); }, py::arg("x"), doc);
  };
  unary("neg", neg, "-x");
  unary("exp", xgrad::exp, "e**x, elementwise");
  unary("log", xgrad::log, "natural logarithm, elementwise");
  unary("tanh", xgrad::tanh, "hyperbolic tangent, elementwise");
  unary("sigmoid", sigmoid, "1 / (1 + exp(-x)), elementwise");
  unary("relu", relu, "max(x, 0), elementwise");
  unary("square", square, "x * x, elementwise");
  unary("sqrt", xgrad::sqrt, "square root, elementwise");
  m.def("add", [](const py::object& a, const py::object& b) { return binary(a, b, op_add, "add"); });
  m.def("sub", [](const py::object& a, const py::object& b) { return binary(a, b, op_sub, "sub"); });
  m.def("mul", [](const py::object& a, const py::object& b) { return binary(a, b, op_mul, "mul"); });
  m.def("div", [](const py::object& a, const py::object& b) { return binary(a, b, op_div, "div"); });
  m.def("matmul", [](const py::object& a, const py::object& b) { return binary(a, b, op_matmul, "matmul"); });
  m.def("pow", [](const PyNode& x, double p) { return wrap(x.graph, pow(x.var, p)); }, py::arg("x"), py::arg("exponent"));
  m.def("sum", [](const PyNode& x, const py::object& axis, bool keepdims) { return wrap(x.graph, sum(x.var, parse_axes(axis), keepdims)); },
        py::arg("x"), py::arg("axis") = py::none(), py::arg("keepdims") = false);
  m.def("mean", [](const PyNode& x, const py::object& axis, bool keepdims) { return wrap(x.graph, mean(x.var, parse_axes(axis), keepdims)); },
        py::arg("x"), py::arg("axis") = py::none(), py::arg("keepdims") = false);
  m.def("reshape", [](const PyNode& x, const py::object& shape) { return wrap(x.graph, reshape(x.var, parse_shape(shape, "reshape"))); },
        py::arg("x"), py::arg("shape"));
  m.def("broadcast_to", [](const PyNode& x, const py::object& shape) { return wrap(x.graph, broadcast_to(x.var, parse_shape(shape, "broadcast_to"))); },
        py::arg("x"), py::arg("shape"), "A view of x broadcast to `shape` (numpy rules).");
  m.def("transpose", [](const PyNode& x, const py::object& axes) { return wrap(x.graph, transpose(x.var, parse_axes(axes))); },
        py::arg("x"), py::arg("axes") = py::none());
  m.def("grad", [](const PyNode& y, const py::object& xs, bool allow_unused) -> py::object {
          std::vector<Var> vars;
          const bool single = py::isinstance<PyNode>(xs);
          auto take = [&](const py::handle& h) {
            if (!py::isinstance<PyNode>(h)) throw TypeError("grad: xs must be xgrad nodes, got " + py::repr(h).cast<std::string>());
            const auto& n = h.cast<const PyNode&>();
            if (n.graph != y.graph) throw ValueError("grad: node '" + n.var.name() + "' belongs to another graph than y");
            vars.push_back(n.var);
          };
          if (single) take(xs);
          else for (const auto& h : xs) take(h);
          auto gs = grad(y.var, vars, allow_unused);
          if (single) return py::cast(wrap(y.graph, gs[0]));
          py::list out;
          for (auto& g : gs) out.append(wrap(y.graph, g));
          return std::move(out);
        }, py::arg("y"), py::arg("xs"), py::arg("allow_unused") = false,
        "Gradient nodes of the scalar y with respect to xs (a node or a list of nodes).");
  m.def("registered_ops", [] {
    std::vector<std::string> names;
    for (const OpDef* op : registered_ops()) names.push_back(op->name());
    return names;
  });
  m.def("_tensor_roundtrip", [](const py::array& a) { return to_numpy(wrap_array(a, "roundtrip")); },
        "Wraps an array as a Tensor and hands it back (tests the zero-copy path).");
}
