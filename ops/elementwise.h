// Kernel templates shared by the elementwise op files. Internal: includes
// xsimd, so only ops/*.cpp include it.
//
// The templates below run an elementwise functor (ops/elementwise_math.h:
// `template <class V> V operator()(V x) const`, valid for a scalar T and for
// xsimd::batch<T>) vectorized over contiguous memory and as scalars over
// strided or broadcast views.
#pragma once
#include <xsimd/xsimd.hpp>

#include <type_traits>

#include "core/op.h"
#include "core/strided_loop.h"
#include "ops/dispatch.h"
#include "ops/elementwise_math.h"

// Internal to the library: not exported from libxgrad.so.
#pragma GCC visibility push(hidden)

namespace xgrad::kernels {

template <class T> using Batch = xsimd::batch<T>;

template <class F, class T>
void unary_contiguous(const F& f, const T* x, T* y, std::int64_t n) {
  constexpr std::int64_t lanes = Batch<T>::size;
  std::int64_t i = 0;
  for (; i + lanes <= n; i += lanes) f(Batch<T>::load_unaligned(x + i)).store_unaligned(y + i);
  for (; i < n; ++i) y[i] = f(x[i]);
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
    using B = Batch<T>;
    constexpr std::int64_t lanes = B::size;
    const T* ap = static_cast<const T*>(a.raw_data());
    const T* bp = static_cast<const T*>(b.raw_data());
    T* yp = static_cast<T*>(out.raw_data());
    const std::int64_t n = out.numel();
    const bool a_full = a.shape() == out.shape() && a.is_contiguous();
    const bool b_full = b.shape() == out.shape() && b.is_contiguous();
    if (a_full && b_full) {
      std::int64_t i = 0;
      for (; i + lanes <= n; i += lanes)
        f(B::load_unaligned(ap + i), B::load_unaligned(bp + i)).store_unaligned(yp + i);
      for (; i < n; ++i) yp[i] = f(ap[i], bp[i]);
    } else if (a_full && b.numel() == 1) {
      const T s = *bp;
      const B sb(s);
      std::int64_t i = 0;
      for (; i + lanes <= n; i += lanes) f(B::load_unaligned(ap + i), sb).store_unaligned(yp + i);
      for (; i < n; ++i) yp[i] = f(ap[i], s);
    } else if (b_full && a.numel() == 1) {
      const T s = *ap;
      const B sb(s);
      std::int64_t i = 0;
      for (; i + lanes <= n; i += lanes) f(sb, B::load_unaligned(bp + i)).store_unaligned(yp + i);
      for (; i < n; ++i) yp[i] = f(s, bp[i]);
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
    const Strides as = broadcast_strides(a.shape(), a.strides(), out.shape());
    const Strides bs = broadcast_strides(b.shape(), b.strides(), out.shape());
    strided_loop<3>(out.shape(), {&out.strides(), &as, &bs}, [&](std::int64_t n, const auto& off, const auto& st) {
      for (std::int64_t i = 0; i < n; ++i) yp[off[0] + i * st[0]] = F{}(ap[off[1] + i * st[1]], bp[off[2] + i * st[2]]);
    });
  });
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
