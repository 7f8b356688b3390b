// 2-D convolution (NCHW) as im2col + GEMM, and its two adjoints.
//
// conv2d(x, w), conv2d_grad_input(dy, w) and conv2d_grad_weight(x, dy) are
// the three partial derivatives of one trilinear form
//   T(x, w, dy) = <conv2d(x, w), dy> = <x, grad_input(dy, w)> = <w, grad_weight(x, dy)>,
// so the gradient of each is built from the other two (and itself): every
// order of derivative stays inside these three ops.
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "core/onnx_lowering.h"
#include "ops/conv.h"
#include "ops/conv_geometry.h"
#include "ops/elementwise.h"
#include "ops/spatial.h"
#include "core/thread_pool.h"
#include "ops/conv_direct.h"
#include "ops/gemm.h"
#include "ops/scratch.h"
#include "ops/ops.h"

namespace xgrad {

namespace {

using namespace spatial;  // the NCHW helpers shared with the other spatial ops

using G = std::vector<Var>;

Attrs attrs_of(const Conv2dParams& p) {
  return {{"stride", std::vector<std::int64_t>{p.stride[0], p.stride[1]}},
          {"padding", std::vector<std::int64_t>{p.padding[0], p.padding[1]}},
          {"dilation", std::vector<std::int64_t>{p.dilation[0], p.dilation[1]}},
          {"groups", p.groups}};
}

// ---- shapes ----------------------------------------------------------------

// The shape of conv2d(x, w), checking everything that is static. Shared by
// the three infers so that a gradient node reports the same errors as the
// convolution it came from.
Shape conv_output_shape(const Shape& x, const Shape& w, const Conv2dParams& p) {
  if (x.size() != 4 || w.size() != 4)
    throw ValueError("expects input (N, C_in, H, W) and weight (C_out, C_in / groups, kH, kW), got shapes " + to_string(x) +
                     " and " + to_string(w));
  for (int d = 0; d < 2; ++d)
    if (p.stride[d] < 1 || p.dilation[d] < 1 || p.padding[d] < 0)
      throw ValueError("stride and dilation must be positive and padding non-negative, got stride " + pair_str(p.stride) +
                       ", padding " + pair_str(p.padding) + ", dilation " + pair_str(p.dilation));
  const std::int64_t g = p.groups;
  if (g < 1) throw ValueError("groups must be positive, got " + std::to_string(g));
  if (known(x[1]) && x[1] % g != 0)
    throw ValueError("groups=" + std::to_string(g) + " does not divide the " + std::to_string(x[1]) +
                     " input channels of input " + to_string(x));
  if (known(w[0]) && w[0] % g != 0)
    throw ValueError("groups=" + std::to_string(g) + " does not divide the " + std::to_string(w[0]) +
                     " output channels of weight " + to_string(w));
  if (known(x[1]) && known(w[1]) && x[1] != w[1] * g)
    throw ValueError("input " + to_string(x) + " has " + std::to_string(x[1]) + " channels, but weight " + to_string(w) +
                     " with groups=" + std::to_string(g) + " expects " + std::to_string(w[1] * g));
  Shape out{x[0], w[0], kDynamic, kDynamic};
  for (int d = 0; d < 2; ++d) {
    const std::int64_t in = x[2 + d], k = w[2 + d];
    if (!known(in) || !known(k)) continue;
    const std::int64_t span = p.dilation[d] * (k - 1) + 1, padded = in + 2 * p.padding[d];
    if (span > padded)
      throw ValueError("kernel " + to_string(w) + " (dilated extent " + std::to_string(span) + ") is larger than the padded input " +
                       std::to_string(padded) + " of input " + to_string(x) + " along dim " + std::to_string(2 + d));
    out[2 + d] = (padded - span) / p.stride[d] + 1;
  }
  return out;
}

TensorType infer_conv2d(const std::vector<TensorType>& in, const Attrs& attrs) {
  require_floating_same(in);
  return {in[0].dtype, conv_output_shape(in[0].shape, in[1].shape, conv_params_of(attrs))};
}

TensorType infer_grad_input(const std::vector<TensorType>& in, const Attrs& attrs) {  // (dy, w, like x)
  require_floating_same(in);
  require_like(in[0].shape, conv_output_shape(in[2].shape, in[1].shape, conv_params_of(attrs)), "dy");
  return {in[0].dtype, in[2].shape};
}

TensorType infer_grad_weight(const std::vector<TensorType>& in, const Attrs& attrs) {  // (x, dy, like w)
  require_floating_same(in);
  require_like(in[1].shape, conv_output_shape(in[0].shape, in[2].shape, conv_params_of(attrs)), "dy");
  return {in[0].dtype, in[2].shape};
}

// ---- kernels ----------------------------------------------------------------

template <class T>
void gemm(std::int64_t m, std::int64_t n, std::int64_t k, blas::MatrixArg a, blas::MatrixArg b, T* c) {
  if constexpr (std::is_same_v<T, float>) blas::gemm_f32(m, n, k, a, b, c);
  else blas::gemm_f64(m, n, k, a, b, c);
}

// Output columns [lo, hi) whose tap at offset `off` (kernel offset minus
// padding) lands inside an input extent of `in`; the rest read padding.
void valid_range(std::int64_t off, std::int64_t in, std::int64_t stride, std::int64_t out, std::int64_t& lo, std::int64_t& hi) {
  lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
  hi = in - off <= 0 ? 0 : (in - off + stride - 1) / stride;
  lo = std::min(lo, out);
  hi = std::clamp(hi, lo, out);
}

// col (k x cols) row (c, i, j), column (oh, ow) = x[c][oh*sh - ph + i*dh][ow*sw - pw + j*dw], 0 in the padding.
// Rows are written front to back, so the stores are contiguous.
template <class T>
void im2col(const T* x, const ConvGeometry& g, T* col) {
  const auto [sh, sw] = g.p.stride;
  const auto [dh, dw] = g.p.dilation;
  const auto [ph, pw] = g.p.padding;
  for (std::int64_t c = 0; c < g.cg(); ++c)
    for (std::int64_t i = 0; i < g.kh; ++i)
      for (std::int64_t j = 0; j < g.kw; ++j) {
        const T* plane = x + c * g.h * g.w;
        const std::int64_t off_w = j * dw - pw;
        std::int64_t lo, hi;
        valid_range(off_w, g.w, sw, g.wo, lo, hi);
        for (std::int64_t oh = 0; oh < g.ho; ++oh, col += g.wo) {
          const std::int64_t ih = oh * sh - ph + i * dh;
          if (ih < 0 || ih >= g.h) {
            std::fill(col, col + g.wo, T(0));
            continue;
          }
          const T* row = plane + ih * g.w;
          std::fill(col, col + lo, T(0));
          if (sw == 1) std::copy(row + lo + off_w, row + hi + off_w, col + lo);
          else for (std::int64_t ow = lo; ow < hi; ++ow) col[ow] = row[ow * sw + off_w];
          std::fill(col + hi, col + g.wo, T(0));
        }
      }
}

// The adjoint of im2col: adds each column entry back onto the input position it was read from.
template <class T>
void col2im(const T* col, const ConvGeometry& g, T* x) {
  const auto [sh, sw] = g.p.stride;
  const auto [dh, dw] = g.p.dilation;
  const auto [ph, pw] = g.p.padding;
  for (std::int64_t c = 0; c < g.cg(); ++c)
    for (std::int64_t i = 0; i < g.kh; ++i)
      for (std::int64_t j = 0; j < g.kw; ++j) {
        T* plane = x + c * g.h * g.w;
        const std::int64_t off_w = j * dw - pw;
        std::int64_t lo, hi;
        valid_range(off_w, g.w, sw, g.wo, lo, hi);
        for (std::int64_t oh = 0; oh < g.ho; ++oh, col += g.wo) {
          const std::int64_t ih = oh * sh - ph + i * dh;
          if (ih < 0 || ih >= g.h) continue;
          T* row = plane + ih * g.w;
          if (sw == 1) {  // a contiguous run: one vectorizable loop
            T* dst = row + lo + off_w;
            const T* src = col + lo;
            for (std::int64_t i = 0; i < hi - lo; ++i) dst[i] += src[i];
          } else {
            for (std::int64_t ow = lo; ow < hi; ++ow) row[ow * sw + off_w] += col[ow];
          }
        }
      }
}

// Images are independent, so a batch whose convolution is worth splitting (a few microseconds per thread and
// more) is cut into contiguous ranges of images, one per thread: fn(first, end, part) for part < parts().
struct ImageSplit {
  std::int64_t images, parts;
  explicit ImageSplit(const ConvGeometry& g) : images(g.n), parts(1) {
    constexpr std::int64_t kSplitMultiplyAdds = 1 << 19;
    if (g.n * g.co * g.cols() * g.k() >= kSplitMultiplyAdds)
      parts = std::min<std::int64_t>(g.n, static_cast<std::int64_t>(ThreadPool::instance().workers()) + 1);
  }
  template <class Fn>
  void run(Fn&& fn) const {
    if (parts <= 1) return fn(std::int64_t{0}, images, std::int64_t{0});
    ThreadPool::instance().run(static_cast<std::size_t>(parts), [&](std::size_t p) {
      const auto part = static_cast<std::int64_t>(p);
      fn(images * part / parts, images * (part + 1) / parts, part);
    });
  }
};

// Per image and group: y_g (cog x cols) = w_g (cog x k) @ col (k x cols).
template <class T>
void conv_forward(const T* x, const T* w, T* y, const ConvGeometry& g) {
  const std::int64_t k = g.k(), cols = g.cols(), cog = g.cog();
  if (direct_conv_applies(g)) return direct_conv(x, w, y, g);
  ImageSplit(g).run([&](std::int64_t first, std::int64_t end, std::int64_t) {
    T* col = g.direct() ? nullptr : scratch<T>(k * cols);  // this thread's
    for (std::int64_t n = first; n < end; ++n)
      for (std::int64_t grp = 0; grp < g.p.groups; ++grp) {
        const T* xg = x + (n * g.c + grp * g.cg()) * g.h * g.w;
        if (col) im2col(xg, g, col);
        gemm<T>(cog, cols, k, {w + grp * cog * k, false, k}, {col ? col : xg, false, cols}, y + (n * g.co + grp * cog) * cols);
      }
  });
}

// At stride 1 without dilation or groups, the input gradient is itself a convolution: dy, padded by
// kernel - 1 - padding, correlated with the kernel flipped in both spatial axes and with its channel axes
// swapped. Its geometry, when the direct kernel runs it.
bool transposed_geometry(const ConvGeometry& g, ConvGeometry& t) {
  if (g.p.groups != 1 || g.p.stride != Pair{1, 1} || g.p.dilation != Pair{1, 1}) return false;
  Conv2dParams p;
  p.padding = {g.kh - 1 - g.p.padding[0], g.kw - 1 - g.p.padding[1]};
  t = ConvGeometry{g.n, g.co, g.ho, g.wo, g.c, g.kh, g.kw, g.h, g.w, p};
  return direct_conv_applies(t);
}

// Per image and group: col (k x cols) = w_g^T @ dy_g, then col2im into dx (or the transposed convolution).
template <class T>
void conv_grad_input(const T* dy, const T* w, T* dx, const ConvGeometry& g) {
  if (ConvGeometry t; transposed_geometry(g, t)) {
    std::vector<T> flipped(static_cast<std::size_t>(g.c * g.co * g.kh * g.kw));  // (c, co, kh, kw), reversed taps
    for (std::int64_t o = 0; o < g.co; ++o)
      for (std::int64_t c = 0; c < g.c; ++c)
        for (std::int64_t i = 0; i < g.kh; ++i)
          for (std::int64_t j = 0; j < g.kw; ++j)
            flipped[static_cast<std::size_t>(((c * g.co + o) * g.kh + (g.kh - 1 - i)) * g.kw + (g.kw - 1 - j))] =
                w[((o * g.c + c) * g.kh + i) * g.kw + j];
    return direct_conv(dy, flipped.data(), dx, t);
  }
  const std::int64_t k = g.k(), cols = g.cols(), cog = g.cog();
  const std::int64_t image = g.c * g.h * g.w;
  ImageSplit(g).run([&](std::int64_t first, std::int64_t end, std::int64_t) {
    T* col = g.direct() ? nullptr : scratch<T>(k * cols);
    if (col) std::fill(dx + first * image, dx + end * image, T(0));
    for (std::int64_t n = first; n < end; ++n)
      for (std::int64_t grp = 0; grp < g.p.groups; ++grp) {
        T* dxg = dx + (n * g.c + grp * g.cg()) * g.h * g.w;
        gemm<T>(k, cols, cog, {w + grp * cog * k, true, k}, {dy + (n * g.co + grp * cog) * cols, false, cols}, col ? col : dxg);
        if (col) col2im(col, g, dxg);
      }
  });
}

// Per group: dw_g (cog x k) = sum over images of dy_g (cog x cols) @ col^T. BLAS here overwrites its result,
// so images after a range's first go through a small accumulator; each thread sums its images into its own
// copy of dw (the first thread's is dw itself), added up at the end.
template <class T>
void conv_grad_weight(const T* x, const T* dy, T* dw, const ConvGeometry& g) {
  const std::int64_t k = g.k(), cols = g.cols(), cog = g.cog();
  if (g.n > 0 && direct_conv_applies(g)) return direct_conv_weight_gradient(x, dy, dw, g);
  std::fill(dw, dw + g.co * k, T(0));
  if (g.n == 0) return;
  const ImageSplit split(g);
  std::vector<T> partials(static_cast<std::size_t>((split.parts - 1) * g.co * k), T(0));
  split.run([&](std::int64_t first, std::int64_t end, std::int64_t part) {
    T* mine = part == 0 ? dw : partials.data() + (part - 1) * g.co * k;
    const std::int64_t col_size = g.direct() ? 0 : k * cols;
    T* buffer = scratch<T>(col_size + cog * k);
    T* col = g.direct() ? nullptr : buffer;
    T* acc = buffer + col_size;
    for (std::int64_t grp = 0; grp < g.p.groups; ++grp) {
      T* dwg = mine + grp * cog * k;
      for (std::int64_t n = first; n < end; ++n) {
        const T* xg = x + (n * g.c + grp * g.cg()) * g.h * g.w;
        if (col) im2col(xg, g, col);
        T* dst = n == first ? dwg : acc;
        gemm<T>(cog, k, cols, {dy + (n * g.co + grp * cog) * cols, false, cols}, {col ? col : xg, true, cols}, dst);
        if (n > first)
          for (std::int64_t i = 0; i < cog * k; ++i) dwg[i] += acc[i];
      }
    }
  });
  for (std::int64_t part = 1; part < split.parts; ++part) {
    const T* p = partials.data() + (part - 1) * g.co * k;
    for (std::int64_t i = 0; i < g.co * k; ++i) dw[i] += p[i];
  }
}

// An empty channel or spatial extent leaves nothing for BLAS to multiply.
bool degenerate(const ConvGeometry& g) { return g.k() == 0 || g.cols() == 0 || g.cog() == 0; }

void conv2d_kernel(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const Tensor x = in[0]->contiguous(), w = in[1]->contiguous();
  const ConvGeometry g = conv_geometry(x.shape(), w.shape(), out.shape(), attrs);
  if (degenerate(g)) return out.fill_zero();
  kernels::dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    conv_forward<T>(x.data<T>(), w.data<T>(), out.data<T>(), g);
  });
}

