// 2-D max and average pooling (NCHW), with their gradients as ops.
//
// Every op here is linear in its data argument once the window layout is
// fixed, so the gradients close over a small set: max pooling's gradient
// scatters dy to each window's first maximum (max_pool2d_grad), whose adjoint
// gathers from those positions (max_pool2d_gather) and back; average
// pooling's gradient spreads dy over each window (avg_pool2d_grad), whose
// adjoint is average pooling again. Where the window maximum sits depends on
// x only piecewise-constantly, so no gradient flows into x through it.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/onnx_lowering.h"
#include "ops/conv.h"
#include "ops/elementwise.h"
#include "ops/pool_geometry.h"
#include "ops/spatial.h"
#include "ops/ops.h"

namespace xgrad {

namespace {

using namespace spatial;  // the NCHW helpers shared with the other spatial ops

using G = std::vector<Var>;

Pool2dParams params_of(const Attrs& attrs) {
  return {pair_attr(attrs, "kernel"), pair_attr(attrs, "stride"), pair_attr(attrs, "padding"),
          attrs.get_int("count_include_pad") != 0};
}

Attrs attrs_of(const Pool2dParams& p) {
  // The default stride is resolved here, so attributes (and ONNX) always carry the real one.
  const Pair stride = p.stride.value_or(p.kernel);
  return {{"kernel", std::vector<std::int64_t>{p.kernel[0], p.kernel[1]}},
          {"stride", std::vector<std::int64_t>{stride[0], stride[1]}},
          {"padding", std::vector<std::int64_t>{p.padding[0], p.padding[1]}},
          {"count_include_pad", std::int64_t{p.count_include_pad}}};
}

// ---- shapes ----------------------------------------------------------------

Shape pool_output_shape(const Shape& x, const Pool2dParams& p) {
  const Pair stride = p.stride.value_or(p.kernel);
  if (x.size() != 4) throw ValueError("expects an input (N, C, H, W), got shape " + to_string(x));
  for (int d = 0; d < 2; ++d) {
    if (p.kernel[d] < 1 || stride[d] < 1 || p.padding[d] < 0)
      throw ValueError("kernel and stride must be positive and padding non-negative, got kernel " + pair_str(p.kernel) +
                       ", stride " + pair_str(stride) + ", padding " + pair_str(p.padding));
    // Wider padding would allow windows made only of padding.
    if (2 * p.padding[d] > p.kernel[d])
      throw ValueError("padding " + pair_str(p.padding) + " must be at most half of kernel " + pair_str(p.kernel));
  }
  Shape out{x[0], x[1], kDynamic, kDynamic};
  for (int d = 0; d < 2; ++d) {
    const std::int64_t in = x[2 + d];
    if (!known(in)) continue;
    const std::int64_t padded = in + 2 * p.padding[d];
    if (p.kernel[d] > padded)
      throw ValueError("kernel " + pair_str(p.kernel) + " is larger than the padded input " + std::to_string(padded) +
                       " of input " + to_string(x) + " along dim " + std::to_string(2 + d));
    out[2 + d] = (padded - p.kernel[d]) / stride[d] + 1;
  }
  return out;
}

TensorType infer_pool(const std::vector<TensorType>& in, const Attrs& attrs) {  // (x)
  require_floating_same(in);
  return {in[0].dtype, pool_output_shape(in[0].shape, params_of(attrs))};
}

// (x, dy) for max_pool2d_grad, (dy, like) for avg_pool2d_grad: result shaped like x.
template <int kX, int kDy>
TensorType infer_pool_grad(const std::vector<TensorType>& in, const Attrs& attrs) {
  require_floating_same(in);
  require_like(in[kDy].shape, pool_output_shape(in[kX].shape, params_of(attrs)), "dy");
  return {in[0].dtype, in[kX].shape};
}

TensorType infer_gather(const std::vector<TensorType>& in, const Attrs& attrs) {  // (x, g)
  require_floating_same(in);
  require_like(in[1].shape, in[0].shape, "g");
  return {in[0].dtype, pool_output_shape(in[0].shape, params_of(attrs))};
}

// ---- kernels ----------------------------------------------------------------

// Calls f(plane, out_index, h0, h1, w0, w1) with each window clipped to the input.
template <class F>
void for_each_window(const PoolGeometry& g, F&& f) {
  for (std::int64_t plane = 0; plane < g.planes; ++plane)
    for (std::int64_t oh = 0; oh < g.ho; ++oh)
      for (std::int64_t ow = 0; ow < g.wo; ++ow) {
        std::int64_t h0, h1, w0, w1;
        g.window(oh, ow, h0, h1, w0, w1);
        f(plane, oh * g.wo + ow, h0, h1, w0, w1);
      }
}

// f(in_offset, out_offset) with the position of each window's maximum.
template <class T, class F>
void for_each_argmax(const T* x, const PoolGeometry& g, F&& f) {
  for_each_window(g, [&](std::int64_t plane, std::int64_t o, std::int64_t h0, std::int64_t h1, std::int64_t w0, std::int64_t w1) {
    f(plane * g.in_size() + g.argmax(x + plane * g.in_size(), h0, h1, w0, w1), plane * g.out_size() + o);
  });
}

void max_pool2d_kernel(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const Tensor x = in[0]->contiguous();
  const PoolGeometry g = pool_geometry(x.shape(), out.shape(), attrs);
  kernels::dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    T* yp = out.data<T>();
    for_each_argmax(xp, g, [&](std::int64_t i, std::int64_t o) { yp[o] = xp[i]; });
  });
}

