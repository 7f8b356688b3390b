// softmax and log_softmax along an axis on the GPU, shifted by the lane max as
// on the CPU, with the normalizer accumulated in double.
#include <limits>

#include "core/op.h"
#include "cuda/context.h"
#include "cuda/indexing.cuh"
#include "ops/elementwise_math.h"

namespace xgrad::cuda {

namespace {

// One block per lane (a 1-D run along the axis); lanes are located by `ix` over x's shape with the axis at 1.
template <class T, bool kLog>
__global__ void softmax_kernel(const T* x, T* y, std::int64_t lanes, std::int64_t n, std::int64_t xs, std::int64_t ys,
                               StridedIndex<2> ix, T neg_inf) {
  __shared__ T maxes[kThreads];
  __shared__ double sums[kThreads];
  for (std::int64_t lane = blockIdx.x; lane < lanes; lane += gridDim.x) {
    std::int64_t off[2];
    ix.offsets(lane, off);
    const T* xp = x + off[0];
    T* yp = y + off[1];
    T m = neg_inf;
    for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) m = ew::max(m, xp[i * xs]);
    maxes[threadIdx.x] = m;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
      if (threadIdx.x < half) maxes[threadIdx.x] = ew::max(maxes[threadIdx.x], maxes[threadIdx.x + half]);
      __syncthreads();
    }
    m = maxes[0];
    if (m == neg_inf) m = 0;  // a lane of -inf: exp(-inf - 0) = 0, not NaN
    double total = 0;
    for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) total += ew::exp(xp[i * xs] - m);
    sums[threadIdx.x] = total;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
      if (threadIdx.x < half) sums[threadIdx.x] += sums[threadIdx.x + half];
      __syncthreads();
    }
    total = sums[0];
    if (kLog) {
      const T log_total = static_cast<T>(ew::log(total));
      for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) yp[i * ys] = (xp[i * xs] - m) - log_total;
    } else {
      const T scale = static_cast<T>(1.0 / total);
      for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) yp[i * ys] = ew::exp(xp[i * xs] - m) * scale;
    }
    __syncthreads();  // the shared arrays are reused by the next lane
  }
}

template <bool kLog>
void softmax(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const Tensor& x = *in[0];
  const auto axis = normalize_axis(attrs.get_int("axis"), x.ndim(), "softmax");
  if (x.numel() == 0) return;
  if (x.ndim() > kMaxRank) throw ValueError("softmax: the CUDA kernel takes up to 8 dimensions");
  StridedIndex<2> ix;
  ix.rank = static_cast<int>(x.ndim());
  for (int d = 0; d < ix.rank; ++d) {
    ix.size[d] = d == axis ? 1 : x.shape()[d];
    ix.stride[0][d] = x.strides()[d];
    ix.stride[1][d] = out.strides()[d];
  }
  const std::int64_t n = x.shape()[axis], lanes = x.numel() / n;
  kernels::dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const auto blocks = static_cast<unsigned>(std::min<std::int64_t>(lanes, 65535));
    XGRAD_LAUNCH(blocks, kThreads, softmax_kernel<T, kLog>)(static_cast<const T*>(x.raw_data()),
                                                               static_cast<T*>(out.raw_data()), lanes, n,
                                                               x.strides()[axis], out.strides()[axis], ix,
                                                               -std::numeric_limits<T>::infinity());
  });
  check_launch("softmax kernel");
}

const bool registered = [] {
  register_device_kernel("softmax", Device::cuda, softmax<false>);
  register_device_kernel("log_softmax", Device::cuda, softmax<true>);
  return true;
}();

}  // namespace

}  // namespace xgrad::cuda
