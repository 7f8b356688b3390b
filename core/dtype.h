// Element types a Tensor can hold, and compile-time mapping from C++ types.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace xgrad {

enum class DType : std::uint8_t { float32, float64, int64, bool_ };

std::size_t itemsize(DType dtype);
const char* dtype_name(DType dtype);
bool is_floating(DType dtype);

template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::float64; };
template <> struct dtype_of<std::int64_t> { static constexpr DType value = DType::int64; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::bool_; };
template <class T> inline constexpr DType dtype_v = dtype_of<T>::value;

}  // namespace xgrad
