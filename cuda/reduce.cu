// CUDA reductions: sum, mean, max, min, prod over axes, sum_to_like (the
// gradient of broadcasting) and reduction_size. The folds are ops/
// elementwise_math.h's combine functors, the CPU kernels' own.
#include <cmath>
#include <limits>

#include "core/op.h"
#include "cuda/context.h"
#include "cuda/indexing.cuh"
#include "ops/elementwise_math.h"
#include "ops/reduce_util.h"

namespace xgrad::cuda {

namespace {

// Where output element o starts in x (over the kept axes), and where its r-th folded element is
// relative to that (over the reduced axes); `kept` is x's rank with 1 on reduced axes.
struct ReduceIndex {
  StridedIndex<1> outer, inner;
  std::int64_t n_out = 0, count = 0;
};

ReduceIndex reduce_index(const Tensor& x, const Shape& kept) {
  if (x.ndim() > kMaxRank)
    throw ValueError("the CUDA reductions take up to 8 dimensions, got " + std::to_string(x.ndim()));
  ReduceIndex ix;
  ix.outer.rank = ix.inner.rank = static_cast<int>(x.ndim());
  for (int d = 0; d < ix.outer.rank; ++d) {
    const bool folded = kept[d] != x.shape()[d];
    ix.outer.size[d] = folded ? 1 : x.shape()[d];
    ix.inner.size[d] = folded ? x.shape()[d] : 1;
    ix.outer.stride[0][d] = ix.inner.stride[0][d] = x.strides()[d];
  }
  ix.n_out = numel(kept);
  ix.count = reduced_count(x.shape(), kept);
  return ix;
}

// One block per output element (grid-stride over outputs), for few outputs with many elements each: each
// thread folds a strided share of the elements, then the block folds its threads' partials in shared memory.
template <class T, class Combine>
__global__ void reduce_kernel(const T* x, T* out, ReduceIndex ix, T init, Combine combine, double scale) {
  __shared__ T partial[kThreads];
  for (std::int64_t o = blockIdx.x; o < ix.n_out; o += gridDim.x) {
    std::int64_t base[1];
    ix.outer.offsets(o, base);
    T acc = init;
    for (std::int64_t r = threadIdx.x; r < ix.count; r += blockDim.x) {
      std::int64_t off[1];
      ix.inner.offsets(r, off);
      acc = combine(acc, x[base[0] + off[0]]);
    }
    partial[threadIdx.x] = acc;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
      if (threadIdx.x < half) partial[threadIdx.x] = combine(partial[threadIdx.x], partial[threadIdx.x + half]);
      __syncthreads();
    }
    if (threadIdx.x == 0) out[o] = scale == 1.0 ? partial[0] : static_cast<T>(partial[0] * scale);
    __syncthreads();  // partial is reused by the next output
  }
}

// One thread per output element, folding its elements in order: for many outputs (a bias gradient summing
// the rows of (N, C): neighbouring threads read neighbouring columns, so the loads coalesce).
template <class T, class Combine>
__global__ void reduce_per_thread(const T* x, T* out, ReduceIndex ix, T init, Combine combine, double scale) {
  XGRAD_GRID_STRIDE(o, ix.n_out) {
    std::int64_t base[1];
    ix.outer.offsets(o, base);
    T acc = init;
    for (std::int64_t r = 0; r < ix.count; ++r) {
      std::int64_t off[1];
      ix.inner.offsets(r, off);
      acc = combine(acc, x[base[0] + off[0]]);
    }
    out[o] = scale == 1.0 ? acc : static_cast<T>(acc * scale);
  }
}

// Enough outputs to fill the GPU with one thread each.
constexpr std::int64_t kThreadPerOutput = 4096;

template <class Combine>
void reduce_into(const Tensor& x, const Shape& kept, Tensor& out, double init, double scale) {
  const ReduceIndex ix = reduce_index(x, kept);
  if (ix.n_out == 0) return;
  kernels::dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = static_cast<const T*>(x.raw_data());
    T* yp = static_cast<T*>(out.raw_data());
    if (ix.n_out >= kThreadPerOutput) {
      XGRAD_LAUNCH(blocks_for(ix.n_out), kThreads, reduce_per_thread)(xp, yp, ix, static_cast<T>(init), Combine{}, scale);
    } else {
      const auto blocks = static_cast<unsigned>(std::min<std::int64_t>(ix.n_out, 65535));
      XGRAD_LAUNCH(blocks, kThreads, reduce_kernel)(xp, yp, ix, static_cast<T>(init), Combine{}, scale);
    }
  });
  check_launch("reduction kernel");
}

void sum(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  reduce_into<ew::SumCombine>(*in[0], keepdims_shape(*in[0], attrs), out, 0.0, 1.0);
}

void mean(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const Shape kept = keepdims_shape(*in[0], attrs);
  const std::int64_t count = reduced_count(in[0]->shape(), kept);
  reduce_into<ew::SumCombine>(*in[0], kept, out, 0.0, count == 0 ? std::nan("") : 1.0 / static_cast<double>(count));
}

template <class Combine, int kInit>  // kInit: -1 lowest, +1 highest, 0 one
void fold(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const Shape kept = keepdims_shape(*in[0], attrs);
  if (kInit != 0 && numel(kept) > 0 && in[0]->numel() == 0) throw ValueError("max/min of an empty reduction has no identity");
  const double inf = std::numeric_limits<double>::infinity();
  reduce_into<Combine>(*in[0], kept, out, kInit < 0 ? -inf : kInit > 0 ? inf : 1.0, 1.0);
}

void sum_to_like(const Tensor* const* in, Tensor& out, const Attrs&) {
  reduce_into<ew::SumCombine>(*in[0], sum_to_kept(in[0]->shape(), out.shape()), out, 0.0, 1.0);
}

template <class T>
__global__ void set_scalar(T* out, T value) { *out = value; }

void reduction_size(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const double count = static_cast<double>(reduced_count(in[0]->shape(), keepdims_shape(*in[0], attrs)));
  kernels::dispatch_floating(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    XGRAD_LAUNCH(1, 1, set_scalar)(static_cast<T*>(out.raw_data()), static_cast<T>(count));
  });
  check_launch("reduction_size kernel");
}

const bool registered = [] {
  register_device_kernel("sum", Device::cuda, sum);
  register_device_kernel("mean", Device::cuda, mean);
  register_device_kernel("max", Device::cuda, fold<ew::MaxCombine, -1>);
  register_device_kernel("min", Device::cuda, fold<ew::MinCombine, 1>);
  register_device_kernel("prod", Device::cuda, fold<ew::ProdCombine, 0>);
  register_device_kernel("sum_to_like", Device::cuda, sum_to_like);
  register_device_kernel("reduction_size", Device::cuda, reduction_size);
  return true;
}();

}  // namespace

}  // namespace xgrad::cuda
