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

// One entry of a shape value computed in the graph, as far as the importer knows it: a number, dim `dim` of the
// tensor `of` (a symbolic dim, say the batch), or neither (unknown).
struct ShapeEntry {
  std::optional<std::int64_t> value;
  const Node* of = nullptr;
  std::int64_t dim = 0;
};
using ShapeEntries = std::vector<ShapeEntry>;

class ImportCtx {
 public:
  // sequences: for each input, the sequence value it names (null where it names a tensor).
  // entries: for each input that is a shape value, what is known of its entries (null where nothing is).
  ImportCtx(Graph& g, const onnx::NodeProto& node, std::vector<Var> inputs, std::vector<const ShapeEntries*> entries,
            std::int64_t opset, std::vector<const std::vector<Var>*> sequences = {})
      : g(g), node(node), opset(opset), in_(std::move(inputs)), entries_(std::move(entries)),
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
  // Input k as a shape the program knows before each run (a constant, or computed from Shape / Size and
  // constants), or a ValueError naming it.
  Var shape_input(std::size_t k) const;
  // When input k is a shape value computed in the graph: what is known of its entries, else null.
  const ShapeEntries* entries(std::size_t k) const { return k < entries_.size() ? entries_[k] : nullptr; }
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
  std::vector<const ShapeEntries*> entries_;
  std::vector<const std::vector<Var>*> sequences_;
};

// Result of one ONNX node: one Var per output (a null Var for an output it
// does not produce). A node whose one output is a sequence sets `sequence` instead: ONNX sequences are lists the importer
// resolves while it builds the graph (their positions must be constants), never values of the graph.
struct Imported {
  std::vector<Var> outputs;
  std::optional<std::vector<Var>> sequence;
};
inline Imported one(Var v) { return {{v}, {}}; }
inline std::int64_t rank_of(const Var& v) { return static_cast<std::int64_t>(v.shape().size()); }
using ImportFn = std::function<Imported(ImportCtx&)>;
using ImportTable = std::map<std::string, ImportFn>;
const ImportTable& import_table();
// The table's parts, by family (io/onnx_import_math.cpp, io/onnx_import_nn.cpp).
void add_math_importers(ImportTable& table);
void add_nn_importers(ImportTable& table);
void add_sequence_importers(ImportTable& table);  // io/onnx_import_sequence.cpp
void add_shape_importers(ImportTable& table);     // io/onnx_import_shape.cpp
// What is known of the entries of node n's output `out` when it computes a shape (a small integer value of
// rank <= 1), from its inputs and what is known of theirs (null where nothing is); nothing otherwise.
std::optional<ShapeEntries> propagate_entries(const onnx::NodeProto& n, const std::vector<Var>& ins,
                                              const std::vector<const ShapeEntries*>& in_entries, const Var& out, std::int64_t opset);
// The constant a shape value is when all its entries are numbers (null otherwise).
Var as_constant(Graph& g, const Var& out, const ShapeEntries& entries);
bool is_sequence_op(const std::string& op_type);   // takes or gives a sequence

}  // namespace xgrad::io
#pragma GCC visibility pop
