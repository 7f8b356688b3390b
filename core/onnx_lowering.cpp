#include "core/onnx_lowering.h"

#include "core/error.h"

namespace xgrad {

OpDef& OpDef::onnx(const char* op_type) { return onnx(onnx_same(op_type)); }

LowerFn onnx_same(std::string op_type) {
  return [op_type = std::move(op_type)](OnnxLowerCtx& c) { return c.op(op_type, c.ins()); };
}

const TensorType& OnnxLowerCtx::in_type(std::size_t i) const { return node_.inputs().at(i)->type(); }
const TensorType& OnnxLowerCtx::out_type() const { return node_.type(); }
const Attrs& OnnxLowerCtx::attrs() const { return node_.attrs(); }

std::string OnnxLowerCtx::ints(const std::vector<std::int64_t>& values) {
  Tensor t = Tensor::empty(DType::int64, {static_cast<std::int64_t>(values.size())});
  auto* p = static_cast<std::int64_t*>(t.raw_data());
  for (std::size_t i = 0; i < values.size(); ++i) p[i] = values[i];
  return constant(t);
}

std::string OnnxLowerCtx::scalar(double value, DType dtype) { return constant(Tensor::full(dtype, {}, value)); }

std::string OnnxLowerCtx::cast(const std::string& value, DType to) {
  return op("Cast", {value}, {{"to", onnx_elem_type(to)}});
}

std::vector<std::int64_t> OnnxLowerCtx::axes(const std::string& name, std::size_t rank) const {
  std::vector<std::int64_t> out = attrs().get_ints(name);
  for (auto& a : out)
    if (a < 0) a += static_cast<std::int64_t>(rank);
  return out;
}

std::int64_t onnx_elem_type(DType dtype) {
  switch (dtype) {  // TensorProto.DataType numbering
    case DType::float32: return 1;
    case DType::float64: return 11;
    case DType::int64: return 7;
    case DType::bool_: return 9;
  }
  throw TypeError("no ONNX element type for this dtype");
}

}  // namespace xgrad
