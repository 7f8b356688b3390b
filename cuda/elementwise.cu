// CUDA kernels for the elementwise ops: unary, binary with numpy broadcasting,
// comparisons and where. The math is ops/elementwise_math.h's functors, the
// same structs the CPU kernels run, so their formulas are tested on the CPU.
#include <cmath>
#include <cstdint>

#include "core/error.h"
#include "core/op.h"
#include "core/strided_loop.h"
#include "cuda/context.h"
#include "cuda/indexing.cuh"
#include "ops/elementwise_math.h"
#include "ops/random.h"

namespace xgrad::cuda {

namespace {

template <class F, class T>
__global__ void unary_packed(F f, const T* x, T* y, std::int64_t n) {
  XGRAD_GRID_STRIDE(i, n) y[i] = f(x[i]);
}

template <class F, class T>
__global__ void unary_strided(F f, const T* x, T* y, std::int64_t n, StridedIndex<2> ix) {
  XGRAD_GRID_STRIDE(i, n) {
    std::int64_t off[2];
    ix.offsets(i, off);
    y[off[0]] = f(x[off[1]]);
  }
}

template <class F, class T>
__global__ void binary_packed(F f, const T* a, const T* b, T* y, std::int64_t n) {
  XGRAD_GRID_STRIDE(i, n) y[i] = f(a[i], b[i]);
}

template <class F, class T, class Out>
__global__ void binary_strided(F f, const T* a, const T* b, Out* y, std::int64_t n, StridedIndex<3> ix) {
  XGRAD_GRID_STRIDE(i, n) {
    std::int64_t off[3];
    ix.offsets(i, off);
    y[off[0]] = f(a[off[1]], b[off[2]]);
  }
}

template <class To, class From>
__global__ void convert_strided(const From* x, To* y, std::int64_t n, StridedIndex<2> ix) {
  XGRAD_GRID_STRIDE(i, n) {
    std::int64_t off[2];
    ix.offsets(i, off);
    y[off[0]] = static_cast<To>(x[off[1]]);
  }
}

template <class T>
__global__ void where_strided(const bool* c, const T* a, const T* b, T* y, std::int64_t n, StridedIndex<4> ix) {
  XGRAD_GRID_STRIDE(i, n) {
    std::int64_t off[4];
    ix.offsets(i, off);
    y[off[0]] = c[off[1]] ? a[off[2]] : b[off[3]];
  }
}

template <class F>
void unary(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const F f = kernels::make_functor<F>(attrs);
  const Tensor& x = *in[0];
  const std::int64_t n = out.numel();
  if (n == 0) return;
  kernels::dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = static_cast<const T*>(x.raw_data());
    T* yp = static_cast<T*>(out.raw_data());
    if (packed_like(x, out) && out.is_contiguous())
      XGRAD_LAUNCH(blocks_for(n), kThreads, unary_packed)(f, xp, yp, n);
    else
      XGRAD_LAUNCH(blocks_for(n), kThreads, unary_strided)(f, xp, yp, n, strided_index<2>(out, in, "unary op"));
  });
  check_launch("unary kernel");
}

template <class F>
void binary(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const F f = kernels::make_functor<F>(attrs);
  const std::int64_t n = out.numel();
  if (n == 0) return;
  kernels::dispatch_floating(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* ap = static_cast<const T*>(in[0]->raw_data());
    const T* bp = static_cast<const T*>(in[1]->raw_data());
    T* yp = static_cast<T*>(out.raw_data());
    if (packed_like(*in[0], out) && packed_like(*in[1], out) && out.is_contiguous())
      XGRAD_LAUNCH(blocks_for(n), kThreads, binary_packed)(f, ap, bp, yp, n);
    else
      XGRAD_LAUNCH(blocks_for(n), kThreads, binary_strided)(f, ap, bp, yp, n, strided_index<3>(out, in, "binary op"));
  });
  check_launch("binary kernel");
}

template <class F>
void compare(const Tensor* const* in, Tensor& out, const Attrs&) {
  const std::int64_t n = out.numel();
  if (n == 0) return;
  kernels::dispatch_numeric(in[0]->dtype(), [&](auto tag) {
    using T = decltype(tag);
    XGRAD_LAUNCH(blocks_for(n), kThreads, binary_strided)(F{}, static_cast<const T*>(in[0]->raw_data()),
                                                             static_cast<const T*>(in[1]->raw_data()),
                                                             static_cast<bool*>(out.raw_data()), n,
                                                             strided_index<3>(out, in, "comparison"));
  });
  check_launch("comparison kernel");
}

void where(const Tensor* const* in, Tensor& out, const Attrs&) {
  const std::int64_t n = out.numel();
  if (n == 0) return;
  kernels::dispatch_numeric(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    XGRAD_LAUNCH(blocks_for(n), kThreads, where_strided)(
        static_cast<const bool*>(in[0]->raw_data()), static_cast<const T*>(in[1]->raw_data()),
        static_cast<const T*>(in[2]->raw_data()), static_cast<T*>(out.raw_data()), n, strided_index<4>(out, in, "where"));
  });
  check_launch("where kernel");
}

