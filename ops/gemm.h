// Strided-matrix GEMM through oneDNN (float32, when built with it) or OpenBLAS, and how a strided view reaches a
// BLAS (OpenBLAS here, cuBLAS in cuda/) without a copy. Kept apart from other
// kernels because OpenBLAS's cblas.h clashes with the one in xtensor-blas.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/attrs.h"
#include "core/op.h"
#include "core/strided_loop.h"
#include "core/tensor.h"

// Internal to the library: not exported from libxgrad.so.
#pragma GCC visibility push(hidden)

namespace xgrad::blas {

struct MatrixArg {
  const void* data;
  bool transposed;     // stored column-major (a transposed row-major view)
  std::int64_t ld;     // leading dimension in elements
};

// How BLAS can read a rows x cols matrix with strides (s0, s1) in place, if it can.
inline bool as_blas_operand(const void* data, std::int64_t rows, std::int64_t cols, std::int64_t s0, std::int64_t s1,
                            MatrixArg& arg) {
  arg.data = data;
  if ((cols <= 1 || s1 == 1) && (rows <= 1 || s0 >= std::max<std::int64_t>(cols, 1))) {
    arg.transposed = false;
    arg.ld = rows <= 1 ? std::max<std::int64_t>(cols, 1) : s0;
    return true;
  }
  if ((rows <= 1 || s0 == 1) && (cols <= 1 || s1 >= std::max<std::int64_t>(rows, 1))) {
    arg.transposed = true;
    arg.ld = cols <= 1 ? std::max<std::int64_t>(rows, 1) : s1;
    return true;
  }
  return false;
}

// Whether the last two axes of t are a matrix BLAS reads in place (else the kernel copies it once).
inline bool blas_readable(const Tensor& t) {
  MatrixArg arg{};
  const auto r = t.ndim();
  return as_blas_operand(nullptr, t.shape()[r - 2], t.shape()[r - 1], t.strides()[r - 2], t.strides()[r - 1], arg);
}

// The leading (batch) axes of a matmul operand's shape or strides.
inline std::vector<std::int64_t> batch_of(const std::vector<std::int64_t>& s) {
  return std::vector<std::int64_t>(s.begin(), s.end() - 2);
}

// One GEMM call of a matmul kernel: c (m x n, row-major, ld n) = a @ b, for `batches` matrices spaced
// stride_* elements apart (one matrix unless the walk folds a batch axis).
struct GemmCall {
  MatrixArg a, b;
  void* c;
  std::int64_t m, n, k, batches, stride_a, stride_b, stride_c;
};

// The matmul kernels' shared walk (CPU and CUDA): checks the inner size at run time, handles empty
// products, packs matrices BLAS cannot read in place, and calls gemm(GemmCall) over out's batch (numpy
// broadcasting). With fold_last_batch_axis the innermost batch axis becomes one strided-batched call
// (operands running backwards along it are packed first); otherwise each matrix is its own call.
template <class Gemm>
void for_each_gemm(Tensor a, Tensor b, Tensor& out, bool fold_last_batch_axis, Gemm&& gemm) {
  const auto ra = a.ndim(), rb = b.ndim();
  const auto m = a.shape()[ra - 2], k = a.shape()[ra - 1], n = b.shape()[rb - 1];
  if (k != b.shape()[rb - 2])
    throw ValueError("inner dimensions differ at run time: " + to_string(a.shape()) + " @ " + to_string(b.shape()));
  if (out.numel() == 0) return;
  if (k == 0) {
    out.fill_zero();
    return;
  }
  const auto needs_packing = [&](const Tensor& t) {
    return !blas_readable(t) || (fold_last_batch_axis && t.ndim() > 2 && t.strides()[t.ndim() - 3] < 0);
  };
  if (needs_packing(a)) a = a.copy();  // once per call, on the tensor's device
  if (needs_packing(b)) b = b.copy();
  const Shape batch = batch_of(out.shape());
  const Strides a_batch = broadcast_strides(batch_of(a.shape()), batch_of(a.strides()), batch);
  const Strides b_batch = broadcast_strides(batch_of(b.shape()), batch_of(b.strides()), batch);
  const Strides out_batch = batch_of(out.strides());
  const bool fold = fold_last_batch_axis && !batch.empty();
  const auto walked = [&](const std::vector<std::int64_t>& v) {
    return std::vector<std::int64_t>(v.begin(), fold ? v.end() - 1 : v.end());
  };
  const auto folded = [&](const Strides& s) { return fold ? s.back() : std::int64_t{0}; };
  const Shape outer = walked(batch);
  const Strides outer_out = walked(out_batch), outer_a = walked(a_batch), outer_b = walked(b_batch);
  const std::size_t item = itemsize(out.dtype());
  const char* ap = static_cast<const char*>(a.raw_data());
  const char* bp = static_cast<const char*>(b.raw_data());
  char* cp = static_cast<char*>(out.raw_data());
  const auto as0 = a.strides()[ra - 2], as1 = a.strides()[ra - 1];
  const auto bs0 = b.strides()[rb - 2], bs1 = b.strides()[rb - 1];
  strided_loop<3>(outer, {&outer_out, &outer_a, &outer_b}, [&](std::int64_t cnt, const auto& off, const auto& st) {
    for (std::int64_t i = 0; i < cnt; ++i) {
      GemmCall call{{}, {}, cp + (off[0] + i * st[0]) * item, m, n, k, fold ? batch.back() : 1,
                    folded(a_batch), folded(b_batch), folded(out_batch)};
      as_blas_operand(ap + (off[1] + i * st[1]) * item, m, k, as0, as1, call.a);
      as_blas_operand(bp + (off[2] + i * st[2]) * item, k, n, bs0, bs1, call.b);
      gemm(call);
    }
  });
}

// C (m x n, row-major contiguous) = A (m x k) * B (k x n), k > 0. Products with one row or one column run
// xgrad's own matrix-vector kernels (ops/gemv.cpp); the rest go to oneDNN or OpenBLAS.
void gemm_f32(std::int64_t m, std::int64_t n, std::int64_t k, MatrixArg a, MatrixArg b, float* c);
void gemm_f64(std::int64_t m, std::int64_t n, std::int64_t k, MatrixArg a, MatrixArg b, double* c);
template <class T>
void gemv(std::int64_t m, std::int64_t n, std::int64_t k, MatrixArg a, MatrixArg b, T* c);  // m == 1 or n == 1
// Which library runs them: "oneDNN sgemm" or "OpenBLAS sgemm"; float64 is always "OpenBLAS dgemm".
const char* gemm_library(DType dtype);
// Which kernel runs a product with output rows x cols (either may be kDynamic): xgrad's gemv for one row or
// column, else the GEMM library (and gemv again where a dynamic size turns out to be 1).
std::string product_note(DType dtype, std::int64_t rows, std::int64_t cols);
// OpDef::kernel_note of matmul.
std::string matmul_note(const std::vector<TensorType>& inputs, const TensorType& out, const Attrs&);

}  // namespace xgrad::blas
#pragma GCC visibility pop
