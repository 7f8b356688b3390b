// Walks an N-d index space over several strided operands at once, handing
// the innermost dimension to a tight loop. Used by copies and by the general
// (non-contiguous, broadcasting) path of elementwise kernels.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "core/shape.h"

namespace xgrad {

// inner(count, offsets, inner_strides): process `count` elements; operand k
// starts at offsets[k] and advances by inner_strides[k] (all in elements).
template <std::size_t N, class Inner>
void strided_loop(const Shape& shape, const std::array<const Strides*, N>& strides, Inner&& inner) {
  const std::size_t nd = shape.size();
  std::array<std::int64_t, N> offsets{};
  std::array<std::int64_t, N> inner_strides{};
  if (nd == 0) {
    inner(std::int64_t{1}, offsets, inner_strides);
    return;
  }
  for (auto d : shape)
    if (d == 0) return;
  for (std::size_t k = 0; k < N; ++k) inner_strides[k] = (*strides[k])[nd - 1];
  const std::int64_t inner_count = shape[nd - 1];
  std::vector<std::int64_t> index(nd, 0);
  while (true) {
    inner(inner_count, offsets, inner_strides);
    // Advance the outer index like an odometer, fixing the offsets incrementally.
    std::size_t d = nd - 1;
    while (true) {
      if (d == 0) return;
      --d;
      if (++index[d] < shape[d]) {
        for (std::size_t k = 0; k < N; ++k) offsets[k] += (*strides[k])[d];
        break;
      }
      for (std::size_t k = 0; k < N; ++k) offsets[k] -= (*strides[k])[d] * (shape[d] - 1);
      index[d] = 0;
    }
  }
}

// Strides that read `operand_shape` as if broadcast to `out_shape` (0 on broadcast axes).
inline Strides broadcast_strides(const Shape& operand_shape, const Strides& operand_strides,
                                 const Shape& out_shape) {
  Strides s(out_shape.size(), 0);
  const std::size_t lead = out_shape.size() - operand_shape.size();
  for (std::size_t i = 0; i < operand_shape.size(); ++i)
    s[lead + i] = operand_shape[i] == 1 ? 0 : operand_strides[i];
  return s;
}

}  // namespace xgrad
