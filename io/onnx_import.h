// The importer's per-node context and its table of ONNX op types (internal
// to io/; the public API is io/onnx.h).
#pragma once
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "io/onnx_proto.h"
#include "ops/ops.h"

// Internal to the library: not exported from libxgrad.so.
#pragma GCC visibility push(hidden)

namespace xgrad::io {

class ImportCtx {
 public:
  // sequences: for each input, the sequence value it names (null where it names a tensor).
  ImportCtx(Graph& g, const onnx::NodeProto& node, std::vector<Var> inputs, std::vector<Var> shape_of,
            std::int64_t opset, std::vector<const std::vector<Var>*> sequences = {})
      : g(g), node(node), opset(opset), in_(std::move(inputs)), shape_of_(std::move(shape_of)),
        sequences_(std::move(sequences)) {}

  Graph& g;
  const onnx::NodeProto& node;

  std::size_t n_inputs() const { return in_.size(); }
  bool has_input(std::size_t k) const { return k < in_.size() && in_[k]; }
  Var in(std::size_t k = 0) const;                              // required input
  bool is_constant(std::size_t k) const;                        // a constant or initializer
  const Tensor& constant(std::size_t k) const;                  // its value, or a ValueError
  std::vector<std::int64_t> const_ints(std::size_t k) const;    // an int64 constant's values
  double const_scalar(std::size_t k) const;                     // a one-element constant
  // When input k is Shape(x) of an x whose shape is symbolic: that x, else null.
  Var shape_source(std::size_t k) const { return k < shape_of_.size() ? shape_of_[k] : Var(); }
  // Input k as a sequence (its tensors in order), or a ValueError when it is a tensor.
  const std::vector<Var>& sequence(std::size_t k) const;

  bool has_attr(const std::string& name) const { return attr(name) != nullptr; }
  std::int64_t attr_int(const std::string& name, std::int64_t fallback) const;
  double attr_float(const std::string& name, double fallback) const;
  std::vector<std::int64_t> attr_ints(const std::string& name, std::vector<std::int64_t> fallback = {}) const;
  std::string attr_string(const std::string& name, const std::string& fallback) const;
  const onnx::TensorProto* attr_tensor(const std::string& name) const;
  // A ValueError that names the node.
  [[noreturn]] void fail(const std::string& message) const;

  const std::int64_t opset;

 private:
  const onnx::AttributeProto* attr(const std::string& name) const;
  std::vector<Var> in_;
  std::vector<Var> shape_of_;
  std::vector<const std::vector<Var>*> sequences_;
};

// Result of one ONNX node: one Var per output (a null Var for an output it
// does not produce). Shape(x) of a symbolic x is recorded through `shape_of`.
// A node whose one output is a sequence sets `sequence` instead: ONNX sequences are lists the importer
// resolves while it builds the graph (their positions must be constants), never values of the graph.
struct Imported {
  std::vector<Var> outputs;
  Var shape_of;  // set by Shape when its input's shape is symbolic
  std::optional<std::vector<Var>> sequence;
};
using ImportFn = std::function<Imported(ImportCtx&)>;
using ImportTable = std::map<std::string, ImportFn>;
const ImportTable& import_table();
// The table's parts, by family (io/onnx_import_math.cpp, io/onnx_import_nn.cpp).
void add_math_importers(ImportTable& table);
void add_nn_importers(ImportTable& table);
void add_sequence_importers(ImportTable& table);  // io/onnx_import_sequence.cpp
bool is_sequence_op(const std::string& op_type);   // takes or gives a sequence

}  // namespace xgrad::io
#pragma GCC visibility pop
