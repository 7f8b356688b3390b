// Linear systems and factorizations: tril, cholesky, solve,
// triangular_solve, inv. Each kernel copies every matrix of the batch into
// a column-major buffer (inputs may be any strided view, and LAPACK is
// column-major), calls LAPACK, and copies the result out.
//
// Gradients (Giles 2008; Murray 2016 for Cholesky; as in PyTorch's
// derivatives.yaml) are written with the builders of this file and
// ops/ops.h, so they are differentiable again.
#include "ops/linalg.h"

#include <numeric>

#include "core/onnx_lowering.h"
#include "ops/linalg_util.h"

namespace xgrad {

namespace {

using G = std::vector<Var>;
using namespace linalg;

// ---- type inference -----------------------------------------------------------

TensorType infer_tril(const std::vector<TensorType>& in, const Attrs&) {
  require_matrix(in[0], "the input");
  return in[0];
}

TensorType infer_square(const std::vector<TensorType>& in, const Attrs&) {
  square_dim(in[0], "the matrix");
  return in[0];
}

// a (..., n, n) and b (..., n, k) give x (..., n, k), batches broadcast.
TensorType infer_solve(const std::vector<TensorType>& in, const Attrs&) {
  const TensorType& a = in[0];
  const TensorType& b = in[1];
  const std::int64_t n = square_dim(a, "the matrix a");
  require_matrix(b, "the right-hand side b");
  infer::require_same_dtype(a, b);
  const std::int64_t rows = b.shape[b.shape.size() - 2];
  if (dims_differ(n, rows))
    throw ValueError("a " + to_string(a.shape) + " is " + std::to_string(n) + " x " + std::to_string(n) + ", but b " +
                     to_string(b.shape) + " has " + std::to_string(rows) + " rows");
  Shape out = broadcast_batch(a.shape, b.shape);
  out.push_back(known_dim(n, rows));
  out.push_back(b.shape.back());
  return {a.dtype, out};
}

// ---- kernels --------------------------------------------------------------------

void check_square_at_run_time(const Tensor& a) {
  if (a.shape()[a.ndim() - 2] != a.shape().back())
    throw ValueError("expects square matrices, got shape " + to_string(a.shape()));
}

void check_rows_at_run_time(const Tensor& a, const Tensor& b) {
  if (b.shape()[b.ndim() - 2] != a.shape().back())
    throw ValueError("a " + to_string(a.shape()) + " and b " + to_string(b.shape()) + " disagree on the number of rows");
}

void tril_kernel(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const Tensor& x = *in[0];
  const std::int64_t k = attrs.get_int("k");
  kernels::dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    for_each_matrix<2>(batch_of(out.shape()), {&out, &x}, {2, 2}, [&](std::int64_t, const auto& at) {
      const Mat<T> o = matrix_at<T>(out, at[0]);
      const Mat<T> s = matrix_at<T>(x, at[1]);
      for (std::int64_t i = 0; i < o.rows; ++i)
        for (std::int64_t j = 0; j < o.cols; ++j) o.p[i * o.rs + j * o.cs] = j - i <= k ? s.p[i * s.rs + j * s.cs] : T(0);
    });
  });
}

void cholesky_kernel(const Tensor* const* in, Tensor& out, const Attrs&) {
  const Tensor& a = *in[0];
  check_square_at_run_time(a);
  const std::int64_t n = a.shape().back();
  const lapack_int ld = leading_dim(n);
  const Shape batch = batch_of(out.shape());
  kernels::dispatch_floating(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* buf = scratch<T, 0>(n * n);
    for_each_matrix<2>(batch, {&out, &a}, {2, 2}, [&](std::int64_t k, const auto& at) {
      pack(matrix_at<T>(a, at[1]), buf, ld);
      if (const lapack_int info = lapack::potrf('L', as_lapack_int(n), buf, ld); info > 0)
        throw ValueError("the matrix is not positive definite: its leading minor of order " + std::to_string(info) +
                         " is not positive" + batch_position(k, batch));
      const Mat<T> o = matrix_at<T>(out, at[0]);
      for (std::int64_t i = 0; i < n; ++i)  // potrf leaves the strict upper triangle as it was: zero it
        for (std::int64_t j = 0; j < n; ++j) o.p[i * o.rs + j * o.cs] = j <= i ? buf[i + j * ld] : T(0);
    });
  });
}

