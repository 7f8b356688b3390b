// Determinants: det, logabsdet and det_sign (numpy's slogdet is the last
// two), all from one LU factorization per matrix. A singular matrix is not
// an error here: det is 0, sign 0 and logabsdet -inf, as in numpy.
#include <cmath>
#include <limits>

#include "core/onnx_lowering.h"
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

// ---- ONNX -----------------------------------------------------------------------
// Det, except in float64, which ONNX Runtime's Det has no kernel for: there,
// for a static matrix size, the kernel's LU factorization with partial
// pivoting (the first largest |entry| of the column, as getrf picks) is
// unrolled into standard ops.

std::string row_range(OnnxLowerCtx& c, const std::string& v, std::int64_t r0, std::int64_t r1) {
  return c.op("Slice", {v, c.ints({r0}), c.ints({r1}), c.ints({-2})});
}

std::string column_range(OnnxLowerCtx& c, const std::string& v, std::int64_t c0, std::int64_t c1) {
  return c.op("Slice", {v, c.ints({c0}), c.ints({c1}), c.ints({-1})});
}

struct LuPivots {
  std::string pivots;  // (..., 1, n): U's diagonal
  std::string sign;    // (..., 1, 1): the sign of the row permutation
};

std::int64_t matrix_size(const OnnxLowerCtx& c) {
  const Shape& a = c.in_type().shape;
  return known_dim(a.back(), a[a.size() - 2]);
}

bool use_det(const OnnxLowerCtx& c) {
  return c.out_type().dtype == DType::float32 || matrix_size(c) == kDynamic || matrix_size(c) == 0;
}

LuPivots lu_pivots(OnnxLowerCtx& c) {
  const std::int64_t n = matrix_size(c);
  const DType dtype = c.out_type().dtype;
  std::string m = c.in();  // the block left to eliminate, (..., size, size)
  std::vector<std::string> pivots;
  std::string sign;
  for (std::int64_t size = n; size > 0; --size) {
    const std::string p = c.op("ArgMax", {c.op("Abs", {column_range(c, m, 0, 1)})}, {{"axis", std::int64_t{-2}}});
    Tensor rows = Tensor::empty(DType::int64, {size, 1});
    for (std::int64_t i = 0; i < size; ++i) rows.data<std::int64_t>()[i] = i;
    const std::string at_p = c.op("Equal", {c.constant(rows), p});
    const std::string pivot_row = c.op("ReduceSum", {c.op("Mul", {m, c.cast(at_p, dtype)}), c.ints({-2})});
    const std::string pivot = column_range(c, pivot_row, 0, 1);
    pivots.push_back(pivot);
    const std::string flip = c.op("Where", {c.op("Equal", {p, c.scalar(0, DType::int64)}), c.scalar(1), c.scalar(-1)});
    sign = sign.empty() ? flip : c.op("Mul", {sign, flip});
    if (size == 1) break;
    // The swap: row p gets the first row, and the first row (now the pivot row) drops out.
    const std::string rest = row_range(c, c.op("Where", {at_p, row_range(c, m, 0, 1), m}), 1, size);
    // A zero pivot has zeros below it: nothing to eliminate, and the determinant is 0, as in the kernel.
    const std::string divisor = c.op("Where", {c.op("Equal", {pivot, c.scalar(0)}), c.scalar(1), pivot});
    const std::string factors = c.op("Div", {column_range(c, rest, 0, 1), divisor});
    m = c.op("Sub", {column_range(c, rest, 1, size), c.op("Mul", {factors, column_range(c, pivot_row, 1, size)})});
  }
  return {c.op("Concat", pivots, {{"axis", std::int64_t{-1}}}), sign};
}

// The product of the pivots and the permutation's sign, each first mapped by per_entry if given.
std::string signed_product(OnnxLowerCtx& c, const LuPivots& lu, const char* per_entry) {
  std::string v = c.op("Concat", {lu.pivots, lu.sign}, {{"axis", std::int64_t{-1}}});
  if (per_entry) v = c.op(per_entry, {v});
  return c.op("ReduceProd", {v}, {{"axes", std::vector<std::int64_t>{-2, -1}}, {"keepdims", std::int64_t{0}}});
}

std::string lower_det(OnnxLowerCtx& c) {
  if (use_det(c)) return c.op("Det", {c.in()});
  return signed_product(c, lu_pivots(c), nullptr);
}

std::string lower_logabsdet(OnnxLowerCtx& c) {
  if (use_det(c)) return c.op("Log", {c.op("Abs", {c.op("Det", {c.in()})})});
  const std::string logs = c.op("Log", {c.op("Abs", {lu_pivots(c).pivots})});
  return c.op("ReduceSum", {logs, c.ints({-2, -1})}, {{"keepdims", std::int64_t{0}}});
}

std::string lower_det_sign(OnnxLowerCtx& c) {
  if (use_det(c)) return c.op("Sign", {c.op("Det", {c.in()})});
  return signed_product(c, lu_pivots(c), "Sign");
}

// d det(a) = det(a) tr(a^{-1} da): the gradient is det(a) a^{-T}, so it needs a nonsingular a
// (inv raises otherwise), unlike the value.
const OpDef& det_op = register_op(OpDef("det").infer(infer_det).kernel(det_kernel).onnx(lower_det)
    .grad([](const GradCtx& c) { return G{per_matrix(c.dy * c.output) * matrix_transpose(inv(c.x()))}; }));

const OpDef& logabsdet_op = register_op(OpDef("logabsdet").infer(infer_det).kernel(logabsdet_kernel)
    .onnx(lower_logabsdet)
    .grad([](const GradCtx& c) { return G{per_matrix(c.dy) * matrix_transpose(inv(c.x()))}; }));

const OpDef& det_sign_op = register_op(OpDef("det_sign").infer(infer_det).kernel(det_sign_kernel).onnx(lower_det_sign)
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
