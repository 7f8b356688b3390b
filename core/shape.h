// Shapes and strides. A dimension of kDynamic is symbolic (the batch size,
// `None` in Python), resolved when a Program runs with concrete feeds.
#pragma once
#include <cstdint>
#include <climits>
#include <string>
#include <vector>

namespace xgrad {

using Shape = std::vector<std::int64_t>;
using Strides = std::vector<std::int64_t>;  // in elements, not bytes

inline constexpr std::int64_t kDynamic = -1;

std::int64_t numel(const Shape& shape);  // -1 when any dimension is symbolic
bool is_static(const Shape& shape);
Strides contiguous_strides(const Shape& shape);
std::string to_string(const Shape& shape);  // "(None, 10)"

// numpy broadcasting of two shapes; a symbolic dim against 1 stays symbolic,
// against n > 1 becomes n. Throws ValueError naming both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b);

// Python slice semantics over an axis of size n: negative indices count from
// the end, out-of-range bounds clamp. kSliceEnd as stop (or start, with a
// negative step) means "to the end", like None in Python.
inline constexpr std::int64_t kSliceEnd = INT64_MAX;
struct SliceSpan {
  std::int64_t start;   // index of the first element (meaningful when length > 0)
  std::int64_t length;
};
SliceSpan resolve_slice(std::int64_t n, std::int64_t start, std::int64_t stop, std::int64_t step);

// Resolves negative axes and checks range; `what` names the caller in errors.
std::int64_t normalize_axis(std::int64_t axis, std::int64_t ndim, const std::string& what);
std::vector<std::int64_t> normalize_axes(const std::vector<std::int64_t>& axes, std::int64_t ndim,
                                         const std::string& what);

}  // namespace xgrad
