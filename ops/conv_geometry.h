// The sizes of one convolution run, shared by the CPU kernels (ops/conv.cpp)
// and the CUDA ones (cuda/conv.cu): both lower it to im2col and GEMMs.
#pragma once
#include "core/attrs.h"
#include "core/shape.h"
#include "ops/conv.h"

namespace xgrad {

inline Conv2dParams conv_params_of(const Attrs& attrs) {
  auto pair = [&](const char* name) {
    const auto& v = attrs.get_ints(name);
    return Pair{v[0], v[1]};
  };
  return {pair("stride"), pair("padding"), pair("dilation"), attrs.get_int("groups")};
}

// Sizes of one run, taken from the (static) run-time shapes.
struct ConvGeometry {
  std::int64_t n, c, h, w;  // input
  std::int64_t co, kh, kw;  // weight
  std::int64_t ho, wo;      // output
  Conv2dParams p;

  std::int64_t cg() const { return c / p.groups; }    // input channels per group
  std::int64_t cog() const { return co / p.groups; }  // output channels per group
  std::int64_t k() const { return cg() * kh * kw; }   // rows of a column matrix
  std::int64_t cols() const { return ho * wo; }
  // A 1x1 kernel at stride 1 without padding reads the input as its own column matrix.
  bool direct() const {
    return kh == 1 && kw == 1 && p.stride == Pair{1, 1} && p.padding == Pair{0, 0};
  }
};

inline ConvGeometry conv_geometry(const Shape& x, const Shape& w, const Shape& y, const Attrs& attrs) {
  return {x[0], x[1], x[2], x[3], w[0], w[2], w[3], y[2], y[3], conv_params_of(attrs)};
}

}  // namespace xgrad