void conv2d_grad_input_kernel(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const Tensor dy = in[0]->contiguous(), w = in[1]->contiguous();
  const ConvGeometry g = conv_geometry(out.shape(), w.shape(), dy.shape(), attrs);
  if (degenerate(g)) return out.fill_zero();
  kernels::dispatch_floating(dy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    conv_grad_input<T>(dy.data<T>(), w.data<T>(), out.data<T>(), g);
  });
}

void conv2d_grad_weight_kernel(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const Tensor x = in[0]->contiguous(), dy = in[1]->contiguous();
  const ConvGeometry g = conv_geometry(x.shape(), out.shape(), dy.shape(), attrs);
  if (degenerate(g)) return out.fill_zero();
  kernels::dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    conv_grad_weight<T>(x.data<T>(), dy.data<T>(), out.data<T>(), g);
  });
}

// ---- ONNX -------------------------------------------------------------------
// Conv and ConvTranspose, except in float64, which ONNX Runtime has no Conv
// or ConvTranspose kernel for: there, given static spatial sizes, kernel size
// and channels per group, each kernel tap is gathered by MatMuls with
// constant 0/1 matrices, one per spatial dim (a tap's reads are separable in
// height and width), and channels are contracted by one MatMul per group.

using Ints = std::vector<std::int64_t>;

