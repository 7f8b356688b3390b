// Determinants: det, logabsdet and det_sign (numpy's slogdet is the last
// two), all from one LU factorization per matrix. A singular matrix is not
// an error here: det is 0, sign 0 and logabsdet -inf, as in numpy.
#include <cmath>
#include <limits>

#include "ops/linalg.h"
#include "ops/linalg_util.h"

namespace xgrad {

namespace {

using G = std::vector<Var>;
using namespace linalg;

TensorType infer_det(const std::vector<TensorType>& in, const Attrs&) {
  square_dim(in[0], "the matrix");
  return {in[0].dtype, batch_of(in[0].shape)};
}

struct LuSummary {
  double sign;     // -1, 0 or 1
  double logabs;   // log |det|; -inf when singular
  double product;  // det itself, multiplied out in double
};

// Factors every matrix of a's batch and hands fn(summary) the value to store at out's element.
template <class Store>
void for_each_lu(const Tensor& a, Tensor& out, Store&& store) {
  if (a.shape()[a.ndim() - 2] != a.shape().back())
    throw ValueError("expects square matrices, got shape " + to_string(a.shape()));
  const std::int64_t n = a.shape().back();
  const lapack_int ld = leading_dim(n);
  kernels::dispatch_floating(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* buf = scratch<T, 0>(n * n);
    lapack_int* ipiv = scratch<lapack_int, 0>(n);
    T* op = static_cast<T*>(out.raw_data());
    for_each_matrix<2>(out.shape(), {&out, &a}, {0, 2}, [&](std::int64_t, const auto& at) {
      pack(matrix_at<T>(a, at[1]), buf, ld);
      LuSummary s{1.0, 0.0, 1.0};
      if (lapack::getrf(as_lapack_int(n), as_lapack_int(n), buf, ld, ipiv) > 0) {
        s = {0.0, -std::numeric_limits<double>::infinity(), 0.0};  // an exact zero pivot
      } else {
        for (std::int64_t i = 0; i < n; ++i) {
          const double u = buf[i + i * ld];
          const bool swapped = ipiv[i] != i + 1;  // each row interchange flips the sign
          if (swapped != (u < 0)) s.sign = -s.sign;
          s.logabs += std::log(std::abs(u));
          s.product *= swapped ? -u : u;
        }
      }
      op[at[0]] = static_cast<T>(store(s));
    });
  });
}

void det_kernel(const Tensor* const* in, Tensor& out, const Attrs&) {
  for_each_lu(*in[0], out, [](const LuSummary& s) { return s.product; });
}

void logabsdet_kernel(const Tensor* const* in, Tensor& out, const Attrs&) {
  for_each_lu(*in[0], out, [](const LuSummary& s) { return s.logabs; });
}

void det_sign_kernel(const Tensor* const* in, Tensor& out, const Attrs&) {
  for_each_lu(*in[0], out, [](const LuSummary& s) { return s.sign; });
}

// dy of shape (...) against matrices (..., n, n).
Var per_matrix(Var dy) { return unsqueeze(dy, {-2, -1}); }

// d det(a) = det(a) tr(a^{-1} da): the gradient is det(a) a^{-T}, so it needs a nonsingular a
// (inv raises otherwise), unlike the value.
const OpDef& det_op = register_op(OpDef("det").infer(infer_det).kernel(det_kernel).onnx("Det")
    .grad([](const GradCtx& c) { return G{per_matrix(c.dy * c.output) * matrix_transpose(inv(c.x()))}; }));

const OpDef& logabsdet_op = register_op(OpDef("logabsdet").infer(infer_det).kernel(logabsdet_kernel)
    .onnx("Det+Abs+Log")
    .grad([](const GradCtx& c) { return G{per_matrix(c.dy) * matrix_transpose(inv(c.x()))}; }));

const OpDef& det_sign_op = register_op(OpDef("det_sign").infer(infer_det).kernel(det_sign_kernel).onnx("Det+Sign")
    .grad([](const GradCtx&) { return G{Var()}; }));  // piecewise constant, like sign

}  // namespace

Var det(Var a) { return a.graph().apply(det_op, {a}); }
Var logabsdet(Var a) { return a.graph().apply(logabsdet_op, {a}); }
Var det_sign(Var a) { return a.graph().apply(det_sign_op, {a}); }
Slogdet slogdet(Var a) {
  Var l = logabsdet(a);  // first, so a shape error names the op slogdet is mostly about
  return {det_sign(a), l};
}

}  // namespace xgrad