std::string singular_message(lapack_int info, std::int64_t k, const Shape& batch) {
  return "the matrix is singular: pivot " + std::to_string(info) + " of its LU factorization is exactly zero" +
         batch_position(k, batch);
}

void solve_kernel(const Tensor* const* in, Tensor& out, const Attrs&) {
  const Tensor& a = *in[0];
  const Tensor& b = *in[1];
  check_square_at_run_time(a);
  check_rows_at_run_time(a, b);
  const std::int64_t n = a.shape().back(), nrhs = b.shape().back();
  const lapack_int ld = leading_dim(n);
  const Shape batch = batch_of(out.shape());
  kernels::dispatch_floating(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* abuf = scratch<T, 0>(n * n);
    T* bbuf = scratch<T, 1>(n * nrhs);
    lapack_int* ipiv = scratch<lapack_int, 0>(n);
    for_each_matrix<3>(batch, {&out, &a, &b}, {2, 2, 2}, [&](std::int64_t k, const auto& at) {
      pack(matrix_at<T>(a, at[1]), abuf, ld);
      pack(matrix_at<T>(b, at[2]), bbuf, ld);
      if (const lapack_int info = lapack::gesv(as_lapack_int(n), as_lapack_int(nrhs), abuf, ld, ipiv, bbuf, ld); info > 0)
        throw ValueError(singular_message(info, k, batch));
      unpack(bbuf, ld, matrix_at<T>(out, at[0]));
    });
  });
}

void inv_kernel(const Tensor* const* in, Tensor& out, const Attrs&) {
  const Tensor& a = *in[0];
  check_square_at_run_time(a);
  const std::int64_t n = a.shape().back();
  const lapack_int ld = leading_dim(n);
  const Shape batch = batch_of(out.shape());
  kernels::dispatch_floating(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* abuf = scratch<T, 0>(n * n);
    T* bbuf = scratch<T, 1>(n * n);
    lapack_int* ipiv = scratch<lapack_int, 0>(n);
    for_each_matrix<2>(batch, {&out, &a}, {2, 2}, [&](std::int64_t k, const auto& at) {
      pack(matrix_at<T>(a, at[1]), abuf, ld);
      for (std::int64_t j = 0; j < n; ++j)
        for (std::int64_t i = 0; i < n; ++i) bbuf[i + j * ld] = i == j ? T(1) : T(0);
      if (const lapack_int info = lapack::gesv(as_lapack_int(n), as_lapack_int(n), abuf, ld, ipiv, bbuf, ld); info > 0)
        throw ValueError(singular_message(info, k, batch));
      unpack(bbuf, ld, matrix_at<T>(out, at[0]));
    });
  });
}

void triangular_solve_kernel(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const Tensor& a = *in[0];
  const Tensor& b = *in[1];
  check_square_at_run_time(a);
  check_rows_at_run_time(a, b);
  const char uplo = attrs.get_int("lower") ? 'L' : 'U';
  const char trans = attrs.get_int("transpose") ? 'T' : 'N';
  const char diag = attrs.get_int("unitriangular") ? 'U' : 'N';
  const std::int64_t n = a.shape().back(), nrhs = b.shape().back();
  const lapack_int ld = leading_dim(n);
  const Shape batch = batch_of(out.shape());
  kernels::dispatch_floating(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* abuf = scratch<T, 0>(n * n);
    T* bbuf = scratch<T, 1>(n * nrhs);
    for_each_matrix<3>(batch, {&out, &a, &b}, {2, 2, 2}, [&](std::int64_t k, const auto& at) {
      pack(matrix_at<T>(a, at[1]), abuf, ld);
      pack(matrix_at<T>(b, at[2]), bbuf, ld);
      const lapack_int info =
          lapack::trtrs(uplo, trans, diag, as_lapack_int(n), as_lapack_int(nrhs), abuf, ld, bbuf, ld);
      if (info > 0)
        throw ValueError("the triangular matrix is singular: its diagonal element (" + std::to_string(info - 1) + ", " +
                         std::to_string(info - 1) + ") is zero" + batch_position(k, batch));
      unpack(bbuf, ld, matrix_at<T>(out, at[0]));
    });
  });
}