bool all_known(std::initializer_list<std::int64_t> dims) { return std::all_of(dims.begin(), dims.end(), known); }

// Whether to lower through tap matrices rather than Conv / ConvTranspose.
bool use_tap_matrices(const OnnxLowerCtx& c, std::initializer_list<std::int64_t> dims) {
  return c.out_type().dtype == DType::float64 && all_known(dims);
}

std::vector<OnnxAttr> onnx_conv_attrs(const Conv2dParams& p) {
  return {{"strides", Ints{p.stride[0], p.stride[1]}},
          {"pads", Ints{p.padding[0], p.padding[1], p.padding[0], p.padding[1]}},
          {"dilations", Ints{p.dilation[0], p.dilation[1]}},
          {"group", p.groups}};
}

// (k, out, in), or (k, in, out) transposed: 1 where tap i of output o reads input h along one spatial dim.
Tensor tap_matrices(std::int64_t k, std::int64_t out, std::int64_t in, std::int64_t stride, std::int64_t pad,
                    std::int64_t dilation, bool transposed, DType dtype) {
  Tensor t = Tensor::zeros(DType::float64, transposed ? Shape{k, in, out} : Shape{k, out, in});
  double* p = t.data<double>();
  for (std::int64_t i = 0; i < k; ++i)
    for (std::int64_t o = 0; o < out; ++o)
      if (const std::int64_t h = o * stride - pad + i * dilation; h >= 0 && h < in)
        p[transposed ? (i * in + h) * out + o : (i * out + o) * in + h] = 1.0;
  return t.astype(dtype);
}

