// Dtype dispatch for kernels, shared by the CPU kernels and the CUDA ones (no xsimd, no CUDA here):
// fn is called with a value of the element type, as in dispatch_floating(dt, [&](auto tag) { using T = ...; }).
#pragma once
#include <cstdint>
#include <string>
#include <type_traits>

#include "core/attrs.h"
#include "core/dtype.h"
#include "core/error.h"

namespace xgrad::kernels {

template <class Fn>
inline void dispatch_floating(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::float32: fn(float{}); return;
    case DType::float64: fn(double{}); return;
    default: throw TypeError(std::string("kernel expects float32 or float64, got ") + dtype_name(dtype));
  }
}

// An op's functor, built from its attrs when it takes them.
template <class F>
inline F make_functor(const Attrs& attrs) {
  if constexpr (std::is_constructible_v<F, const Attrs&>) return F(attrs);
  else return F{};
}

template <class Fn>
inline void dispatch_numeric(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::float32: fn(float{}); return;
    case DType::float64: fn(double{}); return;
    case DType::int64: fn(std::int64_t{}); return;
    case DType::bool_: fn(bool{}); return;
  }
}

}  // namespace xgrad::kernels
