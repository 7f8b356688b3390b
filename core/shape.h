// Shapes and strides. A dimension of kDynamic is symbolic (the batch size,
// `None` in Python), resolved when a Program runs with concrete feeds.
#pragma once
#include <cstdint>
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

// Resolves negative axes and checks range; `what` names the caller in errors.
std::int64_t normalize_axis(std::int64_t axis, std::int64_t ndim, const std::string& what);
std::vector<std::int64_t> normalize_axes(const std::vector<std::int64_t>& axes, std::int64_t ndim,
                                         const std::string& what);

}  // namespace xgrad
