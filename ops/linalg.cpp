// Linear systems and factorizations: tril, cholesky, solve,
// triangular_solve, inv. Each kernel copies every matrix of the batch into
// a column-major buffer (inputs may be any strided view, and LAPACK is
// column-major), calls LAPACK, and copies the result out.
//
// Gradients (Giles 2008; Murray 2016 for Cholesky; as in PyTorch's
// derivatives.yaml) are written with the builders of this file and
// ops/ops.h, so they are differentiable again.
#include "ops/linalg.h"

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

// ---- the ops ----------------------------------------------------------------------

const OpDef& tril_op = register_op(OpDef("tril").infer(infer_tril).kernel(tril_kernel).onnx("Trilu")
    .grad([](const GradCtx& c) { return G{tril(c.dy, c.attrs.get_int("k"))}; }));

// A = L L^T, with P = tril(L^T dL): dA = L^{-T} S L^{-1}, S = (P + tril(P, -1)^T) / 2 the
// symmetric matrix with P's lower triangle and half its diagonal (Murray 2016, PyTorch).
const OpDef& cholesky_op = register_op(OpDef("cholesky").validates_values().infer(infer_square).kernel(cholesky_kernel)
    .onnx("unsupported:Cholesky")  // opset 17 has no Cholesky; an exporter must refuse it
    .grad([](const GradCtx& c) {
      const Var& l = c.output;
      const Var p = tril(matmul(matrix_transpose(l), c.dy));
      const Var s = 0.5 * (p + matrix_transpose(tril(p, -1)));
      const Var left = triangular_solve(l, s, true, true);  // L^{-T} S
      return G{matrix_transpose(triangular_solve(l, matrix_transpose(left), true, true))};  // (L^{-T} S) L^{-1}
    }));

// x = a^{-1} b: db = a^{-T} dx, da = -db x^T, each summed back over broadcast batch axes.
const OpDef& solve_op = register_op(OpDef("solve").validates_values().arity(2).infer(infer_solve).kernel(solve_kernel)
    .onnx("com.microsoft.Inverse+MatMul")
    .grad([](const GradCtx& c) {
      const Var gb = solve(matrix_transpose(c.x(0)), c.dy);
      const Var ga = -matmul(gb, matrix_transpose(c.output));
      return G{sum_to_like(ga, c.x(0)), sum_to_like(gb, c.x(1))};
    }));

// As solve, with op(a) in place of a; the kernel reads only one triangle of a
// (and no diagonal when unitriangular), so only those elements get a gradient.
const OpDef& triangular_solve_op = register_op(OpDef("triangular_solve").validates_values().arity(2).infer(infer_solve)
    .kernel(triangular_solve_kernel).onnx("Trilu+com.microsoft.Inverse+MatMul")
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
const OpDef& inv_op = register_op(OpDef("inv").validates_values().infer(infer_square).kernel(inv_kernel).onnx("com.microsoft.Inverse")
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
