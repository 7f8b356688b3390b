// Pooling over any number of spatial dims as a fold of strided slices, one per kernel offset: the maximum
// (or sum) of what each offset reads. It covers what the pooling kernels do not: dilation, ceil_mode and
// asymmetric padding (ONNX's pads). Gradients, devices and export are those of slice, pad, maximum and add.
#include <algorithm>
#include <cmath>

#include "ops/conv.h"
#include "ops/ops.h"

namespace xgrad {

namespace {

// The maximum (or sum) over each window of an already padded x.
Var fold_windows(const char* op, const Var& padded, const PoolWindow& w, bool take_max) {
  const std::size_t s = w.kernel.size();
  const auto rank = static_cast<std::int64_t>(s + 2);
  Shape out(s);
  for (std::size_t d = 0; d < s; ++d) {
    const std::int64_t span = (w.kernel[d] - 1) * w.dilation[d] + 1;
    if (span > padded.shape()[2 + d])  // also bounds the loop below: one slice per kernel offset
      throw ValueError(std::string(op) + ": the window (" + std::to_string(span) + ") is larger than the padded input " +
                       to_string(padded.shape()));
    out[d] = (padded.shape()[2 + d] - span) / w.stride[d] + 1;
  }
  Var acc;
  Shape offset(s, 0);
  for (;;) {
    Axes starts(rank, 0), stops(rank, kSliceEnd), steps(rank, 1);
    for (std::size_t d = 0; d < s; ++d) {
      starts[2 + d] = offset[d] * w.dilation[d];
      stops[2 + d] = starts[2 + d] + (out[d] - 1) * w.stride[d] + 1;
      steps[2 + d] = w.stride[d];
    }
    const Var part = slice(padded, starts, stops, steps);
    acc = !acc ? part : (take_max ? maximum(acc, part) : acc + part);
    std::size_t d = 0;
    while (d < s && ++offset[d] == w.kernel[d]) offset[d++] = 0;
    if (d == s) break;
  }
  return acc;
}

void check_window(const char* op, const Var& x, const PoolWindow& w) {
  const std::size_t s = w.kernel.size();
  if (s == 0 || x.shape().size() != s + 2)
    throw ValueError(std::string(op) + ": a window over " + std::to_string(s) + " spatial dims needs an (N, C, spatial...) input, got shape " +
                     to_string(x.shape()));
  if (w.stride.size() != s || w.dilation.size() != s || w.begin.size() != s || w.end.size() != s)
    throw ValueError(std::string(op) + ": kernel, stride, dilation and padding need one value per spatial dim");
  if (!is_floating(x.dtype()))
    throw TypeError(std::string(op) + ": expects a float32 or float64 input, got " + dtype_name(x.dtype()));
  std::int64_t offsets = 1;
  for (std::size_t d = 0; d < s; ++d) {
    if (w.kernel[d] < 1 || w.stride[d] < 1 || w.dilation[d] < 1 || w.kernel[d] > kMaxWindowExtent || w.stride[d] > kMaxWindowExtent ||
        w.dilation[d] > kMaxWindowExtent || w.begin[d] < 0 || w.end[d] < 0 || w.begin[d] > kMaxWindowExtent || w.end[d] > kMaxWindowExtent)
      throw ValueError(std::string(op) + ": kernel, stride and dilation must be between 1 and 2^31, padding between 0 and 2^31, got kernel " +
                       to_string(w.kernel) + ", stride " + to_string(w.stride) + ", dilation " + to_string(w.dilation));
    offsets *= w.kernel[d];
    if (offsets > kMaxWindowOffsets)
      throw ValueError(std::string(op) + ": with dilation, ceil_mode or uneven padding, windows of up to " +
                       std::to_string(kMaxWindowOffsets) + " positions are supported, got kernel " + to_string(w.kernel));
    if (x.shape()[2 + d] == kDynamic)
      throw ValueError(std::string(op) + ": pooling with dilation, ceil_mode or uneven padding needs static spatial dims, got " +
                       to_string(x.shape()));
  }
}

}  // namespace

Var pad_spatial(Var x, const Shape& begin, const Shape& end, double value) {
  std::vector<std::int64_t> pads{0, 0, 0, 0};
  bool any = false;
  for (std::size_t d = 0; d < begin.size(); ++d) {
    pads.push_back(begin[d]), pads.push_back(end[d]);
    any = any || begin[d] || end[d];
  }
  return any ? pad(x, pads, value) : x;
}

// ceil_mode: the last partial window counts when it starts inside the input or its start padding (PyTorch's
// rule); it is made explicit as end padding that no window's count includes.
Shape ceil_mode_extra(const Var& x, const PoolWindow& w) {
  const std::size_t s = w.kernel.size();
  Shape extra(s, 0);
  if (!w.ceil_mode || x.shape().size() != s + 2) return extra;
  for (std::size_t d = 0; d < s; ++d) {
    const std::int64_t n = x.shape()[2 + d];
    if (n == kDynamic || d >= w.stride.size() || w.stride[d] < 1 || d >= w.begin.size() || d >= w.end.size()) return Shape(s, 0);
    const std::int64_t span = n + w.begin[d] + w.end[d] - ((w.kernel[d] - 1) * w.dilation[d] + 1);
    if (span < 0) continue;  // the window does not fit; fold_windows says so
    std::int64_t out = (span + w.stride[d] - 1) / w.stride[d] + 1;
    if ((out - 1) * w.stride[d] >= n + w.begin[d]) --out;
    extra[d] = std::max<std::int64_t>((out - 1) * w.stride[d] - span, 0);
  }
  return extra;
}

Var max_pool_windows(Var x, const PoolWindow& w) {
  check_window("max_pool", x, w);
  Shape end = w.end;
  const Shape extra = ceil_mode_extra(x, w);
  for (std::size_t d = 0; d < end.size(); ++d) end[d] += extra[d];
  return fold_windows("max_pool", pad_spatial(x, w.begin, end, -INFINITY), w, true);
}

// Sums over each window divided by how many positions count: the padding when count_include_pad, never the
// ceil_mode extra (PyTorch's divisor).
Var avg_pool_windows(Var x, const PoolWindow& w, bool count_include_pad) {
  check_window("avg_pool", x, w);
  const Shape extra = ceil_mode_extra(x, w), none(extra.size(), 0);
  const Var sums = fold_windows("avg_pool", pad_spatial(pad_spatial(x, w.begin, w.end, 0.0), none, extra, 0.0), w, false);
  // The count is separable: per spatial dim, how many of each window's positions count; their product.
  const std::size_t s = w.kernel.size();
  std::vector<std::vector<double>> per_dim(s);
  Shape plane{1, 1};
  for (std::size_t d = 0; d < s; ++d) {
    const std::int64_t n = x.shape()[2 + d], out = sums.shape()[2 + d];
    const std::int64_t lo = count_include_pad ? 0 : w.begin[d], hi = w.begin[d] + n + (count_include_pad ? w.end[d] : 0);
    for (std::int64_t o = 0; o < out; ++o) {
      std::int64_t count = 0;
      for (std::int64_t k = 0; k < w.kernel[d]; ++k) {
        const std::int64_t at = o * w.stride[d] + k * w.dilation[d];
        count += at >= lo && at < hi;
      }
      per_dim[d].push_back(static_cast<double>(count));
    }
    plane.push_back(out);
  }
  Tensor inverse = Tensor::empty(DType::float64, plane);
  auto* v = static_cast<double*>(inverse.raw_data());
  for (std::int64_t i = 0; i < inverse.numel(); ++i) {
    double count = 1;
    for (std::size_t d = s, rest = static_cast<std::size_t>(i); d-- > 0;) {
      const std::size_t extent = per_dim[d].size();
      count *= per_dim[d][rest % extent];
      rest /= extent;
    }
    v[i] = count > 0 ? 1.0 / count : 0.0;  // a window of padding alone (count_include_pad off) averages to 0
  }
  return sums * x.graph().constant(inverse.astype(x.dtype()));
}

}  // namespace xgrad
