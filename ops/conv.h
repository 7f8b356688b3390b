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
};

Var max_pool2d(Var x, const Pool2dParams& p);
Var avg_pool2d(Var x, const Pool2dParams& p);

// Gradient helpers, public so gradients of gradients can be built and tested.
// max_pool2d_grad routes dy to the first maximum of each window of x;
// max_pool2d_gather reads g at those positions (its adjoint in dy).
Var max_pool2d_grad(Var x, Var dy, const Pool2dParams& p);
Var max_pool2d_gather(Var x, Var g, const Pool2dParams& p);
// Spreads dy back over each window (the adjoint of avg_pool2d); like supplies x's shape.
Var avg_pool2d_grad(Var dy, Var like, const Pool2dParams& p);

}  // namespace xgrad
