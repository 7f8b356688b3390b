#include "core/shape.h"

#include <algorithm>
#include <cstdint>

#include "core/error.h"

namespace xgrad {

std::int64_t numel(const Shape& shape) {
  if (std::any_of(shape.begin(), shape.end(), [](std::int64_t d) { return d < 0; })) return kDynamic;
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  std::int64_t n = 1;
  for (auto d : shape)  // a corrupt file's or a fuzzer's shape must not wrap around to a small count
    if (__builtin_mul_overflow(n, d, &n)) throw ValueError("shape " + to_string(shape) + " has more elements than an int64 counts");
  return n;
}

bool is_static(const Shape& shape) {
  return std::none_of(shape.begin(), shape.end(), [](std::int64_t d) { return d < 0; });
}

Strides contiguous_strides(const Shape& shape) {
  Strides strides(shape.size());
  std::int64_t s = 1;
  for (auto i = shape.size(); i-- > 0;) {
    strides[i] = s;
    // Only an empty tensor's shape can overflow here (numel refuses the others): its strides address nothing.
    if (__builtin_mul_overflow(s, std::max<std::int64_t>(shape[i], 1), &s)) s = INT64_MAX;
  }
  return strides;
}

std::string to_string(const Shape& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += shape[i] == kDynamic ? "None" : std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  const auto n = std::max(a.size(), b.size());
  Shape out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const std::int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da == db || db == 1) {
      out[i] = da;
    } else if (da == 1) {
      out[i] = db;
    } else if (da == kDynamic || db == kDynamic) {
      out[i] = da == kDynamic ? db : da;  // checked again with concrete shapes at run time
    } else {
      throw ValueError("shapes " + to_string(a) + " and " + to_string(b) +
                       " cannot be broadcast together (dimension " + std::to_string(i) + ": " +
                       std::to_string(da) + " vs " + std::to_string(db) + ")");
    }
  }
  return out;
}

SliceSpan resolve_slice(std::int64_t n, std::int64_t start, std::int64_t stop, std::int64_t step) {
  if (step == 0) throw ValueError("slice step cannot be zero");
  if (step == INT64_MIN) step = -INT64_MAX;  // same elements; keeps -step representable
  auto clamp = [&](std::int64_t i, std::int64_t lo, std::int64_t hi) {
    if (i < 0) i = i < -n ? lo : i + n;
    return std::min(std::max(i, lo), hi);
  };
  if (step > 0) {
    start = clamp(start, 0, n);
    stop = clamp(stop, 0, n);
    return {start, stop > start ? 1 + (stop - start - 1) / step : 0};
  }
  start = clamp(start, -1, n - 1);
  stop = clamp(stop, -1, n - 1);
  return {start, start > stop ? 1 + (start - stop - 1) / -step : 0};
}

std::int64_t normalize_axis(std::int64_t axis, std::int64_t ndim, const std::string& what) {
  if (axis < -ndim || axis >= ndim)
    throw ValueError(what + ": axis " + std::to_string(axis) + " is out of range for a tensor of rank " +
                     std::to_string(ndim));
  return axis < 0 ? axis + ndim : axis;
}

std::vector<std::int64_t> normalize_axes(const std::vector<std::int64_t>& axes, std::int64_t ndim,
                                         const std::string& what) {
  std::vector<std::int64_t> out;
  for (auto a : axes) {
    auto n = normalize_axis(a, ndim, what);
    if (std::find(out.begin(), out.end(), n) != out.end())
      throw ValueError(what + ": axis " + std::to_string(a) + " is repeated");
    out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace xgrad
