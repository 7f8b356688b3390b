// How an op describes its ONNX form. Each OpDef carries a lowering that
// emits ONNX nodes through this interface; the exporter (io/onnx_export.cpp)
// implements it on the ONNX protobuf classes, so ops never see protobuf.
#pragma once
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "core/graph.h"

namespace xgrad {

using OnnxAttrValue = std::variant<std::int64_t, double, std::vector<std::int64_t>, std::vector<double>, std::string>;
struct OnnxAttr {
  std::string name;
  OnnxAttrValue value;
};

// The state of one node's lowering: its inputs as ONNX value names, its
// types and attributes, and the means to emit ONNX nodes and constants.
class OnnxLowerCtx {
 public:
  virtual ~OnnxLowerCtx() = default;

  // Emits one ONNX node and returns the names of its `n_outputs` outputs.
  virtual std::vector<std::string> emit(const std::string& op_type, const std::vector<std::string>& inputs,
                                        const std::vector<OnnxAttr>& attrs, int n_outputs,
                                        const std::string& domain) = 0;
  // A constant value (a Constant node), returned by name.
  virtual std::string constant(const Tensor& value) = 0;

  const Node& node() const { return node_; }
  const std::string& in(std::size_t i = 0) const { return inputs_.at(i); }
  const std::vector<std::string>& ins() const { return inputs_; }
  const TensorType& in_type(std::size_t i = 0) const;
  const TensorType& out_type() const;
  const Attrs& attrs() const;

  // One-output node in the default ONNX domain.
  std::string op(const std::string& op_type, const std::vector<std::string>& inputs,
                 const std::vector<OnnxAttr>& attrs = {}) {
    return emit(op_type, inputs, attrs, 1, "")[0];
  }
  std::string ints(const std::vector<std::int64_t>& values);     // 1-D int64 constant (shapes, axes, pads)
  std::string scalar(double value, DType dtype);                  // 0-d constant
  std::string scalar(double value) { return scalar(value, out_type().dtype); }
  std::string cast(const std::string& value, DType to);           // Cast node
  // The axes attribute `name` made non-negative for a value of rank `rank`.
  std::vector<std::int64_t> axes(const std::string& name, std::size_t rank) const;

 protected:
  OnnxLowerCtx(const Node& node, std::vector<std::string> inputs) : node_(node), inputs_(std::move(inputs)) {}

 private:
  const Node& node_;
  std::vector<std::string> inputs_;
};

// ONNX TensorProto element type for a dtype.
std::int64_t onnx_elem_type(DType dtype);
// A lowering to one ONNX node of the given type over the op's inputs, no attributes.
LowerFn onnx_same(std::string op_type);

}  // namespace xgrad
