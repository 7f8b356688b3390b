// Linear-algebra builders (ops/linalg.cpp, ops/linalg_det.cpp, ops/lstsq.cpp).
//
// Matrices are the last two axes; leading axes are a batch that broadcasts
// between operands like numpy.linalg. Kernels run LAPACK per matrix, in
// float32 and float64; a singular or non-positive-definite matrix raises a
// ValueError naming the op. Gradients are graph nodes built from these same
// builders, so they differentiate again.
#pragma once
#include <cstdint>

#include "ops/ops.h"

namespace xgrad {

// The lower-triangular L with a = L L^T. Only a's lower triangle is read;
// the gradient is the symmetric one (as in PyTorch), so for a symmetric
// input built from free parameters it is the exact derivative.
Var cholesky(Var a);

// x with a x = b. b is (..., n, k), or (n,) for a single right-hand side
// (numpy 2 rule: only a 1-D b is a vector).
Var solve(Var a, Var b);

// x with op(a) x = b, op(a) = a or a^T, a triangular. Only the `lower` (or
// upper) triangle of a is read, and with unitriangular its diagonal is taken
// as ones; the gradient for a is masked the same way.
Var triangular_solve(Var a, Var b, bool lower = true, bool transpose = false, bool unitriangular = false);

// x with l l^T x = b, for l from cholesky (two triangular solves).
Var cholesky_solve(Var l, Var b);

Var inv(Var a);

// The least-squares solution of a x = b for a (..., m, n) with m >= n and
// full column rank (a rank-deficient a raises a ValueError); b as in solve.
// The gradient is that of the normal equations x = (a^T a)^{-1} a^T b.
Var lstsq(Var a, Var b);

// Determinants of square matrices (batch shape out). det is 0 for a singular
// matrix, as in numpy; its gradient, det * a^{-T}, needs a nonsingular a.
Var det(Var a);
Var logabsdet(Var a);  // log |det a|; -inf when singular
Var det_sign(Var a);   // -1, 0 or +1 (zero gradient)
struct Slogdet {
  Var sign;
  Var logabsdet;
};
Slogdet slogdet(Var a);  // numpy.linalg.slogdet: det = sign * exp(logabsdet)

// Elements on and below (tril) or above (triu) the k-th diagonal; zeros elsewhere.
Var tril(Var x, std::int64_t k = 0);
Var triu(Var x, std::int64_t k = 0);

// The last two axes swapped (a view).
Var matrix_transpose(Var x);

}  // namespace xgrad
