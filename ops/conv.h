// Builder functions for 2-D convolution and pooling over NCHW tensors
// (ops/conv.cpp, ops/pool.cpp). The batch dimension may be symbolic.
//
// Parameters are structs so call sites name what they set:
//   conv2d(x, w, b, {.stride = {2, 2}, .padding = {1, 1}})
#pragma once
#include <array>
#include <cstdint>
#include <optional>

#include "core/graph.h"

namespace xgrad {

using Pair = std::array<std::int64_t, 2>;  // (height, width)

struct Conv2dParams {
  Pair stride{1, 1};
  Pair padding{0, 0};  // zeros added on both sides of each spatial dim
  Pair dilation{1, 1};
  std::int64_t groups = 1;
};

// y = x (N, C_in, H, W) convolved with w (C_out, C_in / groups, kH, kW), as
// PyTorch's conv2d (a cross-correlation). A bias (C_out,) is broadcast-added.
Var conv2d(Var x, Var w, const Conv2dParams& p = {});
Var conv2d(Var x, Var w, Var bias, const Conv2dParams& p = {});

// The adjoints of conv2d in each argument; `like` supplies the result's shape
// (x's for the input gradient, w's for the weight gradient), which the
// output shape alone does not determine when the stride is above one.
Var conv2d_grad_input(Var dy, Var w, Var like, const Conv2dParams& p);
Var conv2d_grad_weight(Var x, Var dy, Var like, const Conv2dParams& p);

struct Pool2dParams {
  Pair kernel{1, 1};
  std::optional<Pair> stride;  // none: the kernel size, PyTorch's default
  Pair padding{0, 0};  // at most half the kernel, as PyTorch requires
  bool count_include_pad = true;  // avg_pool2d only: padded zeros count in the divisor
  Pair dilation{1, 1};  // max_pool2d only, as in PyTorch
  bool ceil_mode = false;  // the last partial window counts (it must start inside the input or its padding)
};

// With dilation, or a ceil_mode that adds a window, the windows' fold below (no pooling kernel); there a tie
// for a window's maximum shares the gradient evenly (maximum's rule) instead of sending it to the first.
Var max_pool2d(Var x, const Pool2dParams& p);
Var avg_pool2d(Var x, const Pool2dParams& p);

// ---- any number of spatial dims (ops/pool_window.cpp) ----
// Pooling as the maximum (sum) of one strided slice per kernel offset, for dilation, ceil_mode and uneven
// padding (ONNX's pads); spatial dims must be static. Per spatial dim: kernel, stride, dilation, padding
// before (begin) and after (end). ceil_mode keeps the last partial window, as PyTorch does.
struct PoolWindow {
  Shape kernel, stride, dilation, begin, end;
  bool ceil_mode = false;
};
// Kernel, stride, dilation and padding stay below this, so window arithmetic stays far from int64's limit.
inline constexpr std::int64_t kMaxWindowExtent = std::int64_t{1} << 31;
// A window's fold builds one slice per kernel offset: at most this many.
inline constexpr std::int64_t kMaxWindowOffsets = std::int64_t{1} << 16;
// x (N, C, spatial...) padded by `value` before (begin) and after (end) each spatial dim.
Var pad_spatial(Var x, const Shape& begin, const Shape& end, double value);
Var max_pool_windows(Var x, const PoolWindow& w);
// The divisor counts padding when count_include_pad, never ceil_mode's extra positions (PyTorch's rule).
Var avg_pool_windows(Var x, const PoolWindow& w, bool count_include_pad);
Shape ceil_mode_extra(const Var& x, const PoolWindow& w);  // the end padding ceil_mode's last window adds

// Gradient helpers, public so gradients of gradients can be built and tested.
// max_pool2d_grad routes dy to the first maximum of each window of x;
// max_pool2d_gather reads g at those positions (its adjoint in dy).
Var max_pool2d_grad(Var x, Var dy, const Pool2dParams& p);
Var max_pool2d_gather(Var x, Var g, const Pool2dParams& p);
// Spreads dy back over each window (the adjoint of avg_pool2d); like supplies x's shape.
Var avg_pool2d_grad(Var dy, Var like, const Pool2dParams& p);

// ---- 1 and 3 spatial dims (ops/conv_nd.cpp) ----
// Built from the 2-D ops, so they differentiate (to any order), run on every device the 2-D ops do and export
// to ONNX as those do: 1-D as 2-D with a unit height; 3-D with depth folded into the batch (one conv2d per
// depth tap, the taps summed) and pooling separated into a 2-D pool and a pool along depth. Depth (3-D) must
// be static; the batch may be symbolic.

using Triple = std::array<std::int64_t, 3>;  // (depth, height, width)

struct Conv1dParams {
  std::int64_t stride = 1;
  std::int64_t padding = 0;
  std::int64_t dilation = 1;
  std::int64_t groups = 1;
};
struct Conv3dParams {
  Triple stride{1, 1, 1};
  Triple padding{0, 0, 0};
  Triple dilation{1, 1, 1};
  std::int64_t groups = 1;
};

// x (N, C_in, L) with w (C_out, C_in / groups, k); x (N, C_in, D, H, W) with w (C_out, C_in / groups, kD, kH, kW).
Var conv1d(Var x, Var w, const Conv1dParams& p = {});
Var conv1d(Var x, Var w, Var bias, const Conv1dParams& p = {});
Var conv3d(Var x, Var w, const Conv3dParams& p = {});
Var conv3d(Var x, Var w, Var bias, const Conv3dParams& p = {});

struct Pool1dParams {
  std::int64_t kernel = 1;
  std::optional<std::int64_t> stride;  // none: the kernel size
  std::int64_t padding = 0;            // at most half the kernel
  bool count_include_pad = true;
  std::int64_t dilation = 1;  // max_pool1d only
  bool ceil_mode = false;
};
struct Pool3dParams {
  Triple kernel{1, 1, 1};
  std::optional<Triple> stride;
  Triple padding{0, 0, 0};
  bool count_include_pad = true;
  Triple dilation{1, 1, 1};  // max_pool3d only
  bool ceil_mode = false;
};

Var max_pool1d(Var x, const Pool1dParams& p);
Var avg_pool1d(Var x, const Pool1dParams& p);
// The gradient of max_pool3d goes to the first maximum of each window within a depth slice; a tie across
// depth slices splits it evenly (as maximum's gradient does).
Var max_pool3d(Var x, const Pool3dParams& p);
Var avg_pool3d(Var x, const Pool3dParams& p);

}  // namespace xgrad
