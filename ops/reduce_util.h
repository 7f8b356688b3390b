// Shapes of reductions, shared by the CPU kernels (ops/reduce.cpp) and the CUDA ones (cuda/reduce.cu).
#pragma once
#include <algorithm>

#include "core/attrs.h"
#include "core/shape.h"
#include "core/tensor.h"

namespace xgrad {

using Axes = std::vector<std::int64_t>;  // as in ops/ops.h

// Axes attribute resolved against a rank; empty means every axis.
inline Axes reduce_axes(const Attrs& attrs, std::int64_t ndim) {
  Axes axes = attrs.get_ints("axes");
  if (axes.empty()) {
    for (std::int64_t i = 0; i < ndim; ++i) axes.push_back(i);
    return axes;
  }
  return normalize_axes(axes, ndim, "reduce");
}

inline Shape reduced_shape(const Shape& in, const Axes& axes, bool keepdims) {
  Shape out;
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(in.size()); ++i) {
    const bool reduced = std::find(axes.begin(), axes.end(), i) != axes.end();
    if (!reduced) out.push_back(in[i]);
    else if (keepdims) out.push_back(1);
  }
  return out;
}

inline Shape keepdims_shape(const Tensor& x, const Attrs& attrs) {
  return reduced_shape(x.shape(), reduce_axes(attrs, x.ndim()), true);
}

inline std::int64_t reduced_count(const Shape& x_shape, const Shape& kept) {
  return numel(kept) == 0 ? 0 : numel(x_shape) / std::max<std::int64_t>(numel(kept), 1);
}

// The shape x takes when summed down to `target` (x's rank, 1 on summed axes).
inline Shape sum_to_kept(const Shape& x, const Shape& target) {
  Shape kept(x.size(), 1);
  const std::size_t lead = x.size() - target.size();
  for (std::size_t i = 0; i < target.size(); ++i) kept[lead + i] = target[i];
  return kept;
}

}  // namespace xgrad