std::string tap_constant(OnnxLowerCtx& c, const Shape& x, const Shape& w, const Shape& y, const Conv2dParams& p, int d,
                         bool transposed) {
  return c.constant(tap_matrices(w[2 + d], y[2 + d], x[2 + d], p.stride[d], p.padding[d], p.dilation[d], transposed,
                                 c.out_type().dtype));
}

// x (N, C, H, W) -> columns (N, C, kH, kW, H_out, W_out).
std::string onnx_im2col(OnnxLowerCtx& c, const std::string& x, const Shape& xs, const Shape& ws, const Shape& ys,
                        const Conv2dParams& p) {
  const std::string rows =
      c.op("MatMul", {tap_constant(c, xs, ws, ys, p, 0, false), c.op("Unsqueeze", {x, c.ints({2})})});
  return c.op("MatMul", {c.op("Unsqueeze", {rows, c.ints({3})}), tap_constant(c, xs, ws, ys, p, 1, true)});
}

// Its adjoint: each column entry added back onto the input it was read from.
std::string onnx_col2im(OnnxLowerCtx& c, const std::string& cols, const Shape& xs, const Shape& ws, const Shape& ys,
                        const Conv2dParams& p) {
  const std::vector<OnnxAttr> drop{{"keepdims", std::int64_t{0}}};
  const std::string cols_w = c.op("MatMul", {cols, tap_constant(c, xs, ws, ys, p, 1, false)});
  const std::string rows = c.op("ReduceSum", {cols_w, c.ints({3})}, drop);
  return c.op("ReduceSum", {c.op("MatMul", {tap_constant(c, xs, ws, ys, p, 0, true), rows}), c.ints({2})}, drop);
}