void max_pool2d_grad_kernel(const Tensor* const* in, Tensor& out, const Attrs& attrs) {  // (x, dy)
  const Tensor x = in[0]->contiguous(), dy = in[1]->contiguous();
  const PoolGeometry g = pool_geometry(x.shape(), dy.shape(), attrs);
  kernels::dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* dyp = dy.data<T>();
    T* dxp = out.data<T>();
    std::fill(dxp, dxp + out.numel(), T(0));
    for_each_argmax(x.data<T>(), g, [&](std::int64_t i, std::int64_t o) { dxp[i] += dyp[o]; });
  });
}

void max_pool2d_gather_kernel(const Tensor* const* in, Tensor& out, const Attrs& attrs) {  // (x, g)
  const Tensor x = in[0]->contiguous(), src = in[1]->contiguous();
  const PoolGeometry g = pool_geometry(x.shape(), out.shape(), attrs);
  kernels::dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* sp = src.data<T>();
    T* yp = out.data<T>();
    for_each_argmax(x.data<T>(), g, [&](std::int64_t i, std::int64_t o) { yp[o] = sp[i]; });
  });
}

void avg_pool2d_kernel(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const Tensor x = in[0]->contiguous();
  const PoolGeometry g = pool_geometry(x.shape(), out.shape(), attrs);
  kernels::dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    T* yp = out.data<T>();
    for_each_window(g, [&](std::int64_t plane, std::int64_t o, std::int64_t h0, std::int64_t h1, std::int64_t w0, std::int64_t w1) {
      const T* p = xp + plane * g.in_size();
      T s = 0;
      for (std::int64_t ih = h0; ih < h1; ++ih)
        for (std::int64_t iw = w0; iw < w1; ++iw) s += p[ih * g.w + iw];
      yp[plane * g.out_size() + o] = s / g.divisor<T>(h0, h1, w0, w1);
    });
  });
}

void avg_pool2d_grad_kernel(const Tensor* const* in, Tensor& out, const Attrs& attrs) {  // (dy, like)
  const Tensor dy = in[0]->contiguous();
  const PoolGeometry g = pool_geometry(out.shape(), dy.shape(), attrs);
  kernels::dispatch_floating(dy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* dyp = dy.data<T>();
    T* dxp = out.data<T>();
    std::fill(dxp, dxp + out.numel(), T(0));
    for_each_window(g, [&](std::int64_t plane, std::int64_t o, std::int64_t h0, std::int64_t h1, std::int64_t w0, std::int64_t w1) {
      T* p = dxp + plane * g.in_size();
      const T share = dyp[plane * g.out_size() + o] / g.divisor<T>(h0, h1, w0, w1);
      for (std::int64_t ih = h0; ih < h1; ++ih)
        for (std::int64_t iw = w0; iw < w1; ++iw) p[ih * g.w + iw] += share;
    });
  });
}

