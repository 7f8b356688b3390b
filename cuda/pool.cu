// max and average pooling on the GPU, with their gradient ops: one thread per
// output element (gathers) or per input element (the spreads), over the
// window arithmetic of ops/pool_geometry.h that the CPU kernels use.
#include "core/op.h"
#include "cuda/context.h"
#include "cuda/indexing.cuh"
#include "ops/pool_geometry.h"

namespace xgrad::cuda {

namespace {

// Where in x (flat) the maximum of output element i's window sits.
template <class T>
__device__ std::int64_t max_position(const T* x, const PoolGeometry& g, std::int64_t i) {
  const std::int64_t plane = i / g.out_size(), o = i % g.out_size();
  std::int64_t h0, h1, w0, w1;
  g.window(o / g.wo, o % g.wo, h0, h1, w0, w1);
  return plane * g.in_size() + g.argmax(x + plane * g.in_size(), h0, h1, w0, w1);
}

// out[i] = src at the maximum of x's window i: max_pool2d (src = x) and max_pool2d_gather.
template <class T>
__global__ void gather_at_max(const T* x, const T* src, T* out, PoolGeometry g) {
  XGRAD_GRID_STRIDE(i, g.planes * g.out_size()) out[i] = src[max_position(x, g, i)];
}

// dx (zeroed) += dy at each window's maximum: max_pool2d_grad. Windows overlap, hence the atomics.
template <class T>
__global__ void scatter_to_max(const T* x, const T* dy, T* dx, PoolGeometry g) {
  XGRAD_GRID_STRIDE(i, g.planes * g.out_size()) atomicAdd(dx + max_position(x, g, i), dy[i]);
}

template <class T>
__global__ void average(const T* x, T* out, PoolGeometry g) {
  XGRAD_GRID_STRIDE(i, g.planes * g.out_size()) {
    const std::int64_t plane = i / g.out_size(), o = i % g.out_size();
    std::int64_t h0, h1, w0, w1;
    g.window(o / g.wo, o % g.wo, h0, h1, w0, w1);
    const T* p = x + plane * g.in_size();
    T s = 0;
    for (std::int64_t ih = h0; ih < h1; ++ih)
      for (std::int64_t iw = w0; iw < w1; ++iw) s += p[ih * g.w + iw];
    out[i] = s / g.divisor<T>(h0, h1, w0, w1);
  }
}

// avg_pool2d_grad, gathered: each input element sums the shares of the windows that cover it.
template <class T>
__global__ void spread_average(const T* dy, T* dx, PoolGeometry g) {
  XGRAD_GRID_STRIDE(i, g.planes * g.in_size()) {
    const std::int64_t plane = i / g.in_size(), ih = (i % g.in_size()) / g.w, iw = i % g.w;
    // Outputs whose window can reach (ih, iw): oh * sh - ph <= ih < oh * sh - ph + kh.
    const std::int64_t oh_lo = ih + g.ph - g.kh + 1 > 0 ? (ih + g.ph - g.kh + 1 + g.sh - 1) / g.sh : 0;
    const std::int64_t ow_lo = iw + g.pw - g.kw + 1 > 0 ? (iw + g.pw - g.kw + 1 + g.sw - 1) / g.sw : 0;
    T s = 0;
    for (std::int64_t oh = oh_lo; oh < g.ho && oh * g.sh - g.ph <= ih; ++oh)
      for (std::int64_t ow = ow_lo; ow < g.wo && ow * g.sw - g.pw <= iw; ++ow) {
        std::int64_t h0, h1, w0, w1;
        g.window(oh, ow, h0, h1, w0, w1);
        s += dy[plane * g.out_size() + oh * g.wo + ow] / g.divisor<T>(h0, h1, w0, w1);
      }
    dx[i] = s;
  }
}

template <class Launch>
void launch(DType dtype, std::int64_t n, const char* what, Launch&& body) {
  if (n == 0) return;
  kernels::dispatch_floating(dtype, [&](auto tag) { body(tag, blocks_for(n)); });
  check_launch(what);
}

void max_pool2d(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const Tensor x = in[0]->contiguous();
  const PoolGeometry g = pool_geometry(x.shape(), out.shape(), attrs);
  launch(x.dtype(), out.numel(), "max_pool2d", [&](auto tag, unsigned blocks) {
    using T = decltype(tag);
    const T* xp = static_cast<const T*>(x.raw_data());
    XGRAD_LAUNCH(blocks, kThreads, gather_at_max)(xp, xp, static_cast<T*>(out.raw_data()), g);
  });
}

void max_pool2d_gather(const Tensor* const* in, Tensor& out, const Attrs& attrs) {  // (x, g)
  const Tensor x = in[0]->contiguous(), src = in[1]->contiguous();
  const PoolGeometry g = pool_geometry(x.shape(), out.shape(), attrs);
  launch(x.dtype(), out.numel(), "max_pool2d_gather", [&](auto tag, unsigned blocks) {
    using T = decltype(tag);
    XGRAD_LAUNCH(blocks, kThreads, gather_at_max)(static_cast<const T*>(x.raw_data()), static_cast<const T*>(src.raw_data()),
                                                    static_cast<T*>(out.raw_data()), g);
  });
}

void max_pool2d_grad(const Tensor* const* in, Tensor& out, const Attrs& attrs) {  // (x, dy)
  const Tensor x = in[0]->contiguous(), dy = in[1]->contiguous();
  const PoolGeometry g = pool_geometry(x.shape(), dy.shape(), attrs);
  out.fill_zero();
  launch(x.dtype(), dy.numel(), "max_pool2d_grad", [&](auto tag, unsigned blocks) {
    using T = decltype(tag);
    XGRAD_LAUNCH(blocks, kThreads, scatter_to_max)(static_cast<const T*>(x.raw_data()), static_cast<const T*>(dy.raw_data()),
                                                     static_cast<T*>(out.raw_data()), g);
  });
}

void avg_pool2d(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const Tensor x = in[0]->contiguous();
  const PoolGeometry g = pool_geometry(x.shape(), out.shape(), attrs);
  launch(x.dtype(), out.numel(), "avg_pool2d", [&](auto tag, unsigned blocks) {
    using T = decltype(tag);
    XGRAD_LAUNCH(blocks, kThreads, average)(static_cast<const T*>(x.raw_data()), static_cast<T*>(out.raw_data()), g);
  });
}

void avg_pool2d_grad(const Tensor* const* in, Tensor& out, const Attrs& attrs) {  // (dy, like)
  const Tensor dy = in[0]->contiguous();
  const PoolGeometry g = pool_geometry(out.shape(), dy.shape(), attrs);
  launch(dy.dtype(), out.numel(), "avg_pool2d_grad", [&](auto tag, unsigned blocks) {
    using T = decltype(tag);
    XGRAD_LAUNCH(blocks, kThreads, spread_average)(static_cast<const T*>(dy.raw_data()), static_cast<T*>(out.raw_data()), g);
  });
}

const bool registered = [] {
  register_device_kernel("max_pool2d", Device::cuda, max_pool2d);
  register_device_kernel("max_pool2d_gather", Device::cuda, max_pool2d_gather);
  register_device_kernel("max_pool2d_grad", Device::cuda, max_pool2d_grad);
  register_device_kernel("avg_pool2d", Device::cuda, avg_pool2d);
  register_device_kernel("avg_pool2d_grad", Device::cuda, avg_pool2d_grad);
  return true;
}();

}  // namespace

}  // namespace xgrad::cuda