std::string lower_conv2d(OnnxLowerCtx& c) {
  const Conv2dParams p = conv_params_of(c.attrs());
  const Shape& x = c.in_type(0).shape;
  const Shape& w = c.in_type(1).shape;
  const Shape& y = c.out_type().shape;
  if (!use_tap_matrices(c, {x[2], x[3], w[1], w[2], w[3]}))
    return c.op("Conv", {c.in(0), c.in(1)}, onnx_conv_attrs(p));
  const std::int64_t k = w[1] * w[2] * w[3], g = p.groups;
  const std::string cols = c.op("Reshape", {onnx_im2col(c, c.in(0), x, w, y, p), c.ints({0, g, k, y[2] * y[3]})});
  const std::string wg = c.op("Reshape", {c.in(1), c.ints({g, -1, k})});
  return c.op("Reshape", {c.op("MatMul", {wg, cols}), c.ints({0, -1, y[2], y[3]})});
}

std::string lower_conv2d_grad_input(OnnxLowerCtx& c) {  // (dy, w, like x)
  const Conv2dParams p = conv_params_of(c.attrs());
  const Shape& w = c.in_type(1).shape;
  const Shape& x = c.out_type().shape;
  const Shape y = conv_output_shape(x, w, p);
  if (!use_tap_matrices(c, {x[2], x[3], w[1], w[2], w[3]})) {
    // With stride > 1, the last rows and columns of x that no window reaches
    // are ConvTranspose's output padding.
    std::vector<OnnxAttr> attrs = onnx_conv_attrs(p);
    if (all_known({x[2], x[3], w[2], w[3]})) {
      Ints extra(2);
      for (int d = 0; d < 2; ++d)
        extra[d] = x[2 + d] - ((y[2 + d] - 1) * p.stride[d] + p.dilation[d] * (w[2 + d] - 1) + 1 - 2 * p.padding[d]);
      attrs.push_back({"output_padding", extra});
      return c.op("ConvTranspose", {c.in(0), c.in(1)}, attrs);
    }
    // Sizes known only at run time: the longest result any x allows, cut to like's size.
    attrs.push_back({"output_padding", Ints{p.stride[0] - 1, p.stride[1] - 1}});
    const std::string full = c.op("ConvTranspose", {c.in(0), c.in(1)}, attrs);
    return c.op("Slice", {full, c.ints({0, 0}), c.op("Shape", {c.in(2)}, {{"start", std::int64_t{2}}}), c.ints({2, 3})});
  }
  const std::int64_t k = w[1] * w[2] * w[3], g = p.groups;
  const std::string dyg = c.op("Reshape", {c.in(0), c.ints({0, g, -1, y[2] * y[3]})});
  const std::string wt = c.op("Transpose", {c.op("Reshape", {c.in(1), c.ints({g, -1, k})})}, {{"perm", Ints{0, 2, 1}}});
  const std::string cols = c.op("Reshape", {c.op("MatMul", {wt, dyg}), c.ints({0, g * w[1], w[2], w[3], y[2], y[3]})});
  return onnx_col2im(c, cols, x, w, y, p);
}