// ---- ONNX -------------------------------------------------------------------

using Ints = std::vector<std::int64_t>;

std::vector<OnnxAttr> onnx_pool_attrs(const Pool2dParams& p) {
  const Pair stride = p.stride.value_or(p.kernel);
  return {{"kernel_shape", Ints{p.kernel[0], p.kernel[1]}},
          {"strides", Ints{stride[0], stride[1]}},
          {"pads", Ints{p.padding[0], p.padding[1], p.padding[0], p.padding[1]}}};
}

// MaxPool pads with -inf and keeps the first maximum in row-major order, as
// the kernel does (a NaN, though, never wins there).
std::string lower_max_pool2d(OnnxLowerCtx& c) { return c.op("MaxPool", {c.in(0)}, onnx_pool_attrs(params_of(c.attrs()))); }

// Where each window's maximum sits, as an index into x flattened.
std::string argmax_positions(OnnxLowerCtx& c) {
  return c.emit("MaxPool", {c.in(0)}, onnx_pool_attrs(params_of(c.attrs())), 2, "")[1];
}

std::string flattened(OnnxLowerCtx& c, const std::string& v) { return c.op("Reshape", {v, c.ints({-1})}); }

std::string lower_max_pool2d_gather(OnnxLowerCtx& c) {  // (x, g)
  return c.op("Gather", {flattened(c, c.in(1)), argmax_positions(c)});
}

std::string lower_max_pool2d_grad(OnnxLowerCtx& c) {  // (x, dy)
  const std::string zeros = c.op("Expand", {c.scalar(0), c.op("Shape", {flattened(c, c.in(0))})});
  const std::string dx = c.op("ScatterElements", {zeros, flattened(c, argmax_positions(c)), flattened(c, c.in(1))},
                              {{"axis", std::int64_t{0}}, {"reduction", std::string("add")}});
  Shape shape = c.out_type().shape;  // a constant target keeps the static dims visible to shape inference
  if (!std::all_of(shape.begin() + 1, shape.end(), known)) return c.op("Reshape", {dx, c.op("Shape", {c.in(0)})});
  shape[0] = known(shape[0]) ? shape[0] : -1;
  return c.op("Reshape", {dx, c.ints(shape)});
}

// ONNX Runtime's AveragePool and ConvTranspose are float32 only. Given
// static spatial sizes, average pooling in float64 instead sums each window
// with two MatMuls by constant 0/1 band matrices (rows, then columns) and
// divides by a constant map of window sizes; its adjoint, avg_pool2d_grad,
// runs the same backwards in both dtypes, count_include_pad=0 included.

bool spatial_known(const Shape& x) { return known(x[2]) && known(x[3]); }

// The window extent [lo, hi) along dim d of output o, clipped to the input.
std::pair<std::int64_t, std::int64_t> window_extent(const Pool2dParams& p, int d, std::int64_t o, std::int64_t in) {
  const std::int64_t start = o * p.stride.value_or(p.kernel)[d] - p.padding[d];
  return {std::max<std::int64_t>(start, 0), std::min(start + p.kernel[d], in)};
}

// (out, in) along dim d, or (in, out) transposed: 1 where the window of output o covers input i.
std::string band(OnnxLowerCtx& c, const Pool2dParams& p, int d, std::int64_t in, std::int64_t out, bool transposed) {
  Tensor t = Tensor::zeros(DType::float64, transposed ? Shape{in, out} : Shape{out, in});
  double* b = t.data<double>();
  for (std::int64_t o = 0; o < out; ++o) {
    const auto [lo, hi] = window_extent(p, d, o, in);
    for (std::int64_t i = lo; i < hi; ++i) b[transposed ? i * out + o : o * in + i] = 1.0;
  }
  return c.constant(t.astype(c.out_type().dtype));
}

