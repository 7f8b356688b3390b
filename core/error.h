// Exception types. The Python bindings map them to ValueError / TypeError.
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

}  // namespace xgrad
