// Direct convolution for the common case (stride 1, no dilation, one group): each output row of a block of
// output channels is accumulated in registers, tap by tap, from a zero-padded copy of the image. im2col + GEMM
// writes and reads a column matrix kh*kw times the image's size for every image; for the small channel
// counts of early layers (3 input channels: K = 27) that traffic costs as much as the multiply-adds, and GEMM
// libraries run such thin K poorly. Here the input row stays in L1 and every load feeds OCB FMAs.
#include "ops/conv_direct.h"

#include <algorithm>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "core/thread_pool.h"
#include "ops/scratch.h"

namespace xgrad {

namespace {

template <class T> using Vec = xsimd::batch<T>;

// One image's input, zero-padded: rows wide enough that every vector load of an output chunk stays inside. It
// lives in this thread's scratch buffer (slot 0), zeroed once per kernel call.
template <class T>
struct PaddedImage {
  std::int64_t rows, width;  // per channel
  T* data;

  PaddedImage(const ConvGeometry& g, std::int64_t chunk)
      : rows(g.ho + g.kh - 1), width((g.wo + chunk - 1) / chunk * chunk + g.kw - 1),
        data(scratch<T, 0>(g.c * rows * width)) {
    std::fill(data, data + g.c * rows * width, T(0));
  }

  // The padding stays zero (the interior is rewritten for every image).
  void fill(const T* x, const ConvGeometry& g) {
    const auto [ph, pw] = g.p.padding;  // non-negative (direct_conv_applies), and the image fits inside
    for (std::int64_t c = 0; c < g.c; ++c)
      for (std::int64_t ih = 0; ih < g.h; ++ih) {
        const T* src = x + (c * g.h + ih) * g.w;
        std::copy(src, src + g.w, data + (c * rows + ih + ph) * width + pw);
      }
  }
  const T* row(std::int64_t c, std::int64_t r) const { return data + (c * rows + r) * width; }
};

// y[oc0 + o][oh][ow0 : ow0 + count] for o < OCB: two vectors of output pixels per channel, every tap of every
// input channel accumulated in registers (OCB x 2 accumulators).
template <class T, int OCB>
void output_block(const PaddedImage<T>& xp, const T* w, const ConvGeometry& g, std::int64_t oc0, std::int64_t oh,
                  std::int64_t ow0, std::int64_t count, T* y) {
  constexpr std::int64_t L = Vec<T>::size;
  const std::int64_t k = g.c * g.kh * g.kw;
  Vec<T> lo[OCB], hi[OCB];
  for (int o = 0; o < OCB; ++o) lo[o] = hi[o] = Vec<T>(T(0));
  const T* wb = w + oc0 * k;
  for (std::int64_t c = 0; c < g.c; ++c)
    for (std::int64_t i = 0; i < g.kh; ++i) {
      const T* row = xp.row(c, oh + i) + ow0;
      const T* wt = wb + (c * g.kh + i) * g.kw;
      for (std::int64_t j = 0; j < g.kw; ++j) {
        const Vec<T> a = Vec<T>::load_unaligned(row + j), b = Vec<T>::load_unaligned(row + j + L);
#pragma GCC unroll 8
        for (int o = 0; o < OCB; ++o) {
          const Vec<T> wv(wt[o * k + j]);
          lo[o] = xsimd::fma(wv, a, lo[o]);
          hi[o] = xsimd::fma(wv, b, hi[o]);
        }
      }
    }
  const std::int64_t plane = g.ho * g.wo;
  for (int o = 0; o < OCB; ++o) {
    T* dst = y + (oc0 + o) * plane + oh * g.wo + ow0;
    if (count == 2 * L) {
      lo[o].store_unaligned(dst);
      hi[o].store_unaligned(dst + L);
    } else {  // the row's last, partial chunk
      alignas(64) T tmp[2 * L];
      lo[o].store_aligned(tmp);
      hi[o].store_aligned(tmp + L);
      std::copy(tmp, tmp + count, dst);
    }
  }
}

// Output rows [oh0, oh1) of one image.
template <class T>
void direct_image(const T* x, const T* w, T* y, const ConvGeometry& g, PaddedImage<T>& xp, std::int64_t oh0,
                  std::int64_t oh1) {
  constexpr std::int64_t chunk = 2 * Vec<T>::size;
  xp.fill(x, g);
  for (std::int64_t oh = oh0; oh < oh1; ++oh)
    for (std::int64_t ow0 = 0; ow0 < g.wo; ow0 += chunk) {
      const std::int64_t count = std::min(chunk, g.wo - ow0);
      std::int64_t oc = 0;
      for (; oc + 8 <= g.co; oc += 8) output_block<T, 8>(xp, w, g, oc, oh, ow0, count, y);
      switch (g.co - oc) {  // the last 1 to 7 channels in one block: each input load feeds all of them
        case 7: output_block<T, 7>(xp, w, g, oc, oh, ow0, count, y); break;
        case 6: output_block<T, 6>(xp, w, g, oc, oh, ow0, count, y); break;
        case 5: output_block<T, 5>(xp, w, g, oc, oh, ow0, count, y); break;
        case 4: output_block<T, 4>(xp, w, g, oc, oh, ow0, count, y); break;
        case 3: output_block<T, 3>(xp, w, g, oc, oh, ow0, count, y); break;
        case 2: output_block<T, 2>(xp, w, g, oc, oh, ow0, count, y); break;
        case 1: output_block<T, 1>(xp, w, g, oc, oh, ow0, count, y); break;
        default: break;
      }
    }
}

}  // namespace

bool direct_conv_applies(const ConvGeometry& g) {
  // Wide enough rows to fill most of two vectors, and few enough input channels that im2col's column matrix is
  // the cost (deep layers have a K that GEMMs run well).
  // (A 1x1 kernel without padding needs no im2col anyway: GEMM reads the image in place.)
  return g.p.groups == 1 && g.p.stride == Pair{1, 1} && g.p.dilation == Pair{1, 1} && g.wo >= 8 &&
         g.c * g.kh * g.kw <= 256 && g.p.padding[0] >= 0 && g.p.padding[1] >= 0 && !g.direct();
}

template <class T>
void direct_conv(const T* x, const T* w, T* y, const ConvGeometry& g) {
  constexpr std::int64_t kSplitMultiplyAdds = 1 << 19;
  ThreadPool& pool = ThreadPool::instance();
  const std::int64_t parts = g.n * g.co * g.cols() * g.k() >= kSplitMultiplyAdds
                                 ? std::min<std::int64_t>(static_cast<std::int64_t>(pool.workers()) + 1, std::max(g.n, g.ho))
                                 : 1;
  const std::int64_t image_in = g.c * g.h * g.w, image_out = g.co * g.ho * g.wo;
  // A batch of at least one image per thread splits by images; a smaller one (batch-1 inference) by output rows,
  // each thread padding its own copy of the image.
  const bool by_images = g.n >= parts;
  auto part_of = [&](std::int64_t part) {
    PaddedImage<T> xp(g, 2 * Vec<T>::size);
    if (by_images) {
      for (std::int64_t n = g.n * part / parts; n < g.n * (part + 1) / parts; ++n)
        direct_image(x + n * image_in, w, y + n * image_out, g, xp, 0, g.ho);
    } else {
      for (std::int64_t n = 0; n < g.n; ++n)
        direct_image(x + n * image_in, w, y + n * image_out, g, xp, g.ho * part / parts, g.ho * (part + 1) / parts);
    }
  };
  if (parts <= 1) return part_of(0);
  pool.run(static_cast<std::size_t>(parts), [&](std::size_t p) { part_of(static_cast<std::int64_t>(p)); });
}

// dw[o, c, i, j] += sum over rows and columns of dy[o] * the padded image shifted by (i, j), for one image: a
// block of 4 output channels x 2 vectors of columns in registers per tap. dy's rows are copied zero-padded to
// whole chunks, and the image's lanes past the row's end are zeroed too (0 * inf would be NaN), so the last
// partial chunk adds nothing.
template <class T>
void weight_gradient_image(const PaddedImage<T>& xp, const T* dy, const ConvGeometry& g, T* dy_rows,
                           std::int64_t padded_wo, T* dw) {
  using V = Vec<T>;
  constexpr std::int64_t L = V::size;
  for (std::int64_t o = 0; o < g.co; ++o)
    for (std::int64_t oh = 0; oh < g.ho; ++oh)
      std::copy(dy + (o * g.ho + oh) * g.wo, dy + (o * g.ho + oh + 1) * g.wo,
                dy_rows + (o * g.ho + oh) * padded_wo);
  const std::int64_t k = g.c * g.kh * g.kw;
  alignas(64) T lane_index[2 * L];
  for (std::int64_t l = 0; l < 2 * L; ++l) lane_index[l] = T(l);
  const std::int64_t last = padded_wo - 2 * L;  // the last chunk's first column: lanes from wo - last on are past the end
  const auto inside0 = V::load_aligned(lane_index) < V(T(g.wo - last));
  const auto inside1 = V::load_aligned(lane_index + L) < V(T(g.wo - last));
  for (std::int64_t o0 = 0; o0 < g.co; o0 += 4) {
    const std::int64_t ob = std::min<std::int64_t>(4, g.co - o0);
    for (std::int64_t c = 0; c < g.c; ++c)
      for (std::int64_t i = 0; i < g.kh; ++i)
        for (std::int64_t j = 0; j < g.kw; ++j) {
          V acc[4][2];
          for (auto& a : acc) a[0] = a[1] = V(T(0));
          for (std::int64_t oh = 0; oh < g.ho; ++oh) {
            const T* xrow = xp.row(c, oh + i) + j;
            for (std::int64_t ow0 = 0; ow0 < padded_wo; ow0 += 2 * L) {
              V x0 = V::load_unaligned(xrow + ow0), x1 = V::load_unaligned(xrow + ow0 + L);
              if (ow0 == last) {
                x0 = xsimd::select(inside0, x0, V(T(0)));
                x1 = xsimd::select(inside1, x1, V(T(0)));
              }
              for (std::int64_t b = 0; b < ob; ++b) {
                const T* d = dy_rows + ((o0 + b) * g.ho + oh) * padded_wo + ow0;
                acc[b][0] = xsimd::fma(V::load_unaligned(d), x0, acc[b][0]);
                acc[b][1] = xsimd::fma(V::load_unaligned(d + L), x1, acc[b][1]);
              }
            }
          }
          for (std::int64_t b = 0; b < ob; ++b) dw[(o0 + b) * k + (c * g.kh + i) * g.kw + j] += xsimd::hadd(acc[b][0] + acc[b][1]);
        }
  }
}

template <class T>
void direct_conv_weight_gradient(const T* x, const T* dy, T* dw, const ConvGeometry& g) {
  constexpr std::int64_t chunk = 2 * Vec<T>::size;
  const std::int64_t k = g.c * g.kh * g.kw, padded_wo = (g.wo + chunk - 1) / chunk * chunk;
  std::fill(dw, dw + g.co * k, T(0));
  constexpr std::int64_t kSplitMultiplyAdds = 1 << 19;
  ThreadPool& pool = ThreadPool::instance();
  const std::int64_t parts = g.n * g.co * g.cols() * k >= kSplitMultiplyAdds
                                 ? std::min<std::int64_t>(static_cast<std::int64_t>(pool.workers()) + 1, g.n)
                                 : 1;
  std::vector<T> partials(static_cast<std::size_t>(std::max<std::int64_t>(parts - 1, 0) * g.co * k), T(0));
  auto part_of = [&](std::int64_t part) {
    T* mine = part == 0 ? dw : partials.data() + (part - 1) * g.co * k;
    PaddedImage<T> xp(g, chunk);
    const std::int64_t dy_size = g.co * g.ho * padded_wo;
    T* dy_rows = scratch<T, 1>(dy_size);  // the padding columns stay zero: rows are rewritten per image
    std::fill(dy_rows, dy_rows + dy_size, T(0));
    for (std::int64_t n = g.n * part / parts; n < g.n * (part + 1) / parts; ++n) {
      xp.fill(x + n * g.c * g.h * g.w, g);
      weight_gradient_image(xp, dy + n * g.co * g.ho * g.wo, g, dy_rows, padded_wo, mine);
    }
  };
  if (parts <= 1) {
    part_of(0);
  } else {
    pool.run(static_cast<std::size_t>(parts), [&](std::size_t p) { part_of(static_cast<std::int64_t>(p)); });
    for (std::int64_t part = 1; part < parts; ++part)
      for (std::int64_t e = 0; e < g.co * k; ++e) dw[e] += partials[static_cast<std::size_t>((part - 1) * g.co * k + e)];
  }
}

template void direct_conv_weight_gradient<float>(const float*, const float*, float*, const ConvGeometry&);
template void direct_conv_weight_gradient<double>(const double*, const double*, double*, const ConvGeometry&);
template void direct_conv<float>(const float*, const float*, float*, const ConvGeometry&);
template void direct_conv<double>(const double*, const double*, double*, const ConvGeometry&);

}  // namespace xgrad
