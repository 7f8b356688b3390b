// xgrad._xgrad.distributed: the C++ side of xg.distributed (python/xgrad/distributed.py wraps it).
#include <pybind11/stl.h>

#include "distributed/distributed.h"
#include "python/convert.h"

namespace xgrad::python {

void bind_distributed(py::module_& m) {
  py::module_ d = m.def_submodule("_distributed", "MPI data-parallel training (see xgrad.distributed).");
  d.def("is_available", [] { return distributed::is_available(); });
  d.def("why_unavailable", [] { return distributed::why_unavailable(); });
  d.def("init", [] {
    py::gil_scoped_release nogil;
    distributed::init();
  });
  d.def("is_initialized", [] { return distributed::is_initialized(); });
  d.def("rank", [] { return distributed::rank(); });
  d.def("world_size", [] { return distributed::world_size(); });
  d.def("library", [] { return distributed::library(); });
  d.def("barrier", [] {
    py::gil_scoped_release nogil;
    distributed::barrier();
  });
  d.def("stats", [] {
    const distributed::Stats s = distributed::stats();
    py::dict out;
    out["reductions"] = s.reductions;
    out["bytes"] = s.bytes;
    out["communicating_seconds"] = s.communicating_seconds;
    out["waiting_seconds"] = s.waiting_seconds;
    return out;
  });
  d.def("reset_stats", [] { distributed::reset_stats(); });
  d.def("abort", [](int code) { distributed::abort(code); });
  d.def("allreduce", [](const PyNode& x, const std::string& op) {
    return wrap(x.graph, distributed::allreduce(x.var, distributed::parse_reduce(op)));
  }, py::arg("x"), py::arg("op") = "sum");
  d.def("broadcast_params", [](const std::vector<PyNode>& params, int root) {
    std::vector<Var> vars;
    for (const PyNode& p : params) vars.push_back(p.var);
    py::gil_scoped_release nogil;
    distributed::broadcast_params(vars, root);
  }, py::arg("params"), py::arg("root") = 0);
}

}  // namespace xgrad::python
