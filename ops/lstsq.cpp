// Least squares: x minimizing |a x - b| for a (..., m, n) with m >= n and
// full column rank. The kernel is LAPACK's SVD-based gelsd, which also
// reports the numerical rank: a rank-deficient a raises instead of
// returning one of infinitely many minimizers, because the gradient below
// (that of the normal equations) holds only at full column rank.
#include <limits>
#include <numeric>

#include "core/onnx_lowering.h"
#include "ops/linalg.h"
#include "ops/linalg_util.h"

namespace xgrad {

namespace {

using G = std::vector<Var>;
using namespace linalg;

TensorType infer_lstsq(const std::vector<TensorType>& in, const Attrs&) {
  const TensorType& a = in[0];
  const TensorType& b = in[1];
  require_matrix(a, "the matrix a");
  require_matrix(b, "the right-hand side b");
  infer::require_same_dtype(a, b);
  const std::int64_t m = a.shape[a.shape.size() - 2], n = a.shape.back(), rows = b.shape[b.shape.size() - 2];
  if (dims_differ(m, rows))
    throw ValueError("a " + to_string(a.shape) + " has " + std::to_string(m) + " rows, but b " + to_string(b.shape) +
                     " has " + std::to_string(rows));
  if (m != kDynamic && n != kDynamic && m < n)
    throw ValueError("a " + to_string(a.shape) + " has fewer rows than columns; lstsq solves full-column-rank "
                     "(m >= n) problems only");
  Shape out = broadcast_batch(a.shape, b.shape);
  out.push_back(n);
  out.push_back(b.shape.back());
  return {a.dtype, out};
}

void lstsq_kernel(const Tensor* const* in, Tensor& out, const Attrs&) {
  const Tensor& a = *in[0];
  const Tensor& b = *in[1];
  const std::int64_t m = a.shape()[a.ndim() - 2], n = a.shape().back(), nrhs = b.shape().back();
  if (b.shape()[b.ndim() - 2] != m || m < n)
    throw ValueError("expects a (..., m, n) with m >= n and b (..., m, k), got " + to_string(a.shape()) + " and " +
                     to_string(b.shape()));
  const lapack_int lda = leading_dim(m);
  const Shape batch = batch_of(out.shape());
  kernels::dispatch_floating(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    // numpy's default cut-off for singular values that count towards the rank.
    const double rcond = std::numeric_limits<T>::epsilon() * static_cast<double>(m);
    T* abuf = scratch<T, 0>(m * n);
    T* bbuf = scratch<T, 1>(m * nrhs);
    for_each_matrix<3>(batch, {&out, &a, &b}, {2, 2, 2}, [&](std::int64_t k, const auto& at) {
      pack(matrix_at<T>(a, at[1]), abuf, lda);
      pack(matrix_at<T>(b, at[2]), bbuf, lda);
      lapack_int rank = 0;
      const lapack_int info =
          lapack::gelsd(as_lapack_int(m), as_lapack_int(n), as_lapack_int(nrhs), abuf, lda, bbuf, lda, rcond, rank);
      if (info > 0) throw ValueError("the SVD of a did not converge" + batch_position(k, batch));
      if (rank < n)
        throw ValueError("a is rank-deficient: numerical rank " + std::to_string(rank) + " < " + std::to_string(n) +
                         " columns; lstsq needs full column rank" + batch_position(k, batch));
      unpack(bbuf, lda, matrix_at<T>(out, at[0]));  // the solution is the top n rows
    });
  });
}

// ---- ONNX -----------------------------------------------------------------------
// With n static: a = QR by classical Gram-Schmidt run twice per column (which
// keeps Q orthonormal to working precision), then R x = Q^T b by back
// substitution, unrolled over the n columns. With n unknown: the normal
// equations through ONNX Runtime's contrib Inverse, which square a's
// condition number.

using Ints = std::vector<std::int64_t>;

std::string transposed(OnnxLowerCtx& c, const std::string& v, std::size_t rank) {
  Ints perm(rank);
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[rank - 2], perm[rank - 1]);
  return c.op("Transpose", {v}, {{"perm", perm}});
}