// ---- ONNX lowerings ----------------------------------------------------------------
// Opset 17 has no Cholesky or triangular solve: for a static matrix size both
// unroll into Slice / MatMul / Div steps, a column or row at a time, reading
// only the triangle the kernel reads. inv and solve use ONNX Runtime's
// contrib Inverse (domain com.microsoft, float32 and float64).

using Ints = std::vector<std::int64_t>;

// n of a (..., n, n) operand; kDynamic when neither axis is static.
std::int64_t static_n(const TensorType& t) { return known_dim(t.shape.back(), t.shape[t.shape.size() - 2]); }

std::string submatrix(OnnxLowerCtx& c, const std::string& v, std::int64_t r0, std::int64_t r1, std::int64_t c0,
                      std::int64_t c1) {
  return c.op("Slice", {v, c.ints({r0, c0}), c.ints({r1, c1}), c.ints({-2, -1})});
}

std::string row_range(OnnxLowerCtx& c, const std::string& v, std::int64_t r0, std::int64_t r1) {
  return c.op("Slice", {v, c.ints({r0}), c.ints({r1}), c.ints({-2})});
}

std::string transposed(OnnxLowerCtx& c, const std::string& v, std::size_t rank) {
  Ints perm(rank);
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[rank - 2], perm[rank - 1]);
  return c.op("Transpose", {v}, {{"perm", perm}});
}

std::string inverse(OnnxLowerCtx& c, const std::string& a) { return c.emit("Inverse", {a}, {}, 1, "com.microsoft")[0]; }

std::string concat(OnnxLowerCtx& c, const std::string& a, const std::string& b, std::int64_t axis) {
  return c.op("Concat", {a, b}, {{"axis", axis}});
}

// x with m x = b for triangular m (n static), by forward substitution when
// lower, else back substitution: one row of x at a time, reading m's
// triangle only, and its diagonal only when not unit.
std::string substitute(OnnxLowerCtx& c, const std::string& m, const std::string& b, std::int64_t n, bool lower,
                       bool unit) {
  std::string x;  // the rows solved so far, in order
  for (std::int64_t k = 0; k < n; ++k) {
    const std::int64_t i = lower ? k : n - 1 - k;
    std::string row = row_range(c, b, i, i + 1);
    if (k > 0) {
      const std::string coefs = lower ? submatrix(c, m, i, i + 1, 0, i) : submatrix(c, m, i, i + 1, i + 1, n);
      row = c.op("Sub", {row, c.op("MatMul", {coefs, x})});
    }
    if (!unit) row = c.op("Div", {row, submatrix(c, m, i, i + 1, i, i + 1)});
    x = k == 0 ? row : lower ? concat(c, x, row, -2) : concat(c, row, x, -2);
  }
  return x;
}

std::string lower_tril(OnnxLowerCtx& c) {
  const auto k = static_cast<double>(c.attrs().get_int("k"));
  return c.op("Trilu", {c.in(), c.scalar(k, DType::int64)}, {{"upper", std::int64_t{0}}});
}

