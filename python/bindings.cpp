// pybind11 module xgrad._xgrad: the C++ API with numpy in and out.
// numpy arrays cross without copies where dtype allows: a feed or view is
// wrapped (its Storage keeps the array alive), and a Tensor is handed out
// as an array whose base keeps the Tensor's Storage alive.
#include <pybind11/stl.h>

#include "autodiff/grad.h"
#include "autodiff/program.h"
#include "core/version.h"
#include "io/npz.h"
#include "python/convert.h"

namespace py = pybind11;
using namespace xgrad;
using namespace xgrad::python;

namespace {

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

// The program's outputs for the feeds given as one dict or as keywords, where the program left them.
std::vector<Tensor> run_outputs(const PyProgram& self, const py::args& args, const py::kwargs& kwargs) {
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
    // Arrays and xg.Tensors keep their dtype (a mismatch is reported by run); other objects are converted.
    const bool typed = py::isinstance<py::array>(value) || py::isinstance<Tensor>(value);
    feeds.emplace_back(name, to_tensor(value, typed ? std::nullopt : want, "feed '" + name + "'"));
  };
  if (args.size() > 1) throw TypeError("Program takes one dict of feeds or keyword feeds");
  if (args.size() == 1) {
    if (!py::isinstance<py::dict>(args[0])) throw TypeError("Program's positional argument must be a dict of feeds");
    for (const auto& [k, v] : args[0].cast<py::dict>()) add_feed(k, v);
  }
  for (const auto& [k, v] : kwargs) add_feed(k, v);
  py::gil_scoped_release nogil;
  return self.program.run(feeds);
}

py::object run_program(const PyProgram& self, const py::args& args, const py::kwargs& kwargs) {
  std::vector<Tensor> outs = run_outputs(self, args, kwargs);
  if (self.program.device() != Device::cpu) {  // numpy out always via the host
    py::gil_scoped_release nogil;
    for (auto& t : outs) t = t.to(Device::cpu);
  }
  if (self.single_output) return to_numpy(outs[0]);
  py::list result;
  for (const auto& t : outs) result.append(to_numpy(t));
  return std::move(result);
}

// As run_program, but xg.Tensors left on the program's device: nothing is copied to the host.
py::object run_program_tensors(const PyProgram& self, const py::args& args, const py::kwargs& kwargs) {
  std::vector<Tensor> outs = run_outputs(self, args, kwargs);
  if (self.single_output) return py::cast(outs[0]);
  py::list result;
  for (const auto& t : outs) result.append(py::cast(t));
  return std::move(result);
}

}  // namespace

