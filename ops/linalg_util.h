// Shared by the linalg op files (internal: only ops/*.cpp include it).
// Type inference for "matrices in the last two axes, broadcast batch in
// front", and the kernel side: walking the batch, copying each matrix into
// the column-major buffer LAPACK wants and back.
#pragma once
#include <array>
#include <climits>
#include <string>
#include <vector>

#include "core/op.h"
#include "core/strided_loop.h"
#include "ops/elementwise.h"
#include "ops/lapack.h"
#include "ops/ops.h"
#include "ops/scratch.h"

// Internal to the library: not exported from libxgrad.so.
#pragma GCC visibility push(hidden)

namespace xgrad::linalg {

using lapack::lapack_int;

// ---- type inference -----------------------------------------------------------

// s without its last `core` axes.
inline Shape batch_of(const Shape& s, std::size_t core = 2) {
  return Shape(s.begin(), s.end() - static_cast<std::ptrdiff_t>(core));
}

inline bool dims_differ(std::int64_t a, std::int64_t b) { return a != b && a != kDynamic && b != kDynamic; }
inline std::int64_t known_dim(std::int64_t a, std::int64_t b) { return a != kDynamic ? a : b; }

inline void require_matrix(const TensorType& t, const char* what) {
  infer::require_floating(t);
  if (t.shape.size() < 2)
    throw ValueError(std::string(what) + " must be a matrix or a batch of matrices (rank >= 2), got shape " +
                     to_string(t.shape));
}

// The n of a (..., n, n) operand.
inline std::int64_t square_dim(const TensorType& t, const char* what) {
  require_matrix(t, what);
  const auto r = t.shape[t.shape.size() - 2], c = t.shape.back();
  if (dims_differ(r, c))
    throw ValueError(std::string(what) + " must be square, got shape " + to_string(t.shape) + " (" + std::to_string(r) +
                     " rows, " + std::to_string(c) + " columns)");
  return known_dim(r, c);
}

inline Shape broadcast_batch(const Shape& a, const Shape& b) {
  try {
    return broadcast_shapes(batch_of(a), batch_of(b));
  } catch (const ValueError&) {
    throw ValueError("batch dimensions of " + to_string(a) + " and " + to_string(b) + " do not broadcast");
  }
}

// numpy 2's rule for a right-hand side: only a 1-D b is a single column,
// which the builder adds (a view) and removes again from the result.
template <class Fn>
Var with_vector_rhs(Var b, Fn&& fn) {
  if (b.shape().size() != 1) return fn(b);
  return squeeze(fn(unsqueeze(b, {1})), {-1});
}

// ---- kernels --------------------------------------------------------------------

inline lapack_int as_lapack_int(std::int64_t v) {
  if (v > INT_MAX) throw ValueError("matrix dimension " + std::to_string(v) + " exceeds LAPACK's 32-bit indexing");
  return static_cast<lapack_int>(v);
}

inline lapack_int leading_dim(std::int64_t rows) { return as_lapack_int(std::max<std::int64_t>(rows, 1)); }

// A matrix inside a tensor: element (i, j) at p[i * rs + j * cs].
template <class T>
struct Mat {
  T* p;
  std::int64_t rows, cols, rs, cs;
};

template <class T>
Mat<T> matrix_at(const Tensor& t, std::int64_t offset) {
  const auto r = t.ndim();
  return {static_cast<T*>(t.raw_data()) + offset, t.shape()[r - 2], t.shape()[r - 1], t.strides()[r - 2],
          t.strides()[r - 1]};
}

// dst (column-major, leading dimension ld) = m.
template <class T>
void pack(const Mat<T>& m, T* dst, std::int64_t ld) {
  for (std::int64_t j = 0; j < m.cols; ++j)
    for (std::int64_t i = 0; i < m.rows; ++i) dst[i + j * ld] = m.p[i * m.rs + j * m.cs];
}

// m = the top m.rows rows of src (column-major, leading dimension ld).
template <class T>
void unpack(const T* src, std::int64_t ld, const Mat<T>& m) {
  for (std::int64_t i = 0; i < m.rows; ++i)
    for (std::int64_t j = 0; j < m.cols; ++j) m.p[i * m.rs + j * m.cs] = src[i + j * ld];
}

// " (matrix (1, 0) of the batch)" for error messages; empty without a batch.
inline std::string batch_position(std::int64_t k, const Shape& batch) {
  if (batch.empty()) return "";
  Shape index(batch.size());
  for (std::size_t d = batch.size(); d-- > 0;) {
    index[d] = k % batch[d];
    k /= batch[d];
  }
  return " (matrix " + to_string(index) + " of the batch)";
}

// Calls fn(k, offsets) for the k-th matrix of the broadcast batch `batch`
// (row-major order); offsets[i] is where operand i's matrix starts, in elements
// from its raw_data(). Operand i drops its last core[i] axes to get its batch.
template <std::size_t N, class Fn>
void for_each_matrix(const Shape& batch, const std::array<const Tensor*, N>& operands,
                     const std::array<std::size_t, N>& core, Fn&& fn) {
  std::array<Strides, N> strides;
  std::array<const Strides*, N> ptrs;
  for (std::size_t i = 0; i < N; ++i) {
    const Tensor& t = *operands[i];
    strides[i] = broadcast_strides(batch_of(t.shape(), core[i]), batch_of(t.strides(), core[i]), batch);
    ptrs[i] = &strides[i];
  }
  std::int64_t k = 0;
  strided_loop<N>(batch, ptrs, [&](std::int64_t count, const auto& off, const auto& st) {
    for (std::int64_t c = 0; c < count; ++c) {
      std::array<std::int64_t, N> at;
      for (std::size_t i = 0; i < N; ++i) at[i] = off[i] + c * st[i];
      fn(k++, at);
    }
  });
}

}  // namespace xgrad::linalg
#pragma GCC visibility pop
