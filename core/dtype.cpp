#include "core/dtype.h"

namespace xgrad {

std::size_t itemsize(DType dtype) {
  switch (dtype) {
    case DType::float32: return 4;
    case DType::float64: return 8;
    case DType::int64: return 8;
    case DType::bool_: return 1;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::float32: return "float32";
    case DType::float64: return "float64";
    case DType::int64: return "int64";
    case DType::bool_: return "bool";
  }
  return "?";
}

bool is_floating(DType dtype) { return dtype == DType::float32 || dtype == DType::float64; }

}  // namespace xgrad
