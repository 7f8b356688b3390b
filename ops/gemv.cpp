// Matrix-vector products (a GEMM with one row or one column): X @ w in a regression, X^T @ r in its gradient,
// x @ W at batch 1. They read the matrix once and are bound by memory, so the kernel's job is to stream it at
// full width: GEMM libraries pack panels first (oneDNN's sgemm runs 4096x64 @ 64x1 slower than a plain dot
// loop) and OpenBLAS's gemv here runs its Haswell kernels. Two loop shapes cover every layout:
//   dot rows:  y[i] = A[i, :] . x      (each output is a row's dot product)
//   axpy rows: y    = sum_i x[i] A[i, :]  (each row scaled into a row of accumulators held in registers)
// Large matrices are split across the thread pool by output (or, for few outputs, by rows with a final sum).
#include <algorithm>
#include <array>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "core/thread_pool.h"
#include "ops/gemm.h"

namespace xgrad::blas {

namespace {

template <class T> using Vec = xsimd::batch<T>;
template <class T> constexpr std::int64_t kLanes = static_cast<std::int64_t>(Vec<T>::size);

// Splitting costs a hand-off to a polling worker (a microsecond or so; a sleeping one takes tens): worth it
// once the matrix takes several microseconds to stream.
constexpr std::int64_t kSplitBytes = 256 << 10;

// Which input of xsimd::haddp lands in each output lane. Its float AVX-512 version (xsimd 8.1, Debian 12)
// returns the sums in a shuffled order (lanes 2-5 and 10-13 swapped in pairs), so the order is learned once
// from the library itself, and stays right where a later xsimd fixes it.
template <class T>
const std::array<int, kLanes<T>>& haddp_order() {
  static const std::array<int, kLanes<T>> order = [] {
    constexpr std::int64_t L = kLanes<T>;
    Vec<T> rows[L];
    for (std::int64_t r = 0; r < L; ++r) rows[r] = Vec<T>(T(r));
    alignas(64) T sums[L];
    xsimd::haddp(rows).store_aligned(sums);
    std::array<int, L> lane_source{};
    for (std::int64_t j = 0; j < L; ++j) lane_source[j] = static_cast<int>(sums[j] / T(L) + T(0.5));
    return lane_source;
  }();
  return order;
}

// y[i] = A[i, :] . x for i in [0, rows), A row-major with leading dimension ld, x contiguous. A block of L rows
// (one vector's lanes) keeps L vector accumulators, which one transposing reduction (haddp) turns into L
// results: a horizontal sum per row would cost more than the row's FMAs when rows are short.
template <class T>
void dot_rows(const T* a, std::int64_t rows, std::int64_t cols, std::int64_t ld, const T* x, T* y) {
  constexpr std::int64_t L = kLanes<T>;
  const std::int64_t vector_cols = cols / L * L;
  const auto& order = haddp_order<T>();
  std::int64_t i = 0;
  for (; i + L <= rows; i += L) {
    Vec<T> s[L];
    for (std::int64_t r = 0; r < L; ++r) s[r] = Vec<T>(T(0));
    for (std::int64_t j = 0; j < vector_cols; j += L) {
      const auto xv = Vec<T>::load_unaligned(x + j);
#pragma GCC unroll 16
      for (std::int64_t r = 0; r < L; ++r) s[r] = xsimd::fma(Vec<T>::load_unaligned(a + (i + r) * ld + j), xv, s[r]);
    }
    Vec<T> sums = xsimd::haddp(s);  // lane j: row order[j]
    if (vector_cols < cols) {  // the last cols % L columns, in haddp's lanes: lane j for row i + order[j]
      alignas(64) T tail[L];
      for (std::int64_t lane = 0; lane < L; ++lane) {
        const T* row = a + (i + order[lane]) * ld;
        T t = T(0);
        for (std::int64_t j = vector_cols; j < cols; ++j) t += row[j] * x[j];
        tail[lane] = t;
      }
      sums += Vec<T>::load_aligned(tail);
    }
    alignas(64) T lanes[L];
    sums.store_aligned(lanes);
    for (std::int64_t lane = 0; lane < L; ++lane) y[i + order[lane]] = lanes[lane];
  }
  for (; i < rows; ++i) {
    const T* ai = a + i * ld;
    Vec<T> s(T(0));
    for (std::int64_t j = 0; j < vector_cols; j += L) s = xsimd::fma(Vec<T>::load_unaligned(ai + j), Vec<T>::load_unaligned(x + j), s);
    T r = xsimd::hadd(s);
    for (std::int64_t j = vector_cols; j < cols; ++j) r += ai[j] * x[j];
    y[i] = r;
  }
}

// y[0 : NV * L] = sum_i x[i] A[i, 0 : NV * L]: NV vectors of accumulators stay in registers for the whole
// column block; even and odd rows go to separate sets so consecutive FMAs do not wait on each other.
template <int NV, class T>
void axpy_block(const T* a, std::int64_t rows, std::int64_t ld, const T* x, T* y) {
  constexpr std::int64_t L = kLanes<T>;
  Vec<T> even[NV], odd[NV];
  for (int v = 0; v < NV; ++v) even[v] = odd[v] = Vec<T>(T(0));
  std::int64_t i = 0;
  for (; i + 2 <= rows; i += 2) {
    const Vec<T> x0(x[i]), x1(x[i + 1]);
    const T *r0 = a + i * ld, *r1 = r0 + ld;
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      even[v] = xsimd::fma(Vec<T>::load_unaligned(r0 + v * L), x0, even[v]);
      odd[v] = xsimd::fma(Vec<T>::load_unaligned(r1 + v * L), x1, odd[v]);
    }
  }
  if (i < rows) {
    const Vec<T> x0(x[i]);
    for (int v = 0; v < NV; ++v) even[v] = xsimd::fma(Vec<T>::load_unaligned(a + i * ld + v * L), x0, even[v]);
  }
  for (int v = 0; v < NV; ++v) (even[v] + odd[v]).store_unaligned(y + v * L);
}

// y[j] = sum_i x[i] A[i, j] for j in [0, cols), A row-major with leading dimension ld, x contiguous.
template <class T>
void axpy_rows(const T* a, std::int64_t rows, std::int64_t cols, std::int64_t ld, const T* x, T* y) {
  constexpr std::int64_t L = kLanes<T>;
  std::int64_t j = 0;
  for (; j + 8 * L <= cols; j += 8 * L) axpy_block<8>(a + j, rows, ld, x, y + j);
  if (j + 4 * L <= cols) axpy_block<4>(a + j, rows, ld, x, y + j), j += 4 * L;
  if (j + 2 * L <= cols) axpy_block<2>(a + j, rows, ld, x, y + j), j += 2 * L;
  if (j + L <= cols) axpy_block<1>(a + j, rows, ld, x, y + j), j += L;
  if (j == cols) return;
  const std::int64_t tail = cols - j;  // fewer than L columns: walk the rows in order, accumulate in y
  std::fill(y + j, y + cols, T(0));
  for (std::int64_t i = 0; i < rows; ++i) {
    const T* ai = a + i * ld + j;
    for (std::int64_t t = 0; t < tail; ++t) y[j + t] += x[i] * ai[t];
  }
}

// Splits [0, count) into `parts` ranges whose starts are multiples of `align`.
struct Split {
  std::int64_t count, parts, align;
  std::int64_t begin(std::int64_t p) const {
    const std::int64_t chunk = ((count + parts - 1) / parts + align - 1) / align * align;
    return std::min(count, p * chunk);
  }
  std::int64_t end(std::int64_t p) const { return begin(p + 1); }
};

std::int64_t parts_for(std::int64_t bytes) {
  if (bytes < kSplitBytes) return 1;
  return static_cast<std::int64_t>(ThreadPool::instance().workers()) + 1;
}

template <class T>
void run_dot_rows(const T* a, std::int64_t rows, std::int64_t cols, std::int64_t ld, const T* x, T* y) {
  const std::int64_t parts = std::min(parts_for(rows * cols * std::int64_t(sizeof(T))), std::max<std::int64_t>(1, rows / 64));
  if (parts <= 1) return dot_rows(a, rows, cols, ld, x, y);
  const Split split{rows, parts, kLanes<T>};
  ThreadPool::instance().run(static_cast<std::size_t>(parts), [&](std::size_t p) {
    const auto r0 = split.begin(static_cast<std::int64_t>(p)), r1 = split.end(static_cast<std::int64_t>(p));
    if (r0 < r1) dot_rows(a + r0 * ld, r1 - r0, cols, ld, x, y + r0);
  });
}

template <class T>
void run_axpy_rows(const T* a, std::int64_t rows, std::int64_t cols, std::int64_t ld, const T* x, T* y) {
  const std::int64_t parts = parts_for(rows * cols * std::int64_t(sizeof(T)));
  if (parts <= 1) return axpy_rows(a, rows, cols, ld, x, y);
  constexpr std::int64_t L = kLanes<T>;
  if (cols >= parts * 8 * L) {  // wide: each part owns a block of columns
    const Split split{cols, parts, 8 * L};
    ThreadPool::instance().run(static_cast<std::size_t>(parts), [&](std::size_t p) {
      const auto c0 = split.begin(static_cast<std::int64_t>(p)), c1 = split.end(static_cast<std::int64_t>(p));
      if (c0 < c1) axpy_rows(a + c0, rows, c1 - c0, ld, x, y + c0);
    });
    return;
  }
  // tall and narrow (X^T r): each part sums its rows into its own row of partial results
  std::vector<T> partial(static_cast<std::size_t>(parts * cols));
  const Split split{rows, parts, 2};
  ThreadPool::instance().run(static_cast<std::size_t>(parts), [&](std::size_t p) {
    const auto r0 = split.begin(static_cast<std::int64_t>(p)), r1 = split.end(static_cast<std::int64_t>(p));
    T* out = partial.data() + static_cast<std::int64_t>(p) * cols;
    if (r0 < r1) axpy_rows(a + r0 * ld, r1 - r0, cols, ld, x + r0, out);
    else std::fill(out, out + cols, T(0));
  });
  for (std::int64_t j = 0; j < cols; ++j) {
    T s = T(0);
    for (std::int64_t p = 0; p < parts; ++p) s += partial[static_cast<std::size_t>(p * cols + j)];
    y[j] = s;
  }
}

}  // namespace

