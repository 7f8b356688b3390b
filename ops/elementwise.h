// Kernel templates shared by the elementwise op files. Internal: includes
// xsimd, so only ops/*.cpp include it.
//
// The templates below run an elementwise functor (ops/elementwise_math.h:
// `template <class V> V operator()(V x) const`, valid for a scalar T and for
// xsimd::batch<T>) vectorized over contiguous memory and as scalars over
// strided or broadcast views.
#pragma once
#include <xsimd/xsimd.hpp>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "core/op.h"
#include "core/strided_loop.h"
#include "ops/dispatch.h"
#include "ops/elementwise_math.h"

// Internal to the library: not exported from libxgrad.so.
#pragma GCC visibility push(hidden)

namespace xgrad::ew {

// tanh(x) = x P(x^2) / Q(x^2) with P and Q of degree 4, fitted to tanh (minimax in relative error) on
// [-9, 9]; beyond that tanh rounds to +-1 in float32. At most 7 ulp from the correctly rounded tanh, one
// division and ten FMAs per lane: bound by memory on large arrays, where xsimd's tanh is bound by compute.
template <>
struct Tanh<xsimd::batch<float>> {
  using V = xsimd::batch<float>;
  static V of(V x) {
    const V xc = xsimd::min(xsimd::max(x, V(-9.0f)), V(9.0f));
    const V s = xc * xc;
    V p = xsimd::fma(V(1.33532492e-08f), s, V(2.06080931e-05f));
    p = xsimd::fma(p, s, V(0.00349552999f));
    p = xsimd::fma(p, s, V(0.133809775f));
    p = xsimd::fma(p, s, V(1.0f));
    V q = xsimd::fma(V(7.77598814e-07f), s, V(0.000328553811f));
    q = xsimd::fma(q, s, V(0.0258767623f));
    q = xsimd::fma(q, s, V(0.46714294f));
    q = xsimd::fma(q, s, V(1.0f));
    const V y = xsimd::min(xsimd::max(xc * p / q, V(-1.0f)), V(1.0f));  // never past +-1 after rounding
    return xsimd::select(xsimd::isnan(x), x, y);  // NaN stays NaN (the clamps would not keep it)
  }
};

}  // namespace xgrad::ew

namespace xgrad::kernels {

template <class T> using Batch = xsimd::batch<T>;

template <class F, class T>
void unary_contiguous(const F& f, const T* x, T* y, std::int64_t n) {
  constexpr std::int64_t lanes = Batch<T>::size;
  std::int64_t i = 0;
  for (; i + lanes <= n; i += lanes) f(Batch<T>::load_unaligned(x + i)).store_unaligned(y + i);
  for (; i < n; ++i) y[i] = f(x[i]);
}

template <class F, class T>
void binary_contiguous(const F& f, const T* a, bool a_scalar, const T* b, bool b_scalar, T* y, std::int64_t n) {
  using B = Batch<T>;
  constexpr std::int64_t lanes = B::size;
  std::int64_t i = 0;
  if (!a_scalar && !b_scalar) {
    for (; i + lanes <= n; i += lanes) f(B::load_unaligned(a + i), B::load_unaligned(b + i)).store_unaligned(y + i);
    for (; i < n; ++i) y[i] = f(a[i], b[i]);
  } else if (!a_scalar) {
    const B sb(*b);
    for (; i + lanes <= n; i += lanes) f(B::load_unaligned(a + i), sb).store_unaligned(y + i);
    for (; i < n; ++i) y[i] = f(a[i], *b);
  } else if (!b_scalar) {
    const B sa(*a);
    for (; i + lanes <= n; i += lanes) f(sa, B::load_unaligned(b + i)).store_unaligned(y + i);
    for (; i < n; ++i) y[i] = f(*a, b[i]);
  } else {
    const T v = f(*a, *b);
    for (; i < n; ++i) y[i] = v;
  }
}

// Span kernels (core/op.h): what tiled groups call per tile.
template <class F>
void unary_span(const void* const* in, const bool* scalar, void* out, std::int64_t n, DType dtype, const Attrs& attrs) {
  const F f = make_functor<F>(attrs);
  dispatch_floating(dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* x = static_cast<const T*>(in[0]);
    T* y = static_cast<T*>(out);
    if (!scalar[0]) return unary_contiguous(f, x, y, n);
    const T v = f(*x);
    for (std::int64_t i = 0; i < n; ++i) y[i] = v;
  });
}

template <class F>
void binary_span(const void* const* in, const bool* scalar, void* out, std::int64_t n, DType dtype, const Attrs& attrs) {
  const F f = make_functor<F>(attrs);
  dispatch_floating(dtype, [&](auto tag) {
    using T = decltype(tag);
    binary_contiguous(f, static_cast<const T*>(in[0]), scalar[0], static_cast<const T*>(in[1]), scalar[1],
                      static_cast<T*>(out), n);
  });
}

