// Helpers shared by the ONNX exporter and importer (protobuf side). Only
// io/onnx_*.cpp include this: the protobuf headers stay out of the rest.
#pragma once
#include <onnx/onnx_pb.h>

#include <string>

#include "core/tensor.h"

namespace xgrad::io {

// Tensor <-> TensorProto (raw little-endian data). from_proto throws
// TypeError for element types we do not hold and ValueError for bad data.
onnx::TensorProto to_proto(const Tensor& value, const std::string& name);
Tensor from_proto(const onnx::TensorProto& proto, const std::string& what);
// DType for an ONNX element type; TypeError naming `what` when unsupported.
DType dtype_from_onnx(int elem_type, const std::string& what);
const char* onnx_elem_type_name(int elem_type);

}  // namespace xgrad::io
