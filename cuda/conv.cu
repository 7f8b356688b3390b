// conv2d and its two adjoints on the GPU, as on the CPU: im2col into a column
// buffer, then cuBLAS GEMMs, batched over the images of each group.
#include <algorithm>
#include <utility>

#include "core/op.h"
#include "cuda/blas.h"
#include "cuda/context.h"
#include "cuda/indexing.cuh"
#include "ops/conv_geometry.h"

namespace xgrad::cuda {

namespace {

// Geometry of one group over `n` images as kernel arguments.
struct Taps {
  std::int64_t n, c, h, w, cg, kh, kw, ho, wo, sh, sw, ph, pw, dh, dw, group;
};

Taps taps_of(const ConvGeometry& g, std::int64_t group, std::int64_t images) {
  return {images, g.c, g.h, g.w, g.cg(), g.kh, g.kw, g.ho, g.wo, g.p.stride[0], g.p.stride[1], g.p.padding[0],
          g.p.padding[1], g.p.dilation[0], g.p.dilation[1], group};
}

// Images per im2col pass: the column buffer (images x k x cols) stays under this many bytes.
constexpr std::int64_t kColumnBytes = std::int64_t{256} << 20;

// col (n, k, cols) for one group: row (ci, i, j), column (oh, ow) = x[n][group * cg + ci][ih][iw], 0 in the padding.
template <class T>
__global__ void im2col_kernel(const T* x, T* col, Taps t) {
  const std::int64_t cols = t.ho * t.wo, k = t.cg * t.kh * t.kw, total = t.n * k * cols;
  XGRAD_GRID_STRIDE(idx, total) {
    const std::int64_t column = idx % cols, row = (idx / cols) % k, n = idx / (cols * k);
    const std::int64_t j = row % t.kw, i = (row / t.kw) % t.kh, ci = row / (t.kw * t.kh);
    const std::int64_t ih = (column / t.wo) * t.sh - t.ph + i * t.dh, iw = (column % t.wo) * t.sw - t.pw + j * t.dw;
    const bool inside = ih >= 0 && ih < t.h && iw >= 0 && iw < t.w;
    col[idx] = inside ? x[((n * t.c + t.group * t.cg + ci) * t.h + ih) * t.w + iw] : T(0);
  }
}

// The adjoint of im2col, gathered: each input element of the group sums the column entries read from it.
template <class T>
__global__ void col2im_kernel(const T* col, T* x, Taps t) {
  const std::int64_t cols = t.ho * t.wo, k = t.cg * t.kh * t.kw, total = t.n * t.cg * t.h * t.w;
  XGRAD_GRID_STRIDE(idx, total) {
    const std::int64_t iw = idx % t.w, ih = (idx / t.w) % t.h, ci = (idx / (t.w * t.h)) % t.cg, n = idx / (t.w * t.h * t.cg);
    T sum = 0;
    for (std::int64_t i = 0; i < t.kh; ++i) {
      const std::int64_t oh_s = ih + t.ph - i * t.dh;  // oh * sh
      if (oh_s < 0 || oh_s % t.sh != 0 || oh_s / t.sh >= t.ho) continue;
      for (std::int64_t j = 0; j < t.kw; ++j) {
        const std::int64_t ow_s = iw + t.pw - j * t.dw;
        if (ow_s < 0 || ow_s % t.sw != 0 || ow_s / t.sw >= t.wo) continue;
        const std::int64_t row = (ci * t.kh + i) * t.kw + j;
        sum += col[(n * k + row) * cols + (oh_s / t.sh) * t.wo + ow_s / t.sw];
      }
    }
    x[((n * t.c + t.group * t.cg + ci) * t.h + ih) * t.w + iw] = sum;
  }
}

bool degenerate(const ConvGeometry& g) { return g.k() == 0 || g.cols() == 0 || g.cog() == 0 || g.n == 0; }

std::int64_t images_per_pass(const ConvGeometry& g, DType dtype) {
  const std::int64_t per_image = g.k() * g.cols() * static_cast<std::int64_t>(itemsize(dtype));
  return g.direct() ? g.n : std::clamp<std::int64_t>(kColumnBytes / std::max<std::int64_t>(per_image, 1), 1, g.n);
}

// The column buffer for one group of a pass's images (none for a 1x1 kernel read in place).
Tensor column_buffer(const ConvGeometry& g, DType dtype) {
  return g.direct() ? Tensor() : Tensor::empty(dtype, {images_per_pass(g, dtype), g.k(), g.cols()}, Device::cuda);
}

// Calls f(first image, images) for each pass over the batch.
template <class F>
void for_each_pass(const ConvGeometry& g, std::int64_t per_pass, F&& f) {
  for (std::int64_t n0 = 0; n0 < g.n; n0 += per_pass) f(n0, std::min(per_pass, g.n - n0));
}

// The columns of group grp for images [n0, n0 + images), or the images themselves for a 1x1 kernel:
// the GEMMs' B operand, with its per-image stride.
template <class T>
std::pair<const T*, std::int64_t> columns(const T* x, const ConvGeometry& g, const Tensor& col, std::int64_t grp,
                                          std::int64_t n0, std::int64_t images) {
  const std::int64_t image = g.c * g.h * g.w;
  if (!col.defined()) return {x + n0 * image + grp * g.cg() * g.h * g.w, image};
  T* c = static_cast<T*>(col.raw_data());
  XGRAD_LAUNCH(blocks_for(images * g.k() * g.cols()), kThreads, im2col_kernel)(x + n0 * image, c, taps_of(g, grp, images));
  check_launch("im2col kernel");
  return {c, g.k() * g.cols()};
}

template <class T>
void forward(const T* x, const T* w, T* y, const ConvGeometry& g, const Tensor& col) {
  const std::int64_t k = g.k(), cols = g.cols(), cog = g.cog();
  const std::int64_t per_pass = col.defined() ? col.shape()[0] : g.n;
  for (std::int64_t grp = 0; grp < g.p.groups; ++grp)
    for_each_pass(g, per_pass, [&](std::int64_t n0, std::int64_t images) {
      const auto [b, b_stride] = columns(x, g, col, grp, n0, images);
      // y[n]_g (cog x cols) = w_g (cog x k) @ col[n] (k x cols)
      gemm<T>(false, false, cog, cols, k, w + grp * cog * k, k, 0, b, cols, b_stride, y + (n0 * g.co + grp * cog) * cols,
              cols, g.co * cols, images);
    });
}

template <class T>
void grad_input(const T* dy, const T* w, T* dx, const ConvGeometry& g, const Tensor& col) {
  const std::int64_t k = g.k(), cols = g.cols(), cog = g.cog(), image = g.c * g.h * g.w;
  const std::int64_t per_pass = col.defined() ? col.shape()[0] : g.n;
  for (std::int64_t grp = 0; grp < g.p.groups; ++grp)
    for_each_pass(g, per_pass, [&](std::int64_t n0, std::int64_t images) {
      // col[n] (k x cols) = w_g^T (k x cog) @ dy[n]_g (cog x cols); a 1x1 kernel writes dx directly
      T* c = col.defined() ? static_cast<T*>(col.raw_data()) : dx + n0 * image + grp * g.cg() * g.h * g.w;
      gemm<T>(true, false, k, cols, cog, w + grp * cog * k, k, 0, dy + (n0 * g.co + grp * cog) * cols, cols, g.co * cols, c,
              cols, col.defined() ? k * cols : image, images);
      if (col.defined()) {
        XGRAD_LAUNCH(blocks_for(images * g.cg() * g.h * g.w), kThreads, col2im_kernel)(c, dx + n0 * image,
                                                                                          taps_of(g, grp, images));
        check_launch("col2im kernel");
      }
    });
}

template <class T>
void grad_weight(const T* x, const T* dy, T* dw, const ConvGeometry& g, const Tensor& col) {
  const std::int64_t k = g.k(), cols = g.cols(), cog = g.cog();
  const std::int64_t per_pass = col.defined() ? col.shape()[0] : g.n;
  for (std::int64_t grp = 0; grp < g.p.groups; ++grp)
    for_each_pass(g, per_pass, [&](std::int64_t n0, std::int64_t images) {
      const auto [b, b_stride] = columns(x, g, col, grp, n0, images);
      // dw_g (cog x k) = sum over n of dy[n]_g (cog x cols) @ col[n]^T: one GEMM per image, accumulating.
      for (std::int64_t i = 0; i < images; ++i)
        gemm<T>(false, true, cog, k, cols, dy + ((n0 + i) * g.co + grp * cog) * cols, cols, 0, b + i * b_stride, cols, 0,
                dw + grp * cog * k, k, 0, 1, n0 + i == 0 ? T(0) : T(1));
    });
}

void conv2d(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const Tensor x = in[0]->contiguous(), w = in[1]->contiguous();
  const ConvGeometry g = conv_geometry(x.shape(), w.shape(), out.shape(), attrs);
  if (degenerate(g)) return out.fill_zero();
  const Tensor col = column_buffer(g, x.dtype());
  kernels::dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    forward<T>(static_cast<const T*>(x.raw_data()), static_cast<const T*>(w.raw_data()), static_cast<T*>(out.raw_data()), g, col);
  });
}