// The weight gradient is a convolution of x by dy with batch and channels
// swapped (stride and dilation trade places); groups ride along by putting
// each group's images side by side as channels.
std::string lower_conv2d_grad_weight(OnnxLowerCtx& c) {  // (x, dy, like w)
  const Conv2dParams p = conv_params_of(c.attrs());
  const Shape& x = c.in_type(0).shape;
  const Shape& w = c.out_type().shape;
  const Shape y = conv_output_shape(x, w, p);
  const std::int64_t g = p.groups;
  if (!use_tap_matrices(c, {x[2], x[3], w[1], w[2], w[3]})) {
    std::string xt;  // x as (C / groups, groups * N, H, W)
    if (g == 1) {
      xt = c.op("Transpose", {c.in(0)}, {{"perm", Ints{1, 0, 2, 3}}});
    } else {
      if (!known(w[1])) throw ValueError("grouped conv2d_grad_weight lowers to ONNX only with static channels per group");
      const std::string grouped =
          c.op("Transpose", {c.op("Reshape", {c.in(0), c.ints({0, g, w[1], -1})})}, {{"perm", Ints{2, 1, 0, 3}}});
      const std::string shape =
          all_known({x[2], x[3]})
              ? c.ints({w[1], -1, x[2], x[3]})
              : c.op("Concat", {c.ints({w[1], -1}), c.op("Shape", {c.in(0)}, {{"start", std::int64_t{2}}})},
                     {{"axis", std::int64_t{0}}});
      xt = c.op("Reshape", {grouped, shape});
    }
    Conv2dParams swapped = p;
    std::swap(swapped.stride, swapped.dilation);
    const std::string dyt = c.op("Transpose", {c.in(1)}, {{"perm", Ints{1, 0, 2, 3}}});
    const std::string conv = c.op("Conv", {xt, dyt}, onnx_conv_attrs(swapped));
    const std::string full = c.op("Transpose", {conv}, {{"perm", Ints{1, 0, 2, 3}}});
    // Past the kernel's extent the result holds taps that fall beyond the last window.
    const std::string kernel =
        all_known({w[2], w[3]}) ? c.ints({w[2], w[3]}) : c.op("Shape", {c.in(2)}, {{"start", std::int64_t{2}}});
    return c.op("Slice", {full, c.ints({0, 0}), kernel, c.ints({2, 3})});
  }
  const std::int64_t k = w[1] * w[2] * w[3];
  const std::string cols = c.op("Reshape", {onnx_im2col(c, c.in(0), x, w, y, p), c.ints({0, g, k, y[2] * y[3]})});
  const std::string dyg = c.op("Reshape", {c.in(1), c.ints({0, g, -1, y[2] * y[3]})});
  const std::string per_image = c.op("MatMul", {dyg, c.op("Transpose", {cols}, {{"perm", Ints{0, 1, 3, 2}}})});
  const std::string summed = c.op("ReduceSum", {per_image, c.ints({0})}, {{"keepdims", std::int64_t{0}}});
  return c.op("Reshape", {summed, c.ints({-1, w[1], w[2], w[3]})});
}