template <class F>
void unary_kernel(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const F f = make_functor<F>(attrs);
  const Tensor& x = *in[0];
  dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = static_cast<const T*>(x.raw_data());
    T* yp = static_cast<T*>(out.raw_data());
    if (x.is_contiguous()) {
      unary_contiguous(f, xp, yp, x.numel());
      return;
    }
    const Strides& ys = out.strides();
    strided_loop<2>(out.shape(), {&ys, &x.strides()}, [&](std::int64_t n, const auto& off, const auto& st) {
      for (std::int64_t i = 0; i < n; ++i) yp[off[0] + i * st[0]] = f(xp[off[1] + i * st[1]]);
    });
  });
}

template <class F>
void binary_kernel(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const F f = make_functor<F>(attrs);
  const Tensor& a = *in[0];
  const Tensor& b = *in[1];
  dispatch_floating(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* ap = static_cast<const T*>(a.raw_data());
    const T* bp = static_cast<const T*>(b.raw_data());
    T* yp = static_cast<T*>(out.raw_data());
    const std::int64_t n = out.numel();
    const bool a_full = a.shape() == out.shape() && a.is_contiguous();
    const bool b_full = b.shape() == out.shape() && b.is_contiguous();
    if ((a_full || a.numel() == 1) && (b_full || b.numel() == 1) && (a_full || b_full)) {
      binary_contiguous(f, ap, !a_full, bp, !b_full, yp, n);
    } else {
      const Strides as = broadcast_strides(a.shape(), a.strides(), out.shape());
      const Strides bs = broadcast_strides(b.shape(), b.strides(), out.shape());
      const Strides& ys = out.strides();
      strided_loop<3>(out.shape(), {&ys, &as, &bs}, [&](std::int64_t cnt, const auto& off, const auto& st) {
        for (std::int64_t i = 0; i < cnt; ++i)
          yp[off[0] + i * st[0]] = f(ap[off[1] + i * st[1]], bp[off[2] + i * st[2]]);
      });
    }
  });
}

// Calls body(std::bool_constant<...>...) with one constant per flag, so that a loop over operands that are either
// whole arrays (index i) or single elements (index 0) compiles to a plain vectorizable loop for each mix.
template <class Body>
void with_flags(Body&& body, bool f0, bool f1) {
  if (f0) {
    if (f1) body(std::true_type{}, std::true_type{});
    else body(std::true_type{}, std::false_type{});
  } else {
    if (f1) body(std::false_type{}, std::true_type{});
    else body(std::false_type{}, std::false_type{});
  }
}
template <class Body>
void with_flags(Body&& body, bool f0, bool f1, bool f2) {
  with_flags([&](auto a, auto b) {
    if (f2) body(a, b, std::true_type{});
    else body(a, b, std::false_type{});
  }, f0, f1);
}

// Whether t is read whole (t's shape is out's, contiguous) or as one element, so a flat loop can run.
inline bool flat_operand(const Tensor& t, const Tensor& out, bool& whole) {
  whole = t.shape() == out.shape() && t.is_contiguous();
  return whole || t.numel() == 1;
}

// out (bool) = F(a, b) elementwise, broadcasting; inputs of any one dtype.
template <class F>
void compare_kernel(const Tensor* const* in, Tensor& out, const Attrs&) {
  const Tensor& a = *in[0];
  const Tensor& b = *in[1];
  dispatch_numeric(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* ap = static_cast<const T*>(a.raw_data());
    const T* bp = static_cast<const T*>(b.raw_data());
    bool* yp = static_cast<bool*>(out.raw_data());
    bool a_whole = false, b_whole = false;
    if (out.is_contiguous() && flat_operand(a, out, a_whole) && flat_operand(b, out, b_whole)) {
      const std::int64_t n = out.numel();
      if (n == 0) return;  // the hoisted loads below read element 0
      with_flags([&](auto aw, auto bw) {
        // Everything the loop reads held in locals: a byte store may alias any object, the captured ones too,
        // and reloading them every element kept the loop scalar (1 ns per element).
        std::uint8_t* const yb = reinterpret_cast<std::uint8_t*>(yp);  // bytes vectorize; bool stores do not
        const T* const pa = ap;
        const T* const pb = bp;
        const std::int64_t count = n;
        const T a0 = pa[0], b0 = pb[0];
        for (std::int64_t i = 0; i < count; ++i) yb[i] = static_cast<std::uint8_t>(F{}(aw ? pa[i] : a0, bw ? pb[i] : b0));
      }, a_whole, b_whole);
      return;
    }
    const Strides as = broadcast_strides(a.shape(), a.strides(), out.shape());
    const Strides bs = broadcast_strides(b.shape(), b.strides(), out.shape());
    strided_loop<3>(out.shape(), {&out.strides(), &as, &bs}, [&](std::int64_t n, const auto& off, const auto& st) {
      for (std::int64_t i = 0; i < n; ++i) yp[off[0] + i * st[0]] = F{}(ap[off[1] + i * st[1]], bp[off[2] + i * st[2]]);
    });
  });
}