std::string submatrix(OnnxLowerCtx& c, const std::string& v, std::int64_t r0, std::int64_t r1, std::int64_t c0,
                      std::int64_t c1) {
  return c.op("Slice", {v, c.ints({r0, c0}), c.ints({r1, c1}), c.ints({-2, -1})});
}

std::string concat(OnnxLowerCtx& c, const std::string& a, const std::string& b, std::int64_t axis) {
  return c.op("Concat", {a, b}, {{"axis", axis}});
}

// x with r x = y for an upper triangular r, from the last row up.
std::string back_substitute(OnnxLowerCtx& c, const std::string& r, const std::string& y, std::int64_t n) {
  std::string x;  // rows i + 1 .. n - 1
  for (std::int64_t i = n - 1; i >= 0; --i) {
    std::string row = c.op("Slice", {y, c.ints({i}), c.ints({i + 1}), c.ints({-2})});
    if (i < n - 1) row = c.op("Sub", {row, c.op("MatMul", {submatrix(c, r, i, i + 1, i + 1, n), x})});
    row = c.op("Div", {row, submatrix(c, r, i, i + 1, i, i + 1)});
    x = i == n - 1 ? row : concat(c, row, x, -2);
  }
  return x;
}

std::string lower_lstsq(OnnxLowerCtx& c) {
  const std::size_t rank = c.in_type(0).shape.size();
  const std::int64_t n = c.in_type(0).shape.back();
  const std::string& a = c.in(0);
  if (n == kDynamic || n == 0) {
    const std::string at = transposed(c, a, rank);
    const std::string gram_inverse = c.emit("Inverse", {c.op("MatMul", {at, a})}, {}, 1, "com.microsoft")[0];
    return c.op("MatMul", {gram_inverse, c.op("MatMul", {at, c.in(1)})});
  }
  std::string q, r;  // Q's and R's columns so far
  for (std::int64_t j = 0; j < n; ++j) {
    std::string v = c.op("Slice", {a, c.ints({j}), c.ints({j + 1}), c.ints({-1})});
    std::string h;  // v's coefficients on the columns of q
    if (j > 0) {
      const std::string qt = transposed(c, q, rank);
      for (int pass = 0; pass < 2; ++pass) {
        const std::string coefs = c.op("MatMul", {qt, v});
        v = c.op("Sub", {v, c.op("MatMul", {q, coefs})});
        h = pass == 0 ? coefs : c.op("Add", {h, coefs});
      }
    }
    const std::string norm = c.op("Sqrt", {c.op("ReduceSum", {c.op("Mul", {v, v}), c.ints({-2})})});
    const std::string qj = c.op("Div", {v, norm});
    Ints pads(2 * rank, 0);
    pads[2 * rank - 2] = n - 1 - j;  // the zeros below R's diagonal
    const std::string rj = c.op("Pad", {j == 0 ? norm : concat(c, h, norm, -2), c.ints(pads)});
    q = j == 0 ? qj : concat(c, q, qj, -1);
    r = j == 0 ? rj : concat(c, r, rj, -1);
  }
  return back_substitute(c, r, c.op("MatMul", {transposed(c, q, rank), c.in(1)}), n);
}

// With z = (a^T a)^{-1} dx and the residual r = b - a x, differentiating the
// normal equations a^T a x = a^T b gives db = a z and da = r z^T - a z x^T.
const OpDef& lstsq_op = register_op(OpDef("lstsq").validates_values().arity(2).infer(infer_lstsq).kernel(lstsq_kernel)
    .onnx(lower_lstsq)
    .grad([](const GradCtx& c) {
      const Var& a = c.x(0);
      const Var& b = c.x(1);
      const Var& x = c.output;
      const Var z = solve(matmul(matrix_transpose(a), a), c.dy);
      const Var gb = matmul(a, z);
      const Var r = b - matmul(a, x);
      const Var ga = matmul(r, matrix_transpose(z)) - matmul(gb, matrix_transpose(x));
      return G{sum_to_like(ga, a), sum_to_like(gb, b)};
    }));

}  // namespace

Var lstsq(Var a, Var b) {
  return with_vector_rhs(b, [&](Var rhs) { return a.graph().apply(lstsq_op, {a, rhs}); });
}

}  // namespace xgrad
