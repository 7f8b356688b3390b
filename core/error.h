// Exception types. The Python bindings map them to ValueError / TypeError / RuntimeError.
#pragma once
#include <stdexcept>
#include <string>

namespace xgrad {

// Shapes, names, feeds or arguments that are wrong for the operation asked.
struct ValueError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// A dtype (or kind of object) that the operation does not accept.
struct TypeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// The environment cannot do what was asked (no CUDA device, a device error). Python: RuntimeError.
struct RuntimeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace xgrad
