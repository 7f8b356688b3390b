#include "io/onnx_proto.h"

#include <cstring>

#include "core/onnx_lowering.h"

namespace xgrad::io {

const char* onnx_elem_type_name(int elem_type) {
  static const char* names[] = {"undefined", "float", "uint8", "int8", "uint16", "int16", "int32", "int64", "string",
                                "bool", "float16", "double", "uint32", "uint64", "complex64", "complex128",
                                "bfloat16"};
  return elem_type >= 0 && elem_type <= 16 ? names[elem_type] : "unknown";
}

DType dtype_from_onnx(int elem_type, const std::string& what) {
  switch (elem_type) {
    case onnx::TensorProto::FLOAT: return DType::float32;
    case onnx::TensorProto::DOUBLE: return DType::float64;
    case onnx::TensorProto::INT64: return DType::int64;
    case onnx::TensorProto::BOOL: return DType::bool_;
    default:
      throw TypeError(what + ": element type " + onnx_elem_type_name(elem_type) +
                      " is not supported (xgrad holds float32, float64, int64 and bool)");
  }
}

onnx::TensorProto to_proto(const Tensor& value, const std::string& name) {
  onnx::TensorProto p;
  p.set_name(name);
  p.set_data_type(static_cast<int>(onnx_elem_type(value.dtype())));
  for (auto d : value.shape()) p.add_dims(d);
  const Tensor c = value.contiguous();
  const auto bytes = static_cast<std::size_t>(c.numel()) * itemsize(c.dtype());
  p.set_raw_data(std::string(static_cast<const char*>(c.raw_data()), bytes));
  return p;
}

namespace {
template <class T, class Field>
void copy_field(const Field& field, Tensor& out, const std::string& what) {
  if (field.size() != out.numel())
    throw ValueError(what + ": holds " + std::to_string(field.size()) + " values for shape " +
                     to_string(out.shape()));
  T* dst = static_cast<T*>(out.raw_data());
  for (int i = 0; i < field.size(); ++i) dst[i] = static_cast<T>(field.Get(i));
}
}  // namespace

Tensor from_proto(const onnx::TensorProto& p, const std::string& what) {
  if (p.data_location() == onnx::TensorProto::EXTERNAL)
    throw ValueError(what + ": tensors stored in external data files are not supported");
  const DType dtype = dtype_from_onnx(p.data_type(), what);
  Shape shape;
  for (auto d : p.dims()) {
    if (d < 0) throw ValueError(what + ": negative dimension " + std::to_string(d));
    shape.push_back(d);
  }
  Tensor out = Tensor::empty(dtype, shape);
  const auto count = static_cast<std::size_t>(out.numel());
  if (p.has_raw_data()) {
    const std::size_t bytes = count * itemsize(dtype);
    if (p.raw_data().size() != bytes)
      throw ValueError(what + ": raw data holds " + std::to_string(p.raw_data().size()) + " bytes, shape " +
                       to_string(shape) + " needs " + std::to_string(bytes));
    if (bytes) std::memcpy(out.raw_data(), p.raw_data().data(), bytes);
    return out;
  }
  switch (dtype) {
    case DType::float32: copy_field<float>(p.float_data(), out, what); break;
    case DType::float64: copy_field<double>(p.double_data(), out, what); break;
    case DType::int64: copy_field<std::int64_t>(p.int64_data(), out, what); break;
    case DType::bool_: copy_field<bool>(p.int32_data(), out, what); break;
  }
  return out;
}

}  // namespace xgrad::io
