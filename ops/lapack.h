// LAPACK routines (OpenBLAS ships them) for the linalg ops, overloaded on
// float and double. Kept in a file of their own, like ops/gemm.h: the
// Fortran declarations stay out of every other translation unit.
//
// Matrices are column-major with a leading dimension, as LAPACK wants them;
// each function returns LAPACK's `info` (0: success, > 0: a numerical failure
// the caller turns into a ValueError; < 0 is an argument bug and throws here).
#pragma once
#include <cstdint>

// Internal to the library: not exported from libxgrad.so.
#pragma GCC visibility push(hidden)

namespace xgrad::lapack {

using lapack_int = int;  // OpenBLAS as shipped by Debian uses 32-bit LAPACK integers

// Cholesky factor of the `uplo` ('L' or 'U') triangle, in place.
lapack_int potrf(char uplo, lapack_int n, float* a, lapack_int lda);
lapack_int potrf(char uplo, lapack_int n, double* a, lapack_int lda);

// LU factorization with partial pivoting, in place; ipiv is 1-based.
lapack_int getrf(lapack_int m, lapack_int n, float* a, lapack_int lda, lapack_int* ipiv);
lapack_int getrf(lapack_int m, lapack_int n, double* a, lapack_int lda, lapack_int* ipiv);

// A X = B by LU; B is overwritten by X and A by its factors.
lapack_int gesv(lapack_int n, lapack_int nrhs, float* a, lapack_int lda, lapack_int* ipiv, float* b, lapack_int ldb);
lapack_int gesv(lapack_int n, lapack_int nrhs, double* a, lapack_int lda, lapack_int* ipiv, double* b, lapack_int ldb);

// op(A) X = B for triangular A; trans 'N' or 'T', diag 'N' or 'U' (unit diagonal).
lapack_int trtrs(char uplo, char trans, char diag, lapack_int n, lapack_int nrhs, const float* a, lapack_int lda,
                 float* b, lapack_int ldb);
lapack_int trtrs(char uplo, char trans, char diag, lapack_int n, lapack_int nrhs, const double* a, lapack_int lda,
                 double* b, lapack_int ldb);

// Minimum-norm least squares by SVD (divide and conquer). B (ldb >= max(m, n)) gets the solution in its
// first n rows; `rank` the effective rank at relative threshold rcond. Work space is allocated inside.
lapack_int gelsd(lapack_int m, lapack_int n, lapack_int nrhs, float* a, lapack_int lda, float* b, lapack_int ldb,
                 double rcond, lapack_int& rank);
lapack_int gelsd(lapack_int m, lapack_int n, lapack_int nrhs, double* a, lapack_int lda, double* b, lapack_int ldb,
                 double rcond, lapack_int& rank);

}  // namespace xgrad::lapack
#pragma GCC visibility pop
