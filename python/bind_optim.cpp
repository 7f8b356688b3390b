// xgrad._xgrad optimizer constructors; xgrad/optim.py gives them their Python signatures.
#include <pybind11/stl.h>

#include "autodiff/optim.h"
#include "distributed/distributed.h"
#include "python/convert.h"

namespace xgrad::python {

namespace {

double number(const py::dict& kw, const char* key, double fallback) {
  return kw.contains(key) && !kw[key].is_none() ? kw[key].cast<double>() : fallback;
}

optim::Schedule parse_schedule(const py::dict& kw) {
  optim::Schedule s;
  if (kw.contains("schedule") && !kw["schedule"].is_none()) {
    const auto spec = kw["schedule"].cast<py::dict>();
    const auto kind = spec["kind"].cast<std::string>();
    if (kind == "step") s.kind = optim::Schedule::Kind::step;
    else if (kind == "exponential") s.kind = optim::Schedule::Kind::exponential;
    else if (kind == "cosine") s.kind = optim::Schedule::Kind::cosine;
    else if (kind != "constant") throw ValueError("unknown learning-rate schedule '" + kind + "'");
    s.step_size = number(spec, "step_size", s.step_size);
    s.gamma = number(spec, "gamma", s.gamma);
    s.t_max = number(spec, "t_max", s.t_max);
    s.lr_min = number(spec, "lr_min", s.lr_min);
    if (s.kind == optim::Schedule::Kind::step && s.step_size <= 0) throw ValueError("step schedule: step_size must be positive");
    if (s.kind == optim::Schedule::Kind::cosine && s.t_max <= 0) throw ValueError("cosine schedule: t_max must be positive");
    if (s.kind == optim::Schedule::Kind::exponential && s.gamma <= 0) throw ValueError("exponential schedule: gamma must be positive");
  }
  s.warmup_steps = number(kw, "warmup_steps", 0);
  s.warmup_start = number(kw, "warmup_start", s.warmup_start);
  return s;
}

optim::Options parse_options(const py::dict& kw) {
  optim::Options o;
  o.lr = number(kw, "lr", o.lr);
  o.weight_decay = number(kw, "weight_decay", 0);
  o.l1 = number(kw, "l1", 0);
  o.clip_value = number(kw, "clip_value", 0);
  o.clip_norm = number(kw, "clip_norm", 0);
  o.schedule = parse_schedule(kw);
  return o;
}

// A C++ optimizer plus the graph its params belong to (kept alive with it).
struct PyOptimizer {
  std::shared_ptr<Graph> graph;
  std::shared_ptr<optim::Optimizer> impl;
};

py::list as_pairs(const std::shared_ptr<Graph>& g, const ParamUpdates& updates) {
  py::list out;
  for (const auto& [target, value] : updates) out.append(py::make_tuple(wrap(g, target), wrap(g, value)));
  return out;
}

}  // namespace

void bind_optim(py::module_& m) {
  py::class_<PyOptimizer>(m, "_Optimizer")
      .def("minimize", [](const PyOptimizer& o, const PyNode& loss, const py::object& allreduce, std::size_t bucket_bytes) {
            if (allreduce.is_none()) return as_pairs(o.graph, o.impl->minimize(loss.var));
            if (!py::isinstance<py::str>(allreduce))
              throw TypeError("minimize: allreduce must be None, 'sum' or 'mean', got " + py::repr(allreduce).cast<std::string>());
            return as_pairs(o.graph, o.impl->minimize(loss.var, distributed::parse_reduce(allreduce.cast<std::string>()), bucket_bytes));
          }, py::arg("loss"), py::arg("allreduce") = py::none(), py::arg("bucket_bytes") = distributed::kDefaultBucketBytes)
      .def("apply", [](const PyOptimizer& o, const std::vector<PyNode>& grads) {
            std::vector<Var> vars;
            for (const auto& g : grads) vars.push_back(g.var);
            return as_pairs(o.graph, o.impl->apply(vars));
          })
      .def_property_readonly("state", [](const PyOptimizer& o) {
            std::vector<PyNode> out;
            for (const auto& v : o.impl->state()) out.push_back(wrap(o.graph, v));
            return out;
          })
      .def_property_readonly("params", [](const PyOptimizer& o) {
            std::vector<PyNode> out;
            for (const auto& v : o.impl->params()) out.push_back(wrap(o.graph, v));
            return out;
          })
      .def("learning_rate", [](const PyOptimizer& o) { return wrap(o.graph, o.impl->learning_rate()); });

  m.def("_make_optimizer", [](const std::string& kind, const std::vector<PyNode>& params, const py::dict& kw) {
    if (params.empty()) throw ValueError(kind + ": no params to optimize");
    std::vector<Var> vars;
    for (const auto& p : params) {
      if (p.graph != params[0].graph) throw ValueError(kind + ": params come from different graphs");
      vars.push_back(p.var);
    }
    const optim::Options o = parse_options(kw);
    std::shared_ptr<optim::Optimizer> impl;
    if (kind == "sgd") {
      impl = std::make_shared<optim::SGD>(vars, o, number(kw, "momentum", 0), number(kw, "dampening", 0),
                                          kw.contains("nesterov") && kw["nesterov"].cast<bool>());
    } else if (kind == "adam" || kind == "adamw") {
      impl = std::make_shared<optim::Adam>(vars, o, number(kw, "beta1", 0.9), number(kw, "beta2", 0.999),
                                           number(kw, "eps", 1e-8), kind == "adamw");
    } else if (kind == "rmsprop") {
      impl = std::make_shared<optim::RMSProp>(vars, o, number(kw, "alpha", 0.99), number(kw, "eps", 1e-8),
                                              number(kw, "momentum", 0), kw.contains("centered") && kw["centered"].cast<bool>());
    } else if (kind == "adagrad") {
      impl = std::make_shared<optim::AdaGrad>(vars, o, number(kw, "lr_decay", 0), number(kw, "initial_accumulator_value", 0),
                                              number(kw, "eps", 1e-10));
    } else {
      throw ValueError("unknown optimizer '" + kind + "'");
    }
    return PyOptimizer{params[0].graph, impl};
  });
}

}  // namespace xgrad::python
