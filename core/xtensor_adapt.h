// xtensor views of Tensors, for kernels that want xtensor expressions.
// Heavy templates: include only from ops/*.cpp and tests, never from public headers.
#pragma once
#include <xtensor/xadapt.hpp>

#include <vector>

#include "core/tensor.h"

namespace xgrad {

// A strided xtensor adaptor over t's memory (no copy); writes go to t's storage.
// Negative strides (reversed slices) are not supported by the adaptor: make such views contiguous first.
template <class T>
auto as_xtensor(const Tensor& t) {
  std::vector<std::size_t> shape(t.shape().begin(), t.shape().end());
  std::vector<std::ptrdiff_t> strides(t.strides().begin(), t.strides().end());
  std::size_t span = t.numel() == 0 ? 0 : 1;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (strides[d] < 0) throw ValueError("as_xtensor: negative strides are not supported");
    if (shape[d] > 0) span += (shape[d] - 1) * static_cast<std::size_t>(strides[d]);
  }
  return xt::adapt(t.data<T>(), span, xt::no_ownership(), shape, strides);
}

}  // namespace xgrad