void astype(const Tensor* const* in, Tensor& out, const Attrs&) {
  const std::int64_t n = out.numel();
  if (n == 0) return;
  kernels::dispatch_numeric(out.dtype(), [&](auto to) {
    kernels::dispatch_numeric(in[0]->dtype(), [&](auto from) {
      using To = decltype(to);
      using From = decltype(from);
      XGRAD_LAUNCH(blocks_for(n), kThreads, convert_strided)(static_cast<const From*>(in[0]->raw_data()),
                                                                static_cast<To*>(out.raw_data()), n,
                                                                strided_index<2>(out, in, "astype"));
    });
  });
  check_launch("astype kernel");
}

template <class T>
__global__ void dropout_mask_kernel(ew::DropoutMaskF mask, T* out, std::int64_t n) {
  XGRAD_GRID_STRIDE(i, n) out[i] = mask.operator()<T>(i);
}

// The same mask as the CPU kernel draws for the same stream (ops/random.h).
void dropout_mask(const Tensor* const*, Tensor& out, const Attrs& a) {
  const ew::DropoutMaskF mask(next_random_stream(static_cast<std::uint64_t>(a.get_int("seed"))), a.get_float("p"));
  const std::int64_t n = out.numel();
  if (n == 0) return;
  kernels::dispatch_floating(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    XGRAD_LAUNCH(blocks_for(n), kThreads, dropout_mask_kernel)(mask, static_cast<T*>(out.raw_data()), n);
  });
  check_launch("dropout_mask kernel");
}

template <class T>
__global__ void adam_update_packed(const T* w, const T* m, const T* v, const T* k, const T* e, T* y, std::int64_t n) {
  XGRAD_GRID_STRIDE(i, n) y[i] = w[i] - k[0] * (m[i] / (std::sqrt(v[i]) + e[0]));
}

// w - k m / (sqrt(v) + e) (ops/adam_update.cpp): params and their moments are contiguous, k and e single values.
void adam_update(const Tensor* const* in, Tensor& out, const Attrs&) {
  const std::int64_t n = out.numel();
  if (n == 0) return;
  for (int i = 0; i < 3; ++i)
    if (!packed_like(*in[i], out) || !out.is_contiguous()) throw RuntimeError("adam_update on CUDA needs contiguous w, m and v");
  kernels::dispatch_floating(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    auto p = [&](int i) { return static_cast<const T*>(in[i]->raw_data()); };
    XGRAD_LAUNCH(blocks_for(n), kThreads, adam_update_packed)(p(0), p(1), p(2), p(3), p(4), static_cast<T*>(out.raw_data()), n);
  });
  check_launch("adam_update kernel");
}

const bool registered = [] {
  const std::pair<const char*, KernelFn> kernels[] = {
      {"neg", unary<ew::NegF>}, {"exp", unary<ew::ExpF>}, {"log", unary<ew::LogF>}, {"tanh", unary<ew::TanhF>},
      {"sigmoid", unary<ew::SigmoidF>}, {"relu", unary<ew::ReluF>}, {"square", unary<ew::SquareF>},
      {"sqrt", unary<ew::SqrtF>}, {"rsqrt", unary<ew::RsqrtF>}, {"abs", unary<ew::AbsF>}, {"sign", unary<ew::SignF>},
      {"expm1", unary<ew::Expm1F>}, {"log1p", unary<ew::Log1pF>}, {"sin", unary<ew::SinF>}, {"cos", unary<ew::CosF>},
      {"floor", unary<ew::FloorF>}, {"erf", unary<ew::ErfF>}, {"pow_scalar", unary<ew::PowScalarF>},
      {"leaky_relu", unary<ew::LeakyReluF>}, {"elu", unary<ew::EluF>}, {"gelu", unary<ew::GeluF>},
      {"softplus", unary<ew::SoftplusF>}, {"clip", unary<ew::ClipF>},
      {"add", binary<ew::AddF>}, {"sub", binary<ew::SubF>}, {"mul", binary<ew::MulF>}, {"div", binary<ew::DivF>},
      {"pow", binary<ew::PowF>}, {"maximum", binary<ew::MaxF>}, {"minimum", binary<ew::MinF>},
      {"lerp", binary<ew::LerpF>}, {"lerp_square", binary<ew::LerpSquareF>}, {"adam_update", adam_update},
      {"eq", compare<ew::EqF>}, {"ne", compare<ew::NeF>}, {"lt", compare<ew::LtF>}, {"le", compare<ew::LeF>},
      {"gt", compare<ew::GtF>}, {"ge", compare<ew::GeF>}, {"where", where}, {"astype", astype},
      {"dropout_mask", dropout_mask},
  };
  for (const auto& [op, kernel] : kernels) register_device_kernel(op, Device::cuda, kernel);
  return true;
}();

}  // namespace

}  // namespace xgrad::cuda
