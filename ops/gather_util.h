// How the indexing ops walk their operands, shared by the CPU kernels
// (ops/gather.cpp) and the CUDA ones (cuda/gather.cu): strides over the
// output's index space for the source (with the indexed axis frozen) and for
// the indices; the index read there picks the position along the axis.
#pragma once
#include "core/attrs.h"
#include "core/strided_loop.h"
#include "core/tensor.h"

namespace xgrad {

struct GatherWalk {
  Strides x, idx;  // over the output's shape
  std::int64_t axis_stride = 0, axis_size = 0;
};

inline std::int64_t axis_attr(const Attrs& a, std::size_t rank) {
  return normalize_axis(a.get_int("axis"), static_cast<std::int64_t>(rank), "index");
}

// take: out = x[..., idx, ...], idx's whole shape in place of `axis`.
inline GatherWalk take_walk(const Tensor& x, const Tensor& idx, std::int64_t axis) {
  GatherWalk w;
  const auto k = idx.ndim();
  for (std::int64_t d = 0; d < axis; ++d) { w.x.push_back(x.strides()[d]); w.idx.push_back(0); }
  for (std::int64_t d = 0; d < k; ++d) { w.x.push_back(0); w.idx.push_back(idx.strides()[d]); }
  for (std::int64_t d = axis + 1; d < x.ndim(); ++d) { w.x.push_back(x.strides()[d]); w.idx.push_back(0); }
  w.axis_stride = x.strides()[axis];
  w.axis_size = x.shape()[axis];
  return w;
}

// take_along_axis: out[..., j, ...] = x[..., idx[..., j, ...], ...], idx broadcast to out's shape.
inline GatherWalk along_axis_walk(const Tensor& x, const Tensor& idx, const Shape& out_shape, std::int64_t axis) {
  GatherWalk w;
  w.x = x.strides();
  w.x[static_cast<std::size_t>(axis)] = 0;
  w.idx = broadcast_strides(idx.shape(), idx.strides(), out_shape);
  w.axis_stride = x.strides()[static_cast<std::size_t>(axis)];
  w.axis_size = x.shape()[static_cast<std::size_t>(axis)];
  return w;
}

}  // namespace xgrad
