// ONNX export and import for Python (the xgrad.onnx module wraps these).
#include <pybind11/stl.h>

#include "io/onnx.h"
#include "python/convert.h"

namespace xgrad::python {

namespace {

// `fixed` maps input names to values; `outputs` give the graph.
io::OnnxExportOptions options_of(const std::vector<PyNode>& outputs, const std::vector<PyNode>& inputs,
                                 const std::vector<std::string>& output_names, int opset, const py::dict& fixed) {
  io::OnnxExportOptions o;
  for (const auto& [key, value] : fixed) {
    const std::string name = key.cast<std::string>();
    const Var node = outputs.at(0).var.graph().find(name);
    if (!node) throw ValueError("onnx export: the graph has no input '" + name + "' to fix");
    o.fixed.emplace_back(node, to_tensor(value, node.dtype(), "fixed input '" + name + "'").copy());
  }
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

io::OnnxConstants constants_of(const py::dict& constants) {
  io::OnnxConstants out;
  for (const auto& [key, value] : constants) {
    const std::string name = key.cast<std::string>();
    out.emplace_back(name, to_tensor(value, std::nullopt, "constant for input '" + name + "'").copy());
  }
  return out;
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
           const std::vector<std::string>& output_names, int opset, const py::dict& fixed) {
          io::export_onnx(vars_of(outputs), path, options_of(outputs, inputs, output_names, opset, fixed));
        });
  m.def("_onnx_export_bytes",
        [](const std::vector<PyNode>& outputs, const std::vector<PyNode>& inputs,
           const std::vector<std::string>& output_names, int opset, const py::dict& fixed) {
          return py::bytes(io::export_onnx_bytes(vars_of(outputs), options_of(outputs, inputs, output_names, opset, fixed)));
        });
  m.def("_onnx_load", [](const std::string& path, const py::dict& constants) {
    return model_tuple(io::load_onnx(path, constants_of(constants)));
  });
  m.def("_onnx_load_bytes", [](const py::bytes& data, const py::dict& constants) {
    return model_tuple(io::load_onnx_bytes(std::string(data), "ONNX model", constants_of(constants)));
  });
  m.def("_onnx_importable_ops", &io::onnx_importable_ops);
}

}  // namespace xgrad::python
