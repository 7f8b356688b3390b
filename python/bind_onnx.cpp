// ONNX export and import for Python (the xgrad.onnx module wraps these).
#include <pybind11/stl.h>

#include "io/onnx.h"
#include "python/convert.h"

namespace xgrad::python {

namespace {

io::OnnxExportOptions options_of(const std::vector<PyNode>& inputs, const std::vector<std::string>& output_names,
                                 int opset) {
  io::OnnxExportOptions o;
  for (const auto& n : inputs) o.inputs.push_back(n.var);
  o.output_names = output_names;
  o.opset = opset;
  return o;
}

std::vector<Var> vars_of(const std::vector<PyNode>& nodes) {
  std::vector<Var> vs;
  for (const auto& n : nodes) vs.push_back(n.var);
  return vs;
}

py::tuple model_tuple(io::OnnxModel m) {
  std::shared_ptr<Graph> g(std::move(m.graph));
  py::list inputs, outputs;
  for (const auto& v : m.inputs) inputs.append(wrap(g, v));
  for (const auto& v : m.outputs) outputs.append(wrap(g, v));
  return py::make_tuple(g, inputs, outputs, m.output_names, m.opset);
}

}  // namespace

void bind_onnx(py::module_& m) {
  m.def("_onnx_export",
        [](const std::vector<PyNode>& outputs, const std::string& path, const std::vector<PyNode>& inputs,
           const std::vector<std::string>& output_names, int opset) {
          io::export_onnx(vars_of(outputs), path, options_of(inputs, output_names, opset));
        });
  m.def("_onnx_export_bytes",
        [](const std::vector<PyNode>& outputs, const std::vector<PyNode>& inputs,
           const std::vector<std::string>& output_names, int opset) {
          return py::bytes(io::export_onnx_bytes(vars_of(outputs), options_of(inputs, output_names, opset)));
        });
  m.def("_onnx_load", [](const std::string& path) { return model_tuple(io::load_onnx(path)); });
  m.def("_onnx_load_bytes", [](const py::bytes& data) { return model_tuple(io::load_onnx_bytes(std::string(data))); });
  m.def("_onnx_importable_ops", &io::onnx_importable_ops);
}

}  // namespace xgrad::python
