// The linalg builders from C++ (ops/linalg.h): a Cholesky least-squares fit
// and its gradient, in one Program; a singular matrix as a ValueError.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "autodiff/grad.h"
#include "autodiff/program.h"
#include "ops/linalg.h"

using namespace xgrad;

namespace {
Tensor matrix(const Shape& shape, std::initializer_list<double> values) {
  Tensor t = Tensor::empty(DType::float64, shape);
  std::int64_t i = 0;
  for (double v : values) t.data<double>()[i++] = v;
  return t;
}
}  // namespace

TEST(Linalg, CholeskyNormalEquationsSolveALeastSquaresProblem) {
  Graph g;
  Var x = g.input("x", {kDynamic, 2}, DType::float64);
  Var y = g.input("y", {kDynamic, 1}, DType::float64);
  Var xt = matrix_transpose(x);
  Var l = cholesky(matmul(xt, x));
  Var w = triangular_solve(l, triangular_solve(l, matmul(xt, y)), /*lower=*/true, /*transpose=*/true);
  Var loss = sum(square(matmul(x, w) - y));
  Var gy = grad(loss, {y})[0];
  Program p = compile({w, cholesky_solve(l, matmul(xt, y)), gy});
  // y = 2 + 3 t exactly, so the fit recovers (2, 3) and the residual (hence d loss / dy) is zero.
  auto out = p.run({{"x", matrix({4, 2}, {1, 0, 1, 1, 1, 2, 1, 3})}, {"y", matrix({4, 1}, {2, 5, 8, 11})}});
  EXPECT_NEAR(out[0].data<double>()[0], 2.0, 1e-12);
  EXPECT_NEAR(out[0].data<double>()[1], 3.0, 1e-12);
  EXPECT_NEAR(out[1].data<double>()[1], 3.0, 1e-12);
  for (std::int64_t i = 0; i < 4; ++i) EXPECT_NEAR(out[2].data<double>()[i], 0.0, 1e-11);
}

TEST(Linalg, SlogdetAndInverse) {
  Graph g;
  Var a = g.input("a", {2, 2}, DType::float64);
  const Slogdet s = slogdet(a);
  Program p = compile({det(a), s.sign, s.logabsdet, inv(a)});
  auto out = p.run({{"a", matrix({2, 2}, {0, 2, 3, 1})}});  // det = -6
  EXPECT_NEAR(out[0].item(), -6.0, 1e-12);
  EXPECT_EQ(out[1].item(), -1.0);
  EXPECT_NEAR(out[2].item(), std::log(6.0), 1e-12);
  EXPECT_NEAR(out[3].data<double>()[0], -1.0 / 6.0, 1e-12);
}

TEST(Linalg, SingularMatrixIsAValueErrorNamingTheOp) {
  Graph g;
  Var a = g.input("a", {2, 2}, DType::float64);
  Program p = compile({inv(a)});
  try {
    p.run({{"a", matrix({2, 2}, {1, 2, 2, 4})}});
    FAIL() << "no exception";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("'inv'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("singular"), std::string::npos) << e.what();
  }
}
