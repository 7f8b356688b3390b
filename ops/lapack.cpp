#include "ops/lapack.h"

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

// The Fortran entry points. Character arguments carry a hidden length
// argument after all the others (gfortran's convention); passing it keeps
// the calls correct whether a routine is compiled Fortran or OpenBLAS's C.
extern "C" {
using xgrad::lapack::lapack_int;
void spotrf_(const char* uplo, const lapack_int* n, float* a, const lapack_int* lda, lapack_int* info, std::size_t);
void dpotrf_(const char* uplo, const lapack_int* n, double* a, const lapack_int* lda, lapack_int* info, std::size_t);
void sgetrf_(const lapack_int* m, const lapack_int* n, float* a, const lapack_int* lda, lapack_int* ipiv, lapack_int* info);
void dgetrf_(const lapack_int* m, const lapack_int* n, double* a, const lapack_int* lda, lapack_int* ipiv, lapack_int* info);
void sgesv_(const lapack_int* n, const lapack_int* nrhs, float* a, const lapack_int* lda, lapack_int* ipiv, float* b,
            const lapack_int* ldb, lapack_int* info);
void dgesv_(const lapack_int* n, const lapack_int* nrhs, double* a, const lapack_int* lda, lapack_int* ipiv, double* b,
            const lapack_int* ldb, lapack_int* info);
void strtrs_(const char* uplo, const char* trans, const char* diag, const lapack_int* n, const lapack_int* nrhs,
             const float* a, const lapack_int* lda, float* b, const lapack_int* ldb, lapack_int* info, std::size_t,
             std::size_t, std::size_t);
void dtrtrs_(const char* uplo, const char* trans, const char* diag, const lapack_int* n, const lapack_int* nrhs,
             const double* a, const lapack_int* lda, double* b, const lapack_int* ldb, lapack_int* info, std::size_t,
             std::size_t, std::size_t);
void sgelsd_(const lapack_int* m, const lapack_int* n, const lapack_int* nrhs, float* a, const lapack_int* lda, float* b,
             const lapack_int* ldb, float* s, const float* rcond, lapack_int* rank, float* work, const lapack_int* lwork,
             lapack_int* iwork, lapack_int* info);
void dgelsd_(const lapack_int* m, const lapack_int* n, const lapack_int* nrhs, double* a, const lapack_int* lda,
             double* b, const lapack_int* ldb, double* s, const double* rcond, lapack_int* rank, double* work,
             const lapack_int* lwork, lapack_int* iwork, lapack_int* info);
}

namespace xgrad::lapack {

namespace {

lapack_int checked(lapack_int info, const char* routine) {
  if (info < 0)  // an argument LAPACK rejected: a bug on our side, not the user's data
    throw std::logic_error(std::string(routine) + ": invalid argument " + std::to_string(-info));
  return info;
}

// gelsd's work arrays, reused across calls on the same thread so that a
// Program running the op in a loop stops allocating after the first run.
template <class T>
struct GelsdWork {
  std::vector<T> s, work;
  std::vector<lapack_int> iwork;
};

template <class T, class Fn>
lapack_int gelsd_impl(Fn fn, lapack_int m, lapack_int n, lapack_int nrhs, T* a, lapack_int lda, T* b, lapack_int ldb,
                      double rcond, lapack_int& rank) {
  thread_local GelsdWork<T> w;
  w.s.resize(static_cast<std::size_t>(std::max<lapack_int>(1, std::min(m, n))));
  const T rc = static_cast<T>(rcond);
  T query = 0;
  lapack_int iquery = 0, lwork = -1, info = 0;
  fn(&m, &n, &nrhs, a, &lda, b, &ldb, w.s.data(), &rc, &rank, &query, &lwork, &iquery, &info);
  checked(info, "gelsd (workspace query)");
  lwork = std::max<lapack_int>(1, static_cast<lapack_int>(query));
  w.work.resize(static_cast<std::size_t>(lwork));
  w.iwork.resize(static_cast<std::size_t>(std::max<lapack_int>(1, iquery)));
  fn(&m, &n, &nrhs, a, &lda, b, &ldb, w.s.data(), &rc, &rank, w.work.data(), &lwork, w.iwork.data(), &info);
  return checked(info, "gelsd");
}

}  // namespace

lapack_int potrf(char uplo, lapack_int n, float* a, lapack_int lda) {
  lapack_int info = 0;
  spotrf_(&uplo, &n, a, &lda, &info, 1);
  return checked(info, "spotrf");
}
lapack_int potrf(char uplo, lapack_int n, double* a, lapack_int lda) {
  lapack_int info = 0;
  dpotrf_(&uplo, &n, a, &lda, &info, 1);
  return checked(info, "dpotrf");
}

lapack_int getrf(lapack_int m, lapack_int n, float* a, lapack_int lda, lapack_int* ipiv) {
  lapack_int info = 0;
  sgetrf_(&m, &n, a, &lda, ipiv, &info);
  return checked(info, "sgetrf");
}
lapack_int getrf(lapack_int m, lapack_int n, double* a, lapack_int lda, lapack_int* ipiv) {
  lapack_int info = 0;
  dgetrf_(&m, &n, a, &lda, ipiv, &info);
  return checked(info, "dgetrf");
}

lapack_int gesv(lapack_int n, lapack_int nrhs, float* a, lapack_int lda, lapack_int* ipiv, float* b, lapack_int ldb) {
  lapack_int info = 0;
  sgesv_(&n, &nrhs, a, &lda, ipiv, b, &ldb, &info);
  return checked(info, "sgesv");
}
lapack_int gesv(lapack_int n, lapack_int nrhs, double* a, lapack_int lda, lapack_int* ipiv, double* b, lapack_int ldb) {
  lapack_int info = 0;
  dgesv_(&n, &nrhs, a, &lda, ipiv, b, &ldb, &info);
  return checked(info, "dgesv");
}

lapack_int trtrs(char uplo, char trans, char diag, lapack_int n, lapack_int nrhs, const float* a, lapack_int lda,
                 float* b, lapack_int ldb) {
  lapack_int info = 0;
  strtrs_(&uplo, &trans, &diag, &n, &nrhs, a, &lda, b, &ldb, &info, 1, 1, 1);
  return checked(info, "strtrs");
}
lapack_int trtrs(char uplo, char trans, char diag, lapack_int n, lapack_int nrhs, const double* a, lapack_int lda,
                 double* b, lapack_int ldb) {
  lapack_int info = 0;
  dtrtrs_(&uplo, &trans, &diag, &n, &nrhs, a, &lda, b, &ldb, &info, 1, 1, 1);
  return checked(info, "dtrtrs");
}

lapack_int gelsd(lapack_int m, lapack_int n, lapack_int nrhs, float* a, lapack_int lda, float* b, lapack_int ldb,
                 double rcond, lapack_int& rank) {
  return gelsd_impl<float>(sgelsd_, m, n, nrhs, a, lda, b, ldb, rcond, rank);
}
lapack_int gelsd(lapack_int m, lapack_int n, lapack_int nrhs, double* a, lapack_int lda, double* b, lapack_int ldb,
                 double rcond, lapack_int& rank) {
  return gelsd_impl<double>(dgelsd_, m, n, nrhs, a, lda, b, ldb, rcond, rank);
}

}  // namespace xgrad::lapack
