// The arithmetic of every elementwise op, written once. Each functor's
// operator() is a template over V, valid for a scalar float or double on the
// host, the same scalars in CUDA device code, and xsimd batches on the CPU:
// the CPU kernels (ops/elementwise.h) and the CUDA kernels (cuda/) instantiate
// these same structs, so the CPU tests check the GPU's formulas too.
//
// How one spelling serves all three: the functors call math unqualified
// (`exp(x)`). For a scalar, ordinary lookup finds the float/double overloads
// below, which forward to the C math library (device functions under nvcc).
// For an xsimd batch those overloads are not viable and argument-dependent
// lookup finds xsimd's vector versions. This header includes neither xsimd nor
// anything CUDA-specific, so .cu files can include it.
#pragma once
#include <cmath>
#include <cstdint>

#include "core/attrs.h"

#if defined(__CUDACC__)
#define XGRAD_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define XGRAD_HOST_DEVICE inline
#endif

// Internal to the library (and the CUDA plugin): not exported, whatever the compiler leaves out of line.
#pragma GCC visibility push(hidden)

namespace xgrad::ew {

#define XGRAD_SCALAR_MATH(name, float_fn, double_fn)                    \
  XGRAD_HOST_DEVICE float name(float x) { return ::float_fn(x); }     \
  XGRAD_HOST_DEVICE double name(double x) { return ::double_fn(x); }
XGRAD_SCALAR_MATH(exp, expf, exp)
XGRAD_SCALAR_MATH(log, logf, log)
XGRAD_SCALAR_MATH(tanh, tanhf, tanh)
XGRAD_SCALAR_MATH(sqrt, sqrtf, sqrt)
XGRAD_SCALAR_MATH(abs, fabsf, fabs)
XGRAD_SCALAR_MATH(expm1, expm1f, expm1)
XGRAD_SCALAR_MATH(log1p, log1pf, log1p)
XGRAD_SCALAR_MATH(sin, sinf, sin)
XGRAD_SCALAR_MATH(cos, cosf, cos)
XGRAD_SCALAR_MATH(floor, floorf, floor)
XGRAD_SCALAR_MATH(erf, erff, erf)
#undef XGRAD_SCALAR_MATH

XGRAD_HOST_DEVICE float pow(float a, float b) { return ::powf(a, b); }
XGRAD_HOST_DEVICE double pow(double a, double b) { return ::pow(a, b); }
// std::max / std::min semantics: the first argument when the comparison fails (the ops use nan_max / nan_min).
XGRAD_HOST_DEVICE float max(float a, float b) { return a < b ? b : a; }
XGRAD_HOST_DEVICE double max(double a, double b) { return a < b ? b : a; }
XGRAD_HOST_DEVICE float min(float a, float b) { return b < a ? b : a; }
XGRAD_HOST_DEVICE double min(double a, double b) { return b < a ? b : a; }
XGRAD_HOST_DEVICE float select(bool c, float a, float b) { return c ? a : b; }
XGRAD_HOST_DEVICE double select(bool c, double a, double b) { return c ? a : b; }

// max / min that return NaN when either argument is NaN, as numpy's maximum and minimum do, for scalars
// and batches alike (a bare SIMD max returns its second operand when either is NaN).
// (x != x would not do for batches: xsimd compares with an ordered predicate, false for NaN.)
XGRAD_HOST_DEVICE bool isnan(float x) { return x != x; }
XGRAD_HOST_DEVICE bool isnan(double x) { return x != x; }
template <class V> XGRAD_HOST_DEVICE V nan_max(V a, V b) { return select(isnan(a) | isnan(b), a + b, max(a, b)); }
template <class V> XGRAD_HOST_DEVICE V nan_min(V a, V b) { return select(isnan(a) | isnan(b), a + b, min(a, b)); }

constexpr double kInvSqrt2 = 0.70710678118654752;
constexpr double kGeluTanhScale = 0.79788456080286536;  // sqrt(2 / pi)
constexpr double kGeluTanhCubic = 0.044715;

// tanh through a class so that one type can have its own: float SIMD batches use a rational approximation
// (ops/elementwise.h), as xsimd's tanh evaluates both branches of its formula on every lane. Scalars, double
// batches and CUDA use the library's tanh.
template <class V> struct Tanh { static XGRAD_HOST_DEVICE V of(V x) { return tanh(x); } };

// Unary.
struct NegF { template <class V> XGRAD_HOST_DEVICE V operator()(V x) const { return -x; } };
struct ExpF { template <class V> XGRAD_HOST_DEVICE V operator()(V x) const { return exp(x); } };
struct LogF { template <class V> XGRAD_HOST_DEVICE V operator()(V x) const { return log(x); } };
struct TanhF { template <class V> XGRAD_HOST_DEVICE V operator()(V x) const { return Tanh<V>::of(x); } };
struct SigmoidF { template <class V> XGRAD_HOST_DEVICE V operator()(V x) const { return V(1) / (V(1) + exp(-x)); } };
struct ReluF { template <class V> XGRAD_HOST_DEVICE V operator()(V x) const { return nan_max(x, V(0)); } };
struct SquareF { template <class V> XGRAD_HOST_DEVICE V operator()(V x) const { return x * x; } };
struct SqrtF { template <class V> XGRAD_HOST_DEVICE V operator()(V x) const { return sqrt(x); } };
struct RsqrtF { template <class V> XGRAD_HOST_DEVICE V operator()(V x) const { return V(1) / sqrt(x); } };
struct AbsF { template <class V> XGRAD_HOST_DEVICE V operator()(V x) const { return abs(x); } };
struct SignF {
  template <class V> XGRAD_HOST_DEVICE V operator()(V x) const {
    return select(x > V(0), V(1), select(x < V(0), V(-1), V(0)));
  }
};
struct Expm1F { template <class V> XGRAD_HOST_DEVICE V operator()(V x) const { return expm1(x); } };
struct Log1pF { template <class V> XGRAD_HOST_DEVICE V operator()(V x) const { return log1p(x); } };
struct SinF { template <class V> XGRAD_HOST_DEVICE V operator()(V x) const { return sin(x); } };
struct CosF { template <class V> XGRAD_HOST_DEVICE V operator()(V x) const { return cos(x); } };
struct FloorF { template <class V> XGRAD_HOST_DEVICE V operator()(V x) const { return floor(x); } };
struct ErfF { template <class V> XGRAD_HOST_DEVICE V operator()(V x) const { return erf(x); } };
struct PowScalarF {
  explicit PowScalarF(const Attrs& a) : p(a.get_float("exponent")) {}
  double p;
  template <class V> XGRAD_HOST_DEVICE V operator()(V x) const { return pow(x, V(p)); }
};

// Activations with parameters (attrs are read once, on the host).
struct LeakyReluF {
  explicit LeakyReluF(const Attrs& a) : slope(a.get_float("negative_slope")) {}
  double slope;
  template <class V> XGRAD_HOST_DEVICE V operator()(V x) const { return select(x > V(0), x, x * V(slope)); }
};
struct EluF {
  explicit EluF(const Attrs& a) : alpha(a.get_float("alpha")) {}
  double alpha;
  template <class V> XGRAD_HOST_DEVICE V operator()(V x) const { return select(x > V(0), x, V(alpha) * expm1(x)); }
};
struct GeluF {
  explicit GeluF(const Attrs& a) : tanh_form(a.get_int("tanh") != 0) {}
  bool tanh_form;
  template <class V> XGRAD_HOST_DEVICE V operator()(V x) const {
    if (tanh_form) return V(0.5) * x * (V(1) + Tanh<V>::of(V(kGeluTanhScale) * (x + V(kGeluTanhCubic) * x * x * x)));
    return V(0.5) * x * (V(1) + erf(x * V(kInvSqrt2)));
  }
};
// log(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|).
struct SoftplusF {
  template <class V> XGRAD_HOST_DEVICE V operator()(V x) const { return max(x, V(0)) + log1p(exp(-abs(x))); }
};
struct ClipF {
  explicit ClipF(const Attrs& a) : lo(a.get_float("min")), hi(a.get_float("max")) {}
  double lo, hi;
  template <class V> XGRAD_HOST_DEVICE V operator()(V x) const { return nan_min(nan_max(x, V(lo)), V(hi)); }
};

// Moving averages, as the optimizers keep their moments: a + w (b - a) and a + w (b^2 - a), one pass each.
struct LerpF {
  explicit LerpF(const Attrs& at) : w(at.get_float("weight")) {}
  double w;
  template <class V> XGRAD_HOST_DEVICE V operator()(V a, V b) const { return a + V(w) * (b - a); }
};
struct LerpSquareF {
  explicit LerpSquareF(const Attrs& at) : w(at.get_float("weight")) {}
  double w;
  template <class V> XGRAD_HOST_DEVICE V operator()(V a, V b) const { return a + V(w) * (b * b - a); }
};

// Binary (broadcasting is the kernels' business).
struct AddF { template <class V> XGRAD_HOST_DEVICE V operator()(V a, V b) const { return a + b; } };
struct SubF { template <class V> XGRAD_HOST_DEVICE V operator()(V a, V b) const { return a - b; } };
struct MulF { template <class V> XGRAD_HOST_DEVICE V operator()(V a, V b) const { return a * b; } };
struct DivF { template <class V> XGRAD_HOST_DEVICE V operator()(V a, V b) const { return a / b; } };
struct PowF { template <class V> XGRAD_HOST_DEVICE V operator()(V a, V b) const { return pow(a, b); } };
struct MaxF { template <class V> XGRAD_HOST_DEVICE V operator()(V a, V b) const { return nan_max(a, b); } };
struct MinF { template <class V> XGRAD_HOST_DEVICE V operator()(V a, V b) const { return nan_min(a, b); } };

// Comparisons: any numeric T (scalars only), a bool out.
struct EqF { template <class T> XGRAD_HOST_DEVICE bool operator()(T a, T b) const { return a == b; } };
struct NeF { template <class T> XGRAD_HOST_DEVICE bool operator()(T a, T b) const { return a != b; } };
struct LtF { template <class T> XGRAD_HOST_DEVICE bool operator()(T a, T b) const { return a < b; } };
struct LeF { template <class T> XGRAD_HOST_DEVICE bool operator()(T a, T b) const { return a <= b; } };
struct GtF { template <class T> XGRAD_HOST_DEVICE bool operator()(T a, T b) const { return a > b; } };
struct GeF { template <class T> XGRAD_HOST_DEVICE bool operator()(T a, T b) const { return a >= b; } };

// How reductions fold one element into an accumulator (scalars only). NaN wins in max and min, as in numpy.
struct SumCombine { template <class T> XGRAD_HOST_DEVICE T operator()(T acc, T v) const { return acc + v; } };
struct ProdCombine { template <class T> XGRAD_HOST_DEVICE T operator()(T acc, T v) const { return acc * v; } };
struct MaxCombine { template <class T> XGRAD_HOST_DEVICE T operator()(T acc, T v) const { return (v > acc || v != v) ? v : acc; } };
struct MinCombine { template <class T> XGRAD_HOST_DEVICE T operator()(T acc, T v) const { return (v < acc || v != v) ? v : acc; } };

}  // namespace xgrad::ew

#pragma GCC visibility pop
