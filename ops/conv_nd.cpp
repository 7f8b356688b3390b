// Convolution and pooling over 1 and 3 spatial dims, built from the 2-D ops (ops/conv.h says how), so
// their gradients, devices and ONNX lowerings are the 2-D ops' own.
#include <algorithm>
#include <cmath>
#include <string>

#include "ops/conv.h"
#include "ops/ops.h"

namespace xgrad {

namespace {

std::string shape_text(Var v) { return to_string(v.shape()); }

// x sliced along one axis, whole along the others.
Var slice_axis(Var x, std::size_t axis, std::int64_t start, std::int64_t stop, std::int64_t step) {
  const std::size_t rank = x.shape().size();
  Axes starts(rank, 0), stops(rank, kSliceEnd), steps(rank, 1);
  starts[axis] = start, stops[axis] = stop, steps[axis] = step;
  return slice(x, starts, stops, steps);
}

// Zeros (or value) added before and after one axis.
Var pad_axis(Var x, std::size_t axis, std::int64_t before, std::int64_t after, double value) {
  if (before == 0 && after == 0) return x;
  std::vector<std::int64_t> pads(2 * x.shape().size(), 0);
  pads[2 * axis] = before, pads[2 * axis + 1] = after;
  return pad(x, pads, value);
}

constexpr std::int64_t kMaxGeometry = std::int64_t{1} << 31;  // keeps window arithmetic far from int64's limit

void check_geometry(const char* op, std::size_t dims, const std::int64_t* stride, const std::int64_t* padding,
                    const std::int64_t* dilation) {
  for (std::size_t d = 0; d < dims; ++d)
    if (stride[d] < 1 || padding[d] < 0 || dilation[d] < 1 || stride[d] > kMaxGeometry || padding[d] > kMaxGeometry ||
        dilation[d] > kMaxGeometry)
      throw ValueError(std::string(op) + ": stride and dilation must be between 1 and 2^31, padding between 0 and 2^31");
}

void check_conv(const char* op, Var x, Var w, std::size_t spatial, std::int64_t groups) {
  const Shape &xs = x.shape(), &ws = w.shape();
  const std::string dims = spatial == 1 ? "L" : "D, H, W", kernel = spatial == 1 ? "k" : "kD, kH, kW";
  if (xs.size() != spatial + 2 || ws.size() != spatial + 2)
    throw ValueError(std::string(op) + ": expects input (N, C_in, " + dims + ") and weight (C_out, C_in / groups, " + kernel +
                     "), got shapes " + shape_text(x) + " and " + shape_text(w));
  if (groups < 1) throw ValueError(std::string(op) + ": groups must be positive, got " + std::to_string(groups));
  if (xs[1] != kDynamic && ws[1] != kDynamic && xs[1] != ws[1] * groups)
    throw ValueError(std::string(op) + ": input " + shape_text(x) + " has " + std::to_string(xs[1]) + " channels, but weight " +
                     shape_text(w) + " with groups=" + std::to_string(groups) + " expects " + std::to_string(ws[1] * groups));
  for (std::size_t d = 2; d < ws.size(); ++d)
    if (ws[d] == kDynamic) throw ValueError(std::string(op) + ": needs a static kernel, got weight " + shape_text(w));
}

Var add_bias(const char* op, Var y, Var bias, Var w) {
  if (!bias) return y;
  const Shape& b = bias.shape();
  const std::int64_t co = w.shape()[0];
  if (b.size() != 1 || (b[0] != kDynamic && co != kDynamic && b[0] != co))
    throw ValueError(std::string(op) + ": bias of shape " + to_string(b) + " does not match the " + std::to_string(co) +
                     " output channels of weight " + shape_text(w));
  Shape per_channel(y.shape().size() - 1, 1);
  per_channel[0] = -1;
  return y + reshape(bias, per_channel);
}

// The 3-D ops unroll the depth window into one node per tap.
constexpr std::int64_t kMaxDepthTaps = 1024;

void check_taps(const char* op, std::int64_t taps) {
  if (taps > kMaxDepthTaps)
    throw ValueError(std::string(op) + ": a kernel depth of " + std::to_string(taps) + " is above the " +
                     std::to_string(kMaxDepthTaps) + " supported (one node per depth tap)");
}

// Output length along one axis of a window of `extent` stepping by stride over n padded by padding on both sides.
std::int64_t windows(const char* op, std::int64_t n, std::int64_t extent, std::int64_t stride, std::int64_t padding,
                     Var x) {
  if (extent > n + 2 * padding)
    throw ValueError(std::string(op) + ": the window (extent " + std::to_string(extent) + ") is larger than the padded depth " +
                     std::to_string(n + 2 * padding) + " of input " + shape_text(x));
  return (n + 2 * padding - extent) / stride + 1;
}

// 3-D ops need channels, depth, height and width static: they fold them into other axes.
void check_static_3d(const char* op, Var x) {
  const Shape& s = x.shape();
  if (s.size() != 5) throw ValueError(std::string(op) + ": expects input (N, C, D, H, W), got shape " + shape_text(x));
  for (std::size_t d = 1; d < 5; ++d)
    if (s[d] == kDynamic)
      throw ValueError(std::string(op) + ": needs the input's channels, depth, height and width static (only the batch "
                       "may be None), got shape " + shape_text(x));
}

Pool2dParams plane(const Pool3dParams& p) {
  const Triple stride = p.stride.value_or(p.kernel);
  return {{p.kernel[1], p.kernel[2]}, Pair{stride[1], stride[2]}, {p.padding[1], p.padding[2]}, p.count_include_pad};
}

Pool2dParams row(const Pool1dParams& p) {
  return {{1, p.kernel}, Pair{1, p.stride.value_or(p.kernel)}, {0, p.padding}, p.count_include_pad, {1, p.dilation}, p.ceil_mode};
}

PoolWindow window_of(const Pool3dParams& p) {
  const Triple stride = p.stride.value_or(p.kernel);
  const Shape pads(p.padding.begin(), p.padding.end());
  return {Shape(p.kernel.begin(), p.kernel.end()), Shape(stride.begin(), stride.end()), Shape(p.dilation.begin(), p.dilation.end()),
          pads, pads, p.ceil_mode};
}

// Dilation, or a ceil_mode that adds a window, in 3-D: the windows' fold over all three dims.
bool windows_3d(Var x, const Pool3dParams& p) {
  return p.dilation != Triple{1, 1, 1} || (p.ceil_mode && ceil_mode_extra(x, window_of(p)) != Shape(3, 0));
}

void check_pool(const char* op, Var x, std::size_t spatial, const std::int64_t* kernel, const std::int64_t* stride,
                const std::int64_t* padding) {
  if (x.shape().size() != spatial + 2)
    throw ValueError(std::string(op) + ": expects input (N, C, " + (spatial == 1 ? "L" : "D, H, W") + "), got shape " +
                     shape_text(x));
  for (std::size_t d = 0; d < spatial; ++d)
    if (kernel[d] < 1 || stride[d] < 1 || padding[d] < 0 || kernel[d] > kMaxGeometry || stride[d] > kMaxGeometry ||
        2 * padding[d] > kernel[d])
      throw ValueError(std::string(op) + ": kernel and stride must be positive and padding between 0 and half the kernel, "
                       "got kernel " + std::to_string(kernel[d]) + ", stride " + std::to_string(stride[d]) + ", padding " +
                       std::to_string(padding[d]));
}

// x (N, C, D, H, W) pooled over each (H, W) plane, by the 2-D op on (N, C * D, H, W).
Var pool_planes(Var x, const Pool3dParams& p, bool take_max) {
  const Shape& s = x.shape();
  const Var planes = reshape(x, {-1, s[1] * s[2], s[3], s[4]});
  const Var y = take_max ? max_pool2d(planes, plane(p)) : avg_pool2d(planes, plane(p));
  return reshape(y, {-1, s[1], s[2], y.shape()[2], y.shape()[3]});
}

}  // namespace

Var conv1d(Var x, Var w, const Conv1dParams& p) {
  check_conv("conv1d", x, w, 1, p.groups);
  check_geometry("conv1d", 1, &p.stride, &p.padding, &p.dilation);
  const Conv2dParams p2{{1, p.stride}, {0, p.padding}, {1, p.dilation}, p.groups};
  return squeeze(conv2d(unsqueeze(x, {2}), unsqueeze(w, {2}), p2), {2});
}

Var conv1d(Var x, Var w, Var bias, const Conv1dParams& p) { return add_bias("conv1d", conv1d(x, w, p), bias, w); }

// One conv2d per depth tap k, over the depth slices that tap reads (folded into the batch), summed.
Var conv3d(Var x, Var w, const Conv3dParams& p) {
  check_conv("conv3d", x, w, 3, p.groups);
  check_geometry("conv3d", 3, p.stride.data(), p.padding.data(), p.dilation.data());
  check_static_3d("conv3d", x);
  const std::int64_t taps = w.shape()[2], depth = x.shape()[2], channels = x.shape()[1];
  check_taps("conv3d", taps);
  const std::int64_t out_depth =
      windows("conv3d", depth, p.dilation[0] * (taps - 1) + 1, p.stride[0], p.padding[0], x);
  const Var padded = pad_axis(x, 2, p.padding[0], p.padding[0], 0.0);
  const Conv2dParams p2{{p.stride[1], p.stride[2]}, {p.padding[1], p.padding[2]}, {p.dilation[1], p.dilation[2]}, p.groups};
  Var total;
  for (std::int64_t k = 0; k < taps; ++k) {
    const std::int64_t first = k * p.dilation[0];
    const Var slices = slice_axis(padded, 2, first, first + p.stride[0] * (out_depth - 1) + 1, p.stride[0]);
    const Var folded = reshape(transpose(slices, {0, 2, 1, 3, 4}), {-1, channels, x.shape()[3], x.shape()[4]});
    const Var tap = conv2d(folded, squeeze(slice_axis(w, 2, k, k + 1, 1), {2}), p2);
    total = k == 0 ? tap : total + tap;
  }
  const Shape& t = total.shape();  // (N * out_depth, C_out, H_out, W_out)
  return transpose(reshape(total, {-1, out_depth, t[1], t[2], t[3]}), {0, 2, 1, 3, 4});
}

Var conv3d(Var x, Var w, Var bias, const Conv3dParams& p) { return add_bias("conv3d", conv3d(x, w, p), bias, w); }

Var max_pool1d(Var x, const Pool1dParams& p) {
  const std::int64_t stride = p.stride.value_or(p.kernel);
  check_pool("max_pool1d", x, 1, &p.kernel, &stride, &p.padding);
  return squeeze(max_pool2d(unsqueeze(x, {2}), row(p)), {2});
}

Var avg_pool1d(Var x, const Pool1dParams& p) {
  const std::int64_t stride = p.stride.value_or(p.kernel);
  check_pool("avg_pool1d", x, 1, &p.kernel, &stride, &p.padding);
  return squeeze(avg_pool2d(unsqueeze(x, {2}), row(p)), {2});
}

// Separable: the maximum over each (H, W) window of every depth slice, then over the depth window.
Var max_pool3d(Var x, const Pool3dParams& p) {
  const Triple stride = p.stride.value_or(p.kernel);
  check_pool("max_pool3d", x, 3, p.kernel.data(), stride.data(), p.padding.data());
  check_static_3d("max_pool3d", x);
  if (windows_3d(x, p)) return max_pool_windows(x, window_of(p));
  check_taps("max_pool3d", p.kernel[0]);
  const std::int64_t out_depth = windows("max_pool3d", x.shape()[2], p.kernel[0], stride[0], p.padding[0], x);
  const Var planes = pad_axis(pool_planes(x, p, true), 2, p.padding[0], p.padding[0], -INFINITY);
  Var y;
  for (std::int64_t k = 0; k < p.kernel[0]; ++k) {
    const Var slices = slice_axis(planes, 2, k, k + stride[0] * (out_depth - 1) + 1, stride[0]);
    y = k == 0 ? slices : maximum(y, slices);
  }
  return y;
}

// Separable too: a window's mean is the depth window's mean of the (H, W) windows' means, and without
// count_include_pad its divisor (the window's cells inside the input) is the product of the per-axis counts.
Var avg_pool3d(Var x, const Pool3dParams& p) {
  const Triple stride = p.stride.value_or(p.kernel);
  check_pool("avg_pool3d", x, 3, p.kernel.data(), stride.data(), p.padding.data());
  check_static_3d("avg_pool3d", x);
  if (windows_3d(x, p)) return avg_pool_windows(x, window_of(p), p.count_include_pad);
  check_taps("avg_pool3d", p.kernel[0]);
  const std::int64_t depth = x.shape()[2], pd = p.padding[0];
  const std::int64_t out_depth = windows("avg_pool3d", depth, p.kernel[0], stride[0], pd, x);
  const Var planes = pad_axis(pool_planes(x, p, false), 2, pd, pd, 0.0);
  Var total;
  for (std::int64_t k = 0; k < p.kernel[0]; ++k) {
    const Var slices = slice_axis(planes, 2, k, k + stride[0] * (out_depth - 1) + 1, stride[0]);
    total = k == 0 ? slices : total + slices;
  }
  if (p.count_include_pad || pd == 0) return total / static_cast<double>(p.kernel[0]);
  if (out_depth > (std::int64_t{1} << 24))
    throw ValueError("avg_pool3d: count_include_pad=False with depth padding supports output depths up to 2^24, got " +
                     std::to_string(out_depth));
  Tensor inverse_count = Tensor::empty(DType::float64, {1, 1, out_depth, 1, 1});
  auto* v = static_cast<double*>(inverse_count.raw_data());
  for (std::int64_t o = 0; o < out_depth; ++o) {
    const std::int64_t lo = std::max<std::int64_t>(o * stride[0] - pd, 0);
    const std::int64_t hi = std::min<std::int64_t>(o * stride[0] - pd + p.kernel[0], depth);
    v[o] = 1.0 / static_cast<double>(hi - lo);
  }
  return total * x.graph().constant(inverse_count.astype(x.dtype()));
}

}  // namespace xgrad