// ---- ops --------------------------------------------------------------------
// Gradients follow from T(x, w, dy): the cotangent g takes the place of the
// argument the op's output stands for.

// What print(program) says: the direct kernel where the static shapes select it, else im2col and the GEMM library.
std::string im2col_note(const std::vector<TensorType>&, const TensorType& out, const Attrs&) {
  return std::string("im2col + ") + blas::gemm_library(out.dtype);
}

// conv2d_grad_weight (x, dy, like w): the direct kernel where the forward convolution has it.
std::string grad_weight_note(const std::vector<TensorType>& in, const TensorType& out, const Attrs& attrs) {
  const Shape &x = in[0].shape, &dy = in[1].shape;
  const auto known = [](const Shape& s) { return std::all_of(s.begin() + 1, s.end(), [](std::int64_t d) { return d != kDynamic; }); };
  if (known(x) && known(dy) && known(out.shape) && direct_conv_applies(conv_geometry(x, out.shape, dy, attrs)))
    return "xgrad direct convolution (weight gradient)";
  return im2col_note(in, out, attrs);
}

// conv2d_grad_input (dy, w, like x): the direct kernel where its transposed convolution qualifies.
std::string grad_input_note(const std::vector<TensorType>& in, const TensorType& out, const Attrs& attrs) {
  const Shape &dy = in[0].shape, &w = in[1].shape;
  const auto known = [](const Shape& s) { return std::all_of(s.begin() + 1, s.end(), [](std::int64_t d) { return d != kDynamic; }); };
  ConvGeometry t;
  if (known(dy) && known(w) && known(out.shape) && transposed_geometry(conv_geometry(out.shape, w, dy, attrs), t))
    return "xgrad direct convolution (transposed)";
  return im2col_note(in, out, attrs);
}