PYBIND11_MODULE(_xgrad, m) {
  m.doc() = "xgrad C++ core";
  m.def("version", [] { return std::string(xgrad::version()); }, "The library's version (the VERSION file's).");
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
      .def("compile", [](const std::shared_ptr<Graph>& g, const py::object& outputs, const py::object& updates,
                         const std::string& device, bool check_finite) {
            auto node_of = [&](const py::handle& h, const char* what) {
              if (!py::isinstance<PyNode>(h))
                throw TypeError(std::string("compile: ") + what + " must be xgrad nodes, got " + py::repr(h).cast<std::string>());
              const auto& n = h.cast<const PyNode&>();
              if (n.graph != g) throw ValueError("compile: node '" + n.var.name() + "' belongs to another graph");
              return n.var;
            };
            std::vector<Var> outs;
            const bool single = py::isinstance<PyNode>(outputs);
            if (single) outs.push_back(node_of(outputs, "outputs"));
            else if (!outputs.is_none()) for (const auto& h : outputs) outs.push_back(node_of(h, "outputs"));
            Program::Updates ups;
            if (!updates.is_none()) {
              // An optimizer minimizes the first output: compile(loss, updates=xg.optim.Adam(params)).
              py::object pairs = py::isinstance<py::dict>(updates) ? updates.attr("items")() : updates;
              if (py::hasattr(updates, "minimize")) {
                if (outs.empty()) throw ValueError("compile: an optimizer as `updates` minimizes the first output; give the loss");
                pairs = updates.attr("minimize")(wrap(g, outs[0]));
              }
              for (const auto& pair : pairs) {
                const auto t = pair.cast<py::tuple>();
                if (t.size() != 2) throw TypeError("compile: updates are (param, new value) pairs or a dict");
                ups.emplace_back(node_of(t[0], "update targets"), node_of(t[1], "update values"));
              }
            }
            return PyProgram{g, compile(outs, ups, CompileOptions{parse_device(device), check_finite}), single};
          }, py::arg("outputs") = py::none(), py::arg("updates") = py::none(), py::arg("device") = "cpu",
          py::arg("check_finite") = false,
          "Compiles the nodes needed for `outputs` into a Program. `updates` ({param: node} or pairs) are "
          "written into the params at the end of every run, so one call can be a whole training step. "
          "device='cuda' runs every step on the GPU (an op without a CUDA kernel is a ValueError naming it) and "
          "moves the params it uses there; feeds and outputs stay numpy arrays. check_finite=True watches for NaN "
          "and Inf: the first feed or computed value that is not finite stops the run with a RuntimeError naming "
          "its node, op and shapes, and the params keep their values (slower: for debugging).")
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
      .def("to_dot", [](const std::shared_ptr<Graph>& g, const py::object& outputs) {
            std::vector<Var> outs;
            auto add = [&](const py::handle& h) {
              if (!py::isinstance<PyNode>(h))
                throw TypeError("to_dot: outputs must be xgrad nodes, got " + py::repr(h).cast<std::string>());
              const auto& n = h.cast<const PyNode&>();
              if (n.graph != g) throw ValueError("to_dot: node '" + n.var.name() + "' belongs to another graph");
              outs.push_back(n.var);
            };
            if (py::isinstance<PyNode>(outputs)) add(outputs);
            else if (!outputs.is_none()) for (const auto& h : outputs) add(h);
            return g->to_dot(outs);
          }, py::arg("outputs") = py::none(),
          "Graphviz DOT text of what `outputs` (a node or a list) depend on, outputs in bold; the whole graph "
          "when None. Render it with graphviz.Source(dot) (inline SVG in a notebook) or `dot -Tsvg`.")
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
          [](const PyNode& n) {
            const Tensor& v = n.var->value();
            if (v.device() == Device::cpu) return to_numpy(v);
            py::array copy = to_numpy(v.to(Device::cpu));  // a snapshot: writing to it would change nothing
            copy.attr("setflags")(py::arg("write") = false);
            return copy;
          },
          [](const PyNode& n, const py::object& v) { n.var->set_value(to_tensor(v, n.var.dtype(), "param '" + n.var.name() + "'")); },
          "A param's or constant's value as a numpy view of its storage (no copy). Writing to it in place "
          "(w.value -= ...) or assigning an array (copied in) changes what every compiled Program sees. "
          "For a param on the GPU it is a read-only copy; assign an array to change it.")
      .def("__repr__", node_repr)
      .def("__add__", [](const py::object& a, const py::object& b) { return binary(a, b, xgrad::add, "add"); }, py::is_operator())
      .def("__radd__", [](const py::object& a, const py::object& b) { return binary(b, a, xgrad::add, "add"); }, py::is_operator())
      .def("__sub__", [](const py::object& a, const py::object& b) { return binary(a, b, xgrad::sub, "sub"); }, py::is_operator())
      .def("__rsub__", [](const py::object& a, const py::object& b) { return binary(b, a, xgrad::sub, "sub"); }, py::is_operator())
      .def("__mul__", [](const py::object& a, const py::object& b) { return binary(a, b, xgrad::mul, "mul"); }, py::is_operator())
      .def("__rmul__", [](const py::object& a, const py::object& b) { return binary(b, a, xgrad::mul, "mul"); }, py::is_operator())
      .def("__truediv__", [](const py::object& a, const py::object& b) { return binary(a, b, xgrad::div, "div"); }, py::is_operator())
      .def("__rtruediv__", [](const py::object& a, const py::object& b) { return binary(b, a, xgrad::div, "div"); }, py::is_operator())
      .def("__matmul__", [](const py::object& a, const py::object& b) { return binary(a, b, xgrad::matmul, "matmul"); }, py::is_operator())
      .def("__rmatmul__", [](const py::object& a, const py::object& b) { return binary(b, a, xgrad::matmul, "matmul"); }, py::is_operator())
      .def("__neg__", [](const PyNode& a) { return wrap(a.graph, neg(a.var)); })
      .def("__pos__", [](const PyNode& a) { return a; })
      .def("__pow__", [](const py::object& a, const py::object& b) { return power(a, b); }, py::is_operator())
      .def("__rpow__", [](const py::object& a, const py::object& b) { return power(b, a); }, py::is_operator())
      .def("__getitem__", getitem)
      .def("__abs__", [](const PyNode& a) { return wrap(a.graph, xgrad::abs(a.var)); })
      .def("__eq__", [](const py::object& a, const py::object& b) { return binary(a, b, xgrad::eq, "eq"); }, py::is_operator())
      .def("__ne__", [](const py::object& a, const py::object& b) { return binary(a, b, xgrad::ne, "ne"); }, py::is_operator())
      .def("__lt__", [](const py::object& a, const py::object& b) { return binary(a, b, xgrad::lt, "lt"); }, py::is_operator())
      .def("__le__", [](const py::object& a, const py::object& b) { return binary(a, b, xgrad::le, "le"); }, py::is_operator())
      .def("__gt__", [](const py::object& a, const py::object& b) { return binary(a, b, xgrad::gt, "gt"); }, py::is_operator())
      .def("__ge__", [](const py::object& a, const py::object& b) { return binary(a, b, xgrad::ge, "ge"); }, py::is_operator())
      // == builds a node, so hashing goes by identity (as for torch tensors): nodes stay usable as dict keys.
      .def("__hash__", [](const PyNode& n) { return std::hash<const void*>{}(n.var.node()); })
      .def("__bool__", [](const PyNode& n) -> bool {
            throw TypeError("the truth value of xgrad node '" + n.var.name() + "' is not known until the graph runs");
          });

  py::class_<PyProgram>(m, "Program", "A compiled graph. Call it with feeds; returns numpy arrays.")
      .def("__call__", run_program)
      .def("run_tensors", run_program_tensors,
           "Runs like a call, but returns xg.Tensors where the program left them (on its device, for a CUDA program): "
           "nothing is copied to the host. GPU work is queued; reading a result (.numpy()) waits for it.")
      .def_property_readonly("device", [](const PyProgram& p) { return std::string(device_name(p.program.device())); })
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

  bind_ops(m);
  bind_onnx(m);
  bind_optim(m);
  bind_linalg(m);
  bind_conv(m);
  bind_device(m);
  bind_distributed(m);
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
  m.def("_write_npz", [](const std::string& path, const py::dict& arrays) {
          io::NamedTensors named;
          for (const auto& [k, v] : arrays) named.emplace_back(k.cast<std::string>(), to_tensor(v, std::nullopt, "array"));
          io::write_npz(path, named);
        }, "The C++ checkpoint writer (for interoperability tests).");
  m.def("_read_npz", [](const std::string& path) {
          py::dict out;
          for (const auto& [name, t] : io::read_npz(path)) out[py::str(name)] = to_numpy(t);
          return out;
        }, "The C++ checkpoint reader (for interoperability tests).");
  m.def("registered_ops", [] {
    std::vector<std::string> names;
    for (const OpDef* op : registered_ops()) names.push_back(op->name());
    return names;
  });
  m.def("_tensor_roundtrip", [](const py::array& a) { return to_numpy(wrap_array(a, "roundtrip")); },
        "Wraps an array as a Tensor and hands it back (tests the zero-copy path).");
}
