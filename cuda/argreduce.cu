// argmax / argmin along an axis (or over the flattened tensor) and tril on the GPU.
#include "core/op.h"
#include "cuda/context.h"
#include "cuda/indexing.cuh"

namespace xgrad::cuda {

namespace {

template <class T>
__device__ bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>) return v != v;
  else return false;
}

// One thread per lane, scanning it as the CPU kernel does: the first extreme wins, the first NaN beats all.
template <class T, bool kMax>
__global__ void arg_kernel(const T* x, std::int64_t* out, std::int64_t lanes, std::int64_t n, std::int64_t step,
                           StridedIndex<2> ix) {
  XGRAD_GRID_STRIDE(lane, lanes) {
    std::int64_t off[2];
    ix.offsets(lane, off);
    const T* p = x + off[0];
    std::int64_t best = 0;
    T best_v = p[0];
    for (std::int64_t k = 1; k < n && !is_nan(best_v); ++k) {
      const T v = p[k * step];
      if (is_nan(v) || (kMax ? v > best_v : v < best_v)) {
        best = k;
        best_v = v;
      }
    }
    out[off[1]] = best;
  }
}

template <bool kMax>
void arg_reduce(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  Tensor x = *in[0];
  std::int64_t axis = 0;
  if (attrs.get_ints("axes").empty()) x = x.contiguous().reshape({-1});
  else axis = normalize_axis(attrs.get_ints("axes")[0], x.ndim(), "arg reduction");
  const std::int64_t n = x.shape()[axis];
  if (n == 0) throw ValueError("attempt to get the index of an empty axis");
  if (x.ndim() > kMaxRank) throw ValueError("argmax/argmin: the CUDA kernel takes up to 8 dimensions");
  // Lanes walk x with the axis at size 1; out is contiguous over the same index space.
  Shape outer = x.shape();
  outer[axis] = 1;
  const Strides out_strides = contiguous_strides(outer);
  StridedIndex<2> ix;
  ix.rank = static_cast<int>(x.ndim());
  for (int d = 0; d < ix.rank; ++d) {
    ix.size[d] = outer[d];
    ix.stride[0][d] = x.strides()[d];
    ix.stride[1][d] = out_strides[d];
  }
  const std::int64_t lanes = numel(outer);
  kernels::dispatch_numeric(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    XGRAD_LAUNCH(blocks_for(lanes), kThreads, arg_kernel<T, kMax>)(
        static_cast<const T*>(x.raw_data()), static_cast<std::int64_t*>(out.raw_data()), lanes, n, x.strides()[axis], ix);
  });
  check_launch("arg reduction kernel");
}

// out = x where column - row <= k, else 0, for every matrix of the batch.
template <class T>
__global__ void tril_kernel(const T* x, T* out, std::int64_t total, std::int64_t rows, std::int64_t cols, std::int64_t k,
                            StridedIndex<2> ix) {
  XGRAD_GRID_STRIDE(i, total) {
    std::int64_t off[2];
    ix.offsets(i, off);
    const std::int64_t col = i % cols, row = (i / cols) % rows;
    out[off[0]] = col - row <= k ? x[off[1]] : T(0);
  }
}

void tril(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const std::int64_t total = out.numel();
  if (total == 0) return;
  const std::int64_t rows = out.shape()[out.ndim() - 2], cols = out.shape()[out.ndim() - 1];
  kernels::dispatch_floating(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    XGRAD_LAUNCH(blocks_for(total), kThreads, tril_kernel)(static_cast<const T*>(in[0]->raw_data()),
                                                              static_cast<T*>(out.raw_data()), total, rows, cols,
                                                              attrs.get_int("k"), strided_index<2>(out, in, "tril"));
  });
  check_launch("tril kernel");
}

const bool registered = [] {
  register_device_kernel("argmax", Device::cuda, arg_reduce<true>);
  register_device_kernel("argmin", Device::cuda, arg_reduce<false>);
  register_device_kernel("tril", Device::cuda, tril);
  return true;
}();

}  // namespace

}  // namespace xgrad::cuda