std::string conv2d_note(const std::vector<TensorType>& in, const TensorType& out, const Attrs& attrs) {
  const Shape &x = in[0].shape, &w = in[1].shape;
  const bool known = std::all_of(w.begin(), w.end(), [](std::int64_t d) { return d != kDynamic; }) && x[1] != kDynamic &&
                     out.shape[3] != kDynamic;
  if (!known) return "xgrad direct convolution or " + im2col_note(in, out, attrs);
  return direct_conv_applies(conv_geometry(x, w, out.shape, attrs)) ? "xgrad direct convolution" : im2col_note(in, out, attrs);
}

const OpDef& conv2d_op = register_op(OpDef("conv2d").arity(2).infer(infer_conv2d).kernel(conv2d_kernel).kernel_note(conv2d_note).onnx(lower_conv2d)
    .grad([](const GradCtx& c) {
      const Conv2dParams p = conv_params_of(c.attrs);
      return G{conv2d_grad_input(c.dy, c.x(1), c.x(0), p), conv2d_grad_weight(c.x(0), c.dy, c.x(1), p)};
    }));

const OpDef& conv2d_grad_input_op = register_op(
    OpDef("conv2d_grad_input").arity(3).infer(infer_grad_input).kernel(conv2d_grad_input_kernel).kernel_note(grad_input_note).onnx(lower_conv2d_grad_input)
        .grad([](const GradCtx& c) {  // inputs (dy, w, like)
          const Conv2dParams p = conv_params_of(c.attrs);
          return G{conv2d(c.dy, c.x(1), p), conv2d_grad_weight(c.dy, c.x(0), c.x(1), p), Var()};
        }));

const OpDef& conv2d_grad_weight_op = register_op(
    OpDef("conv2d_grad_weight").arity(3).infer(infer_grad_weight).kernel(conv2d_grad_weight_kernel).kernel_note(grad_weight_note)
        .onnx(lower_conv2d_grad_weight)
        .grad([](const GradCtx& c) {  // inputs (x, dy, like)
          const Conv2dParams p = conv_params_of(c.attrs);
          return G{conv2d_grad_input(c.x(1), c.dy, c.x(0), p), conv2d(c.x(0), c.dy, p), Var()};
        }));

}  // namespace

Var conv2d(Var x, Var w, const Conv2dParams& p) { return x.graph().apply(conv2d_op, {x, w}, attrs_of(p)); }

Var conv2d(Var x, Var w, Var bias, const Conv2dParams& p) {
  Var y = conv2d(x, w, p);
  if (!bias) return y;
  const Shape& b = bias.shape();
  const std::int64_t co = y.shape()[1];
  if (b.size() != 1 || (known(b[0]) && known(co) && b[0] != co))
    throw ValueError("conv2d: bias of shape " + to_string(b) + " does not match the " + std::to_string(co) +
                     " output channels of weight " + to_string(w.shape()) + "; expected shape (" + std::to_string(co) + ",)");
  return y + reshape(bias, {1, -1, 1, 1});
}

Var conv2d_grad_input(Var dy, Var w, Var like, const Conv2dParams& p) {
  return dy.graph().apply(conv2d_grad_input_op, {dy, w, like}, attrs_of(p));
}

Var conv2d_grad_weight(Var x, Var dy, Var like, const Conv2dParams& p) {
  return x.graph().apply(conv2d_grad_weight_op, {x, dy, like}, attrs_of(p));
}

}  // namespace xgrad
