// Walks an N-d index space over several strided operands at once, handing
// the innermost dimension to a tight loop. Used by copies and by the general
// (non-contiguous, broadcasting) path of elementwise kernels.
#pragma once
#include <array>
#include <stdexcept>
#include <cstdint>
#include <vector>

#include "core/shape.h"

namespace xgrad {

// inner(count, offsets, inner_strides): process `count` elements; operand k
// starts at offsets[k] and advances by inner_strides[k] (all in elements).
// Dimensions of size 1 are dropped and dimensions that every operand walks
// contiguously are merged first, so (4096, 1) runs as one inner loop of 4096.
template <std::size_t N, class Inner>
void strided_loop(const Shape& full_shape, const std::array<const Strides*, N>& full_strides, Inner&& inner) {
  constexpr std::size_t kMaxRank = 16;
  std::array<std::int64_t, N> offsets{};
  std::array<std::int64_t, N> inner_strides{};
  if (full_shape.size() > kMaxRank) throw std::length_error("strided_loop: rank above 16");
  std::int64_t shape[kMaxRank];
  std::int64_t strides[N][kMaxRank];
  std::size_t nd = 0;
  for (std::size_t d = 0; d < full_shape.size(); ++d) {
    if (full_shape[d] == 0) return;
    if (full_shape[d] == 1) continue;
    bool merge = nd > 0;
    for (std::size_t k = 0; merge && k < N; ++k)
      merge = strides[k][nd - 1] == (*full_strides[k])[d] * full_shape[d];
    if (merge) {
      shape[nd - 1] *= full_shape[d];
      for (std::size_t k = 0; k < N; ++k) strides[k][nd - 1] = (*full_strides[k])[d];
      continue;
    }
    shape[nd] = full_shape[d];
    for (std::size_t k = 0; k < N; ++k) strides[k][nd] = (*full_strides[k])[d];
    ++nd;
  }
  if (nd == 0) {
    inner(std::int64_t{1}, offsets, inner_strides);
    return;
  }
  for (std::size_t k = 0; k < N; ++k) inner_strides[k] = strides[k][nd - 1];
  const std::int64_t inner_count = shape[nd - 1];
  std::int64_t index[kMaxRank] = {};
  while (true) {
    inner(inner_count, offsets, inner_strides);
    // Advance the outer index like an odometer, fixing the offsets incrementally.
    std::size_t d = nd - 1;
    while (true) {
      if (d == 0) return;
      --d;
      if (++index[d] < shape[d]) {
        for (std::size_t k = 0; k < N; ++k) offsets[k] += strides[k][d];
        break;
      }
      for (std::size_t k = 0; k < N; ++k) offsets[k] -= strides[k][d] * (shape[d] - 1);
      index[d] = 0;
    }
  }
}

// Strides that read `operand_shape` as if broadcast to `out_shape` (0 on broadcast axes).
inline Strides broadcast_strides(const Shape& operand_shape, const Strides& operand_strides,
                                 const Shape& out_shape) {
  if (operand_shape.size() > out_shape.size())
    throw std::length_error("broadcast_strides: operand rank exceeds the output's");
  Strides s(out_shape.size(), 0);
  const std::size_t lead = out_shape.size() - operand_shape.size();
  for (std::size_t i = 0; i < operand_shape.size(); ++i)
    s[lead + i] = operand_shape[i] == 1 ? 0 : operand_strides[i];
  return s;
}

}  // namespace xgrad