template <class T>
void gemv(std::int64_t m, std::int64_t n, std::int64_t k, MatrixArg a, MatrixArg b, T* c) {
  const T* ap = static_cast<const T*>(a.data);
  const T* bp = static_cast<const T*>(b.data);
  // The vector operand, contiguous: copied (k elements) when it is a strided view.
  std::vector<T> packed;
  auto contiguous = [&](const T* v, std::int64_t inc) {
    if (inc == 1) return v;
    packed.resize(static_cast<std::size_t>(k));
    for (std::int64_t i = 0; i < k; ++i) packed[static_cast<std::size_t>(i)] = v[i * inc];
    return static_cast<const T*>(packed.data());
  };
  if (n == 1) {  // c (m) = A (m x k) . b (k); b's elements are ld apart unless stored transposed
    const T* x = contiguous(bp, b.transposed ? 1 : b.ld);
    if (a.transposed) run_axpy_rows(ap, k, m, a.ld, x, c);  // A^T stored row-major: k rows of m
    else run_dot_rows(ap, m, k, a.ld, x, c);
    return;
  }
  // m == 1: c (n) = a (k) . B (k x n)
  const T* x = contiguous(ap, a.transposed ? a.ld : 1);
  if (b.transposed) run_dot_rows(bp, n, k, b.ld, x, c);  // B^T stored row-major: n rows of k
  else run_axpy_rows(bp, k, n, b.ld, x, c);
}

template void gemv<float>(std::int64_t, std::int64_t, std::int64_t, MatrixArg, MatrixArg, float*);
template void gemv<double>(std::int64_t, std::int64_t, std::int64_t, MatrixArg, MatrixArg, double*);

}  // namespace xgrad::blas
