// ONNX export and import. Export writes the subgraph that computes the
// requested outputs, each op through its own lowering (core/onnx_lowering.h);
// import maps ONNX nodes back onto builder functions. Params are initializers
// both ways, so an ONNX file is also a checkpoint.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/graph.h"

namespace xgrad::io {

struct OnnxExportOptions {
  // The model's inputs, in order. Empty: every input the outputs depend on, in
  // the order they were created.
  std::vector<Var> inputs;
  // Names of the model's outputs; empty: the output nodes' names.
  std::vector<std::string> output_names;
  // Inputs given a value for the export (e.g. the train/eval switch set to
  // false): they become constants, and a `where` on a constant condition
  // exports only the branch it takes.
  std::vector<std::pair<Var, Tensor>> fixed;
  int opset = 17;
  std::string graph_name = "xgrad";
};

// The serialized ModelProto, checked by the ONNX checker and shape inference.
std::string export_onnx_bytes(const std::vector<Var>& outputs, const OnnxExportOptions& options = {});
void export_onnx(const std::vector<Var>& outputs, const std::string& path, const OnnxExportOptions& options = {});

struct OnnxModel {
  std::unique_ptr<Graph> graph;
  std::vector<Var> inputs;              // the model's inputs (initializers excluded), in order
  std::vector<Var> outputs;             // the model's outputs, in order
  std::vector<std::string> output_names;
  std::int64_t opset = 0;               // the default domain's opset the file imports
};

// Floating initializers become params (trainable, saved by save_params); the
// rest become constants. Throws ValueError for a corrupt file, an opset outside
// 1..17, or ops the importer does not know (all of them listed).
// `constants` give values to graph inputs by name: they import as constants
// (shape or axes inputs that must be known when the graph is built).
using OnnxConstants = std::vector<std::pair<std::string, Tensor>>;
OnnxModel load_onnx(const std::string& path, const OnnxConstants& constants = {});
OnnxModel load_onnx_bytes(const std::string& bytes, const std::string& what = "ONNX model",
                          const OnnxConstants& constants = {});

// The ONNX op types (default domain) the importer maps.
std::vector<std::string> onnx_importable_ops();

}  // namespace xgrad::io