void conv2d_grad_input(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const Tensor dy = in[0]->contiguous(), w = in[1]->contiguous();
  const ConvGeometry g = conv_geometry(out.shape(), w.shape(), dy.shape(), attrs);
  if (degenerate(g)) return out.fill_zero();
  const Tensor col = column_buffer(g, dy.dtype());
  kernels::dispatch_floating(dy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    grad_input<T>(static_cast<const T*>(dy.raw_data()), static_cast<const T*>(w.raw_data()), static_cast<T*>(out.raw_data()), g, col);
  });
}

void conv2d_grad_weight(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const Tensor x = in[0]->contiguous(), dy = in[1]->contiguous();
  const ConvGeometry g = conv_geometry(x.shape(), out.shape(), dy.shape(), attrs);
  if (degenerate(g)) return out.fill_zero();
  const Tensor col = column_buffer(g, x.dtype());
  kernels::dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    grad_weight<T>(static_cast<const T*>(x.raw_data()), static_cast<const T*>(dy.raw_data()), static_cast<T*>(out.raw_data()), g, col);
  });
}

const bool registered = [] {
  register_device_kernel("conv2d", Device::cuda, conv2d);
  register_device_kernel("conv2d_grad_input", Device::cuda, conv2d_grad_input);
  register_device_kernel("conv2d_grad_weight", Device::cuda, conv2d_grad_weight);
  return true;
}();

}  // namespace

}  // namespace xgrad::cuda