// Column by column: L[j:, j] = v / sqrt(v[0]) with v = a[j:, j] - L[j:, :j] L[j, :j]^T, which reads
// only a's lower triangle, as the kernel does.
std::string lower_cholesky(OnnxLowerCtx& c) {
  const std::int64_t n = static_n(c.in_type());
  if (n == kDynamic) throw ValueError("cholesky lowers to ONNX only for a static matrix size");
  if (n == 0) return c.in();
  const std::size_t rank = c.in_type().shape.size();
  std::string l;  // the columns so far
  for (std::int64_t j = 0; j < n; ++j) {
    std::string v = submatrix(c, c.in(), j, n, j, j + 1);
    if (j > 0) {
      const std::string products = c.op("Mul", {row_range(c, l, j, n), row_range(c, l, j, j + 1)});
      v = c.op("Sub", {v, c.op("ReduceSum", {products, c.ints({-1})})});
    }
    Ints pads(2 * rank, 0);
    pads[rank - 2] = j;  // the zeros above the diagonal
    const std::string column = c.op("Pad", {c.op("Div", {v, c.op("Sqrt", {row_range(c, v, 0, 1)})}), c.ints(pads)});
    l = j == 0 ? column : concat(c, l, column, -1);
  }
  return l;
}

std::string lower_triangular_solve(OnnxLowerCtx& c) {
  const bool lower = c.attrs().get_int("lower") != 0;
  const bool transpose = c.attrs().get_int("transpose") != 0;
  const bool unit = c.attrs().get_int("unitriangular") != 0;
  const Shape& a = c.in_type(0).shape;
  const std::int64_t n = static_n(c.in_type(0));
  if (n == kDynamic || n == 0) {  // nothing to unroll: the triangle's inverse times b
    const double k = unit ? (lower ? -1 : 1) : 0;
    std::string tri = c.op("Trilu", {c.in(0), c.scalar(k, DType::int64)}, {{"upper", std::int64_t{!lower}}});
    if (unit) {
      const std::string ones = c.op("Expand", {c.scalar(1), c.op("Shape", {c.in(0)})});
      const std::string upper_ones = c.op("Trilu", {ones}, {{"upper", std::int64_t{1}}});
      tri = c.op("Add", {tri, c.op("Trilu", {upper_ones}, {{"upper", std::int64_t{0}}})});
    }
    const std::string inv = inverse(c, tri);
    return c.op("MatMul", {transpose ? transposed(c, inv, a.size()) : inv, c.in(1)});
  }
  std::string b = c.in(1);
  if (unit && a.size() > 2) {
    // x's first row is b's, which must take on a's batch dims to concatenate
    // with the others: a's corner element carries them.
    b = c.op("Expand", {b, c.op("Shape", {submatrix(c, c.in(0), 0, 1, 0, 1)})});
  }
  const std::string m = transpose ? transposed(c, c.in(0), a.size()) : c.in(0);
  return substitute(c, m, b, n, lower != transpose, unit);
}

// ---- the ops ----------------------------------------------------------------------

const OpDef& tril_op = register_op(OpDef("tril").infer(infer_tril).kernel(tril_kernel).onnx(lower_tril)
    .grad([](const GradCtx& c) { return G{tril(c.dy, c.attrs.get_int("k"))}; }));

// A = L L^T, with P = tril(L^T dL): dA = L^{-T} S L^{-1}, S = (P + tril(P, -1)^T) / 2 the
// symmetric matrix with P's lower triangle and half its diagonal (Murray 2016, PyTorch).
const OpDef& cholesky_op = register_op(OpDef("cholesky").validates_values().infer(infer_square).kernel(cholesky_kernel)
    .onnx(lower_cholesky)
    .grad([](const GradCtx& c) {
      const Var& l = c.output;
      const Var p = tril(matmul(matrix_transpose(l), c.dy));
      const Var s = 0.5 * (p + matrix_transpose(tril(p, -1)));
      const Var left = triangular_solve(l, s, true, true);  // L^{-T} S
      return G{matrix_transpose(triangular_solve(l, matrix_transpose(left), true, true))};  // (L^{-T} S) L^{-1}
    }));