// (H_out, W_out): the divisor of each window.
std::string window_sizes(OnnxLowerCtx& c, const Pool2dParams& p, const Shape& x, const Shape& y) {
  Tensor t = Tensor::full(DType::float64, {y[2], y[3]}, static_cast<double>(p.kernel[0] * p.kernel[1]));
  double* s = t.data<double>();
  if (!p.count_include_pad)
    for (std::int64_t oh = 0; oh < y[2]; ++oh)
      for (std::int64_t ow = 0; ow < y[3]; ++ow) {
        const auto [h0, h1] = window_extent(p, 0, oh, x[2]);
        const auto [w0, w1] = window_extent(p, 1, ow, x[3]);
        s[oh * y[3] + ow] = static_cast<double>((h1 - h0) * (w1 - w0));
      }
  return c.constant(t.astype(c.out_type().dtype));
}

std::string lower_avg_pool2d(OnnxLowerCtx& c) {
  const Pool2dParams p = params_of(c.attrs());
  const Shape& x = c.in_type(0).shape;
  const Shape& y = c.out_type().shape;
  if (c.out_type().dtype == DType::float32 || !spatial_known(x)) {
    std::vector<OnnxAttr> attrs = onnx_pool_attrs(p);
    attrs.push_back({"count_include_pad", std::int64_t{p.count_include_pad}});
    return c.op("AveragePool", {c.in(0)}, attrs);
  }
  const std::string rows = c.op("MatMul", {band(c, p, 0, x[2], y[2], false), c.in(0)});
  const std::string sums = c.op("MatMul", {rows, band(c, p, 1, x[3], y[3], true)});
  return c.op("Div", {sums, window_sizes(c, p, x, y)});
}

// Spatial sizes known only at run time: dy spread over each window by a
// ConvTranspose with a constant 1 / (kH kW) kernel, images and channels
// folded into its batch, made as long as any x allows and cut to like's size.
std::string avg_pool2d_grad_by_conv_transpose(OnnxLowerCtx& c, const Pool2dParams& p) {
  const Pair stride = p.stride.value_or(p.kernel);
  const std::string like_size = c.op("Shape", {c.in(1)}, {{"start", std::int64_t{2}}});
  std::string dy = c.in(0);
  if (!p.count_include_pad) {  // AveragePool of ones counting the padding: each window's size over kH kW
    const std::string ones =
        c.op("Expand", {c.scalar(1), c.op("Concat", {c.ints({1, 1}), like_size}, {{"axis", std::int64_t{0}}})});
    std::vector<OnnxAttr> attrs = onnx_pool_attrs(p);
    attrs.push_back({"count_include_pad", std::int64_t{1}});
    dy = c.op("Div", {dy, c.op("AveragePool", {ones}, attrs)});
  }
  const double share = 1.0 / static_cast<double>(p.kernel[0] * p.kernel[1]);
  const std::string kernel = c.constant(Tensor::full(c.out_type().dtype, {1, 1, p.kernel[0], p.kernel[1]}, share));
  const std::vector<OnnxAttr> attrs{{"strides", Ints{stride[0], stride[1]}},
                                    {"pads", Ints{p.padding[0], p.padding[1], p.padding[0], p.padding[1]}},
                                    {"output_padding", Ints{stride[0] - 1, stride[1] - 1}}};
  const std::string full = c.op("ConvTranspose", {c.op("Reshape", {dy, c.ints({-1, 1, 0, 0})}), kernel}, attrs);
  const std::string cut = c.op("Slice", {full, c.ints({0, 0}), like_size, c.ints({2, 3})});
  return c.op("Reshape", {cut, c.op("Shape", {c.in(1)})});
}

std::string lower_avg_pool2d_grad(OnnxLowerCtx& c) {  // (dy, like x)
  const Pool2dParams p = params_of(c.attrs());
  const Shape& x = c.out_type().shape;
  if (!spatial_known(x)) return avg_pool2d_grad_by_conv_transpose(c, p);
  const Shape y = pool_output_shape(x, p);
  const std::string shares = c.op("Div", {c.in(0), window_sizes(c, p, x, y)});
  const std::string rows = c.op("MatMul", {band(c, p, 0, x[2], y[2], true), shares});
  return c.op("MatMul", {rows, band(c, p, 1, x[3], y[3], false)});
}

// ---- ops --------------------------------------------------------------------

