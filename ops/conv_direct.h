// Direct convolution (stride 1, no dilation, one group) for the CPU forward kernel: see ops/conv_direct.cpp.
#pragma once
#include <cstdint>

#include "ops/conv_geometry.h"

// Internal to the library: not exported from libxgrad.so.
#pragma GCC visibility push(hidden)

namespace xgrad {

// Whether the direct kernel runs this convolution (else im2col + GEMM).
bool direct_conv_applies(const ConvGeometry& g);

// y = conv2d(x, w): x (n, c, h, w), w (co, c, kh, kw), y (n, co, ho, wo), contiguous; split across the thread
// pool by images, or by output rows for batches smaller than the pool.
template <class T>
void direct_conv(const T* x, const T* w, T* y, const ConvGeometry& g);

// dw (co, c, kh, kw) = the weight gradient of direct_conv for the output gradient dy, over the whole batch.
template <class T>
void direct_conv_weight_gradient(const T* x, const T* dy, T* dw, const ConvGeometry& g);

}  // namespace xgrad
#pragma GCC visibility pop