// x = a^{-1} b: db = a^{-T} dx, da = -db x^T, each summed back over broadcast batch axes.
const OpDef& solve_op = register_op(OpDef("solve").validates_values().arity(2).infer(infer_solve).kernel(solve_kernel)
    .onnx([](OnnxLowerCtx& c) { return c.op("MatMul", {inverse(c, c.in(0)), c.in(1)}); })
    .grad([](const GradCtx& c) {
      const Var gb = solve(matrix_transpose(c.x(0)), c.dy);
      const Var ga = -matmul(gb, matrix_transpose(c.output));
      return G{sum_to_like(ga, c.x(0)), sum_to_like(gb, c.x(1))};
    }));

// As solve, with op(a) in place of a; the kernel reads only one triangle of a
// (and no diagonal when unitriangular), so only those elements get a gradient.
const OpDef& triangular_solve_op = register_op(OpDef("triangular_solve").validates_values().arity(2).infer(infer_solve)
    .kernel(triangular_solve_kernel).onnx(lower_triangular_solve)
    .grad([](const GradCtx& c) {
      const bool lower = c.attrs.get_int("lower") != 0;
      const bool transposed = c.attrs.get_int("transpose") != 0;
      const bool unit = c.attrs.get_int("unitriangular") != 0;
      const Var& x = c.output;
      const Var gb = triangular_solve(c.x(0), c.dy, lower, !transposed, unit);  // op(a)^{-T} dx
      const Var g_op = transposed ? -matmul(x, matrix_transpose(gb)) : -matmul(gb, matrix_transpose(x));
      const Var ga = lower ? tril(g_op, unit ? -1 : 0) : triu(g_op, unit ? 1 : 0);
      return G{sum_to_like(ga, c.x(0)), sum_to_like(gb, c.x(1))};
    }));

// y = a^{-1}: da = -y^T dy y^T.
const OpDef& inv_op = register_op(OpDef("inv").validates_values().infer(infer_square).kernel(inv_kernel)
    .onnx([](OnnxLowerCtx& c) { return inverse(c, c.in()); })
    .grad([](const GradCtx& c) {
      const Var yt = matrix_transpose(c.output);
      return G{-matmul(matmul(yt, c.dy), yt)};
    }));

}  // namespace

Var matrix_transpose(Var x) {
  const auto r = static_cast<std::int64_t>(x.shape().size());
  if (r < 2) throw ValueError("matrix_transpose: expects rank >= 2, got shape " + to_string(x.shape()));
  Axes perm;
  for (std::int64_t i = 0; i < r - 2; ++i) perm.push_back(i);
  perm.push_back(r - 1);
  perm.push_back(r - 2);
  return transpose(x, perm);
}

Var tril(Var x, std::int64_t k) { return x.graph().apply(tril_op, {x}, {{"k", k}}); }

// triu(x, k) is tril of the transpose, transposed back: views around one tril node.
Var triu(Var x, std::int64_t k) { return matrix_transpose(tril(matrix_transpose(x), -k)); }

Var cholesky(Var a) { return a.graph().apply(cholesky_op, {a}); }

Var inv(Var a) { return a.graph().apply(inv_op, {a}); }

Var solve(Var a, Var b) {
  return with_vector_rhs(b, [&](Var rhs) { return a.graph().apply(solve_op, {a, rhs}); });
}

Var triangular_solve(Var a, Var b, bool lower, bool transpose, bool unitriangular) {
  const Attrs attrs{{"lower", std::int64_t{lower}},
                    {"transpose", std::int64_t{transpose}},
                    {"unitriangular", std::int64_t{unitriangular}}};
  return with_vector_rhs(b, [&](Var rhs) { return a.graph().apply(triangular_solve_op, {a, rhs}, attrs); });
}

Var cholesky_solve(Var l, Var b) {
  return triangular_solve(l, triangular_solve(l, b, true, false), true, true);
}

}  // namespace xgrad
