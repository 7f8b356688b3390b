// The per-row arithmetic of softmax, log_softmax and log_softmax_take over contiguous rows, on SIMD lanes:
// the row's shift m (its max; 0 for a row of -inf, so that exp(-inf - m) = 0 rather than NaN) and
// log(sum(exp(x - m))). Shared so that the fused ops round exactly as the composite does. Internal: includes
// xsimd, so only ops/*.cpp include it.
#pragma once
#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/thread_pool.h"

// Internal to the library: not exported from libxgrad.so.
#pragma GCC visibility push(hidden)

namespace xgrad::kernels {

template <class T>
struct RowShift {
  T m;          // the shift
  T log_total;  // log(sum(exp(x - m)))
};

// A row shorter than a vector (10 classes), as one vector padded with -inf: exp(-inf) adds nothing to the total.
template <class T>
xsimd::batch<T> short_row(const T* x, std::int64_t n) {
  alignas(64) T lanes[xsimd::batch<T>::size];
  std::fill(std::copy(x, x + n, lanes), lanes + xsimd::batch<T>::size, -INFINITY);
  return xsimd::batch<T>::load_aligned(lanes);
}

template <class T>
RowShift<T> row_shift(const T* x, std::int64_t n) {
  using V = xsimd::batch<T>;
  constexpr std::int64_t L = V::size;
  if (n < L) {
    const V v = short_row(x, n);
    alignas(64) T lanes[L];
    v.store_aligned(lanes);
    T m = x[0];
    for (std::int64_t j = 1; j < n; ++j) m = std::max(m, lanes[j]);
    if (std::isinf(m) && m < 0) m = 0;
    return {m, std::log(xsimd::hadd(xsimd::exp(v - V(m))))};
  }
  T m = x[0];
  std::int64_t j = 0;
  if (n >= L) {
    V vm = V::load_unaligned(x);
    for (j = L; j + L <= n; j += L) vm = xsimd::max(vm, V::load_unaligned(x + j));
    alignas(64) T lanes[L];
    vm.store_aligned(lanes);
    m = *std::max_element(lanes, lanes + L);  // a NaN lane leaves m as it is; its exp makes the total NaN
  }
  for (; j < n; ++j) m = std::max(m, x[j]);
  if (std::isinf(m) && m < 0) m = 0;
  // Blocks of 1024 summed on SIMD lanes, the block sums in double (as sum_run does): long rows (vocabularies)
  // keep float64-like accuracy in the total.
  constexpr std::int64_t kBlock = 1024;
  const V vm(m);
  double total = 0;
  j = 0;
  while (j + L <= n) {
    V acc(T(0));
    const std::int64_t block_end = std::min(n, j + kBlock);
    for (; j + L <= block_end; j += L) acc += xsimd::exp(V::load_unaligned(x + j) - vm);
    total += static_cast<double>(xsimd::hadd(acc));
  }
  for (; j < n; ++j) total += std::exp(x[j] - m);
  return {m, static_cast<T>(std::log(total))};
}

// y[j] = exp((x[j] - m) - log_total) * scale, the row's probabilities (scale 1) or their multiple.
template <class T>
void row_probabilities(const T* x, std::int64_t n, const RowShift<T>& s, T scale, T* y) {
  using V = xsimd::batch<T>;
  constexpr std::int64_t L = V::size;
  const V vm(s.m), vl(s.log_total), vs(scale);
  if (n < L) {
    alignas(64) T lanes[L];
    (xsimd::exp((short_row(x, n) - vm) - vl) * vs).store_aligned(lanes);
    std::copy(lanes, lanes + n, y);
    return;
  }
  std::int64_t j = 0;
  for (; j + L <= n; j += L) (xsimd::exp((V::load_unaligned(x + j) - vm) - vl) * vs).store_unaligned(y + j);
  for (; j < n; ++j) y[j] = std::exp((x[j] - s.m) - s.log_total) * scale;
}

// y[j] = (x[j] - m) - log_total: x - m is exact, where m + log_total would round at large m.
template <class T>
void row_log_probabilities(const T* x, std::int64_t n, const RowShift<T>& s, T* y) {
  using V = xsimd::batch<T>;
  constexpr std::int64_t L = V::size;
  const V vm(s.m), vl(s.log_total);
  std::int64_t j = 0;
  for (; j + L <= n; j += L) ((V::load_unaligned(x + j) - vm) - vl).store_unaligned(y + j);
  for (; j < n; ++j) y[j] = (x[j] - s.m) - s.log_total;
}

// fn(row) for rows [0, rows) of n elements each, split across the thread pool when there are enough elements.
template <class Fn>
void for_rows(std::int64_t rows, std::int64_t n, Fn&& fn) {
  constexpr std::int64_t kSplitElements = 1 << 16;
  ThreadPool& pool = ThreadPool::instance();
  const std::int64_t parts =
      rows * n >= kSplitElements ? std::min<std::int64_t>(rows, static_cast<std::int64_t>(pool.workers()) + 1) : 1;
  if (parts <= 1) {
    for (std::int64_t r = 0; r < rows; ++r) fn(r);
    return;
  }
  pool.run(static_cast<std::size_t>(parts), [&](std::size_t p) {
    const auto part = static_cast<std::int64_t>(p);
    for (std::int64_t r = rows * part / parts; r < rows * (part + 1) / parts; ++r) fn(r);
  });
}

}  // namespace xgrad::kernels
#pragma GCC visibility pop