const OpDef& max_pool2d_op = register_op(OpDef("max_pool2d").infer(infer_pool).kernel(max_pool2d_kernel).onnx(lower_max_pool2d)
    .grad([](const GradCtx& c) { return G{max_pool2d_grad(c.x(), c.dy, params_of(c.attrs))}; }));

const OpDef& max_pool2d_grad_op = register_op(
    OpDef("max_pool2d_grad").arity(2).infer(infer_pool_grad<0, 1>).kernel(max_pool2d_grad_kernel)
        .onnx(lower_max_pool2d_grad)
        .grad([](const GradCtx& c) { return G{Var(), max_pool2d_gather(c.x(0), c.dy, params_of(c.attrs))}; }));

const OpDef& max_pool2d_gather_op = register_op(
    OpDef("max_pool2d_gather").arity(2).infer(infer_gather).kernel(max_pool2d_gather_kernel)
        .onnx(lower_max_pool2d_gather)
        .grad([](const GradCtx& c) { return G{Var(), max_pool2d_grad(c.x(0), c.dy, params_of(c.attrs))}; }));

const OpDef& avg_pool2d_op = register_op(OpDef("avg_pool2d").infer(infer_pool).kernel(avg_pool2d_kernel).onnx(lower_avg_pool2d)
    .grad([](const GradCtx& c) { return G{avg_pool2d_grad(c.dy, c.x(), params_of(c.attrs))}; }));

const OpDef& avg_pool2d_grad_op = register_op(
    OpDef("avg_pool2d_grad").arity(2).infer(infer_pool_grad<1, 0>).kernel(avg_pool2d_grad_kernel).onnx(lower_avg_pool2d_grad)
        .grad([](const GradCtx& c) { return G{avg_pool2d(c.dy, params_of(c.attrs)), Var()}; }));

}  // namespace

namespace {

PoolWindow window_of(const Pool2dParams& p) {
  const Pair stride = p.stride.value_or(p.kernel);
  return {{p.kernel[0], p.kernel[1]}, {stride[0], stride[1]}, {p.dilation[0], p.dilation[1]},
          {p.padding[0], p.padding[1]}, {p.padding[0], p.padding[1]}, p.ceil_mode};
}

// Dilation, and a ceil_mode that adds a window, go to the windows' fold, after the checks the kernels' own ops
// make. (A ceil_mode that adds none is the kernel's pooling, with its gradient to the first maximum.)
bool needs_windows(const char* op, const Var& x, const Pool2dParams& p) {
  if (p.dilation == Pair{1, 1} && !p.ceil_mode) return false;
  try {
    pool_output_shape(x.shape(), p);
    if (p.dilation[0] < 1 || p.dilation[1] < 1) throw ValueError("dilation must be positive, got " + pair_str(p.dilation));
  } catch (const ValueError& e) {
    throw ValueError(std::string(op) + ": " + e.what());
  }
  const bool spatial_static = x.shape()[2] != kDynamic && x.shape()[3] != kDynamic;  // (N, C, H, W): checked above
  return p.dilation != Pair{1, 1} || !spatial_static || ceil_mode_extra(x, window_of(p)) != Shape{0, 0};
}

}  // namespace

Var max_pool2d(Var x, const Pool2dParams& p) {
  if (needs_windows("max_pool2d", x, p)) return max_pool_windows(x, window_of(p));
  return x.graph().apply(max_pool2d_op, {x}, attrs_of(p));
}
Var avg_pool2d(Var x, const Pool2dParams& p) {
  if (needs_windows("avg_pool2d", x, p)) return avg_pool_windows(x, window_of(p), p.count_include_pad);
  return x.graph().apply(avg_pool2d_op, {x}, attrs_of(p));
}

Var max_pool2d_grad(Var x, Var dy, const Pool2dParams& p) {
  return x.graph().apply(max_pool2d_grad_op, {x, dy}, attrs_of(p));
}

Var max_pool2d_gather(Var x, Var g, const Pool2dParams& p) {
  return x.graph().apply(max_pool2d_gather_op, {x, g}, attrs_of(p));
}

Var avg_pool2d_grad(Var dy, Var like, const Pool2dParams& p) {
  return dy.graph().apply(avg_pool2d_grad_op, {dy, like}, attrs_of(p));
}

}  // namespace xgrad
