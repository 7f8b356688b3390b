// The sizes of one pooling run and the window arithmetic, shared by the CPU
// kernels (ops/pool.cpp) and the CUDA ones (cuda/pool.cu): plain integers, so
// CUDA kernels take it by value, and the window maximum rule written once.
#pragma once
#include <cstdint>

#include "core/attrs.h"
#include "core/shape.h"
#include "ops/elementwise_math.h"

namespace xgrad {

struct PoolGeometry {
  std::int64_t planes, h, w, ho, wo;  // planes: N * C
  std::int64_t kh, kw, sh, sw, ph, pw;
  bool count_include_pad;

  XGRAD_HOST_DEVICE std::int64_t in_size() const { return h * w; }
  XGRAD_HOST_DEVICE std::int64_t out_size() const { return ho * wo; }

  // The window of output (oh, ow), clipped to the input: rows [h0, h1), columns [w0, w1).
  XGRAD_HOST_DEVICE void window(std::int64_t oh, std::int64_t ow, std::int64_t& h0, std::int64_t& h1, std::int64_t& w0,
                                std::int64_t& w1) const {
    const std::int64_t top = oh * sh - ph, left = ow * sw - pw;
    h0 = top > 0 ? top : 0;
    h1 = top + kh < h ? top + kh : h;
    w0 = left > 0 ? left : 0;
    w1 = left + kw < w ? left + kw : w;
  }

  // Without ceil_mode every window lies inside the padded input, so with padding counted it is the full kernel.
  template <class T>
  XGRAD_HOST_DEVICE T divisor(std::int64_t h0, std::int64_t h1, std::int64_t w0, std::int64_t w1) const {
    return count_include_pad ? T(kh * kw) : T((h1 - h0) * (w1 - w0));
  }

  // Where in a plane the window's maximum sits. As in PyTorch: the first maximum in row-major order
  // wins, and a NaN wins over numbers. Windows are never empty (padding is at most half the kernel).
  template <class T>
  XGRAD_HOST_DEVICE std::int64_t argmax(const T* plane, std::int64_t h0, std::int64_t h1, std::int64_t w0,
                                        std::int64_t w1) const {
    std::int64_t best_at = h0 * w + w0;
    T best = plane[best_at];
    for (std::int64_t ih = h0; ih < h1; ++ih)
      for (std::int64_t iw = w0; iw < w1; ++iw) {
        const T v = plane[ih * w + iw];
        if (v > best || v != v) {
          best = v;
          best_at = ih * w + iw;
        }
      }
    return best_at;
  }
};

// x (N, C, H, W) pooled into y (N, C, H_out, W_out) with the op's attributes.
inline PoolGeometry pool_geometry(const Shape& x, const Shape& y, const Attrs& attrs) {
  const auto& k = attrs.get_ints("kernel");
  const auto& s = attrs.get_ints("stride");
  const auto& p = attrs.get_ints("padding");
  return {x[0] * x[1], x[2], x[3], y[2], y[3], k[0], k[1], s[0], s[1], p[0], p[1], attrs.get_int("count_include_pad") != 0};
}

}  // namespace xgrad
