// Least squares: x minimizing |a x - b| for a (..., m, n) with m >= n and
// full column rank. The kernel is LAPACK's SVD-based gelsd, which also
// reports the numerical rank: a rank-deficient a raises instead of
// returning one of infinitely many minimizers, because the gradient below
// (that of the normal equations) holds only at full column rank.
#include <limits>

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

// With z = (a^T a)^{-1} dx and the residual r = b - a x, differentiating the
// normal equations a^T a x = a^T b gives db = a z and da = r z^T - a z x^T.
const OpDef& lstsq_op = register_op(OpDef("lstsq").validates_values().arity(2).infer(infer_lstsq).kernel(lstsq_kernel)
    .onnx("Transpose+MatMul+com.microsoft.Inverse+MatMul")
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