// c ? a : b as a bit mask, which compilers vectorize: a branch would mispredict on random masks (a ReLU's
// gradient) and `c ? a : b` on loaded values still compiles to one. Exact for every value, NaN included.
template <class T>
inline T select_bits(std::uint8_t c, T a, T b) {  // c: a bool's byte, 0 or 1
  using Bits = std::conditional_t<sizeof(T) == 8, std::uint64_t,
               std::conditional_t<sizeof(T) == 4, std::uint32_t, std::conditional_t<sizeof(T) == 2, std::uint16_t, std::uint8_t>>>;
  static_assert(sizeof(Bits) == sizeof(T));
  Bits ab, bb;
  std::memcpy(&ab, &a, sizeof(T));
  std::memcpy(&bb, &b, sizeof(T));
  const Bits mask = static_cast<Bits>(Bits(0) - static_cast<Bits>(c));
  const Bits r = static_cast<Bits>((ab & mask) | (bb & static_cast<Bits>(~mask)));
  T out;
  std::memcpy(&out, &r, sizeof(T));
  return out;
}

// out = cond ? a : b, broadcasting all three.
inline void where_kernel(const Tensor* const* in, Tensor& out, const Attrs&) {
  const Tensor& c = *in[0];
  const Tensor& a = *in[1];
  const Tensor& b = *in[2];
  dispatch_numeric(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const bool* cp = static_cast<const bool*>(c.raw_data());
    const T* ap = static_cast<const T*>(a.raw_data());
    const T* bp = static_cast<const T*>(b.raw_data());
    T* yp = static_cast<T*>(out.raw_data());
    bool c_whole = false, a_whole = false, b_whole = false;
    if (out.is_contiguous() && flat_operand(c, out, c_whole) && flat_operand(a, out, a_whole) &&
        flat_operand(b, out, b_whole)) {
      const std::int64_t n = out.numel();
      if (n == 0) return;  // the hoisted loads below read element 0
      with_flags([&](auto cw, auto aw, auto bw) {
        const auto* cb = reinterpret_cast<const std::uint8_t*>(cp);  // bytes vectorize; bools do not
        const std::uint8_t c0 = cb[0];
        const T a0 = ap[0], b0 = bp[0];  // held in registers: stores to yp could alias them
        for (std::int64_t i = 0; i < n; ++i) yp[i] = select_bits(cw ? cb[i] : c0, aw ? ap[i] : a0, bw ? bp[i] : b0);
      }, c_whole, a_whole, b_whole);
      return;
    }
    const Strides cs = broadcast_strides(c.shape(), c.strides(), out.shape());
    const Strides as = broadcast_strides(a.shape(), a.strides(), out.shape());
    const Strides bs = broadcast_strides(b.shape(), b.strides(), out.shape());
    strided_loop<4>(out.shape(), {&out.strides(), &cs, &as, &bs}, [&](std::int64_t n, const auto& off, const auto& st) {
      for (std::int64_t i = 0; i < n; ++i)
        yp[off[0] + i * st[0]] = cp[off[1] + i * st[1]] ? ap[off[2] + i * st[2]] : bp[off[3] + i * st[3]];
    });
  });
}

// Calls fn(x_lane, x_step, out_lane, out_step, n) for every lane of x along
// `axis` (every 1-D run of n elements), with out of x's shape. For softmax-like
// kernels that need a whole lane at a time.
template <class T, class Fn>
void for_each_lane(const Tensor& x, Tensor& out, std::int64_t axis, Fn&& fn) {
  const std::int64_t n = x.shape()[axis];
  Shape outer = x.shape();
  outer[axis] = 1;
  const T* xp = static_cast<const T*>(x.raw_data());
  T* yp = static_cast<T*>(out.raw_data());
  const std::int64_t xs = x.strides()[axis], ys = out.strides()[axis];
  strided_loop<2>(outer, {&x.strides(), &out.strides()}, [&](std::int64_t cnt, const auto& off, const auto& st) {
    for (std::int64_t i = 0; i < cnt; ++i) fn(xp + off[0] + i * st[0], xs, yp + off[1] + i * st[1], ys, n);
  });
}

}  // namespace xgrad::kernels

namespace xgrad::infer {

inline void require_floating(const TensorType& t) {
  if (!is_floating(t.dtype))
    throw TypeError(std::string("expects a float32 or float64 input, got ") + dtype_name(t.dtype));
}

inline TensorType same_floating(const std::vector<TensorType>& in, const Attrs&) {
  require_floating(in[0]);
  return in[0];
}

inline void require_same_dtype(const TensorType& a, const TensorType& b) {
  if (a.dtype != b.dtype)
    throw TypeError(std::string("dtypes differ: ") + dtype_name(a.dtype) + " and " + dtype_name(b.dtype) +
                    " (convert one with astype)");
}

inline TensorType broadcast_floating(const std::vector<TensorType>& in, const Attrs&) {
  require_floating(in[0]);
  require_same_dtype(in[0], in[1]);
  return {in[0].dtype, broadcast_shapes(in[0].shape, in[1].shape)};
}

inline TensorType broadcast_compare(const std::vector<TensorType>& in, const Attrs&) {
  require_same_dtype(in[0], in[1]);
  return {DType::bool_, broadcast_shapes(in[0].shape, in[1].shape)};
}

}  // namespace xgrad::infer
#pragma GCC visibility pop
