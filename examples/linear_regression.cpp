// Linear regression trained by gradient descent through the C++ API, no
// Python: build the graph, compile one training step (forward, backward and
// the SGD update in one program), run it. Checks the fit against the
// closed-form least-squares solution and exits non-zero if it is off.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "autodiff/optim.h"
#include "autodiff/program.h"
#include "ops/ops.h"

using namespace xgrad;

namespace {

// Solves the (p x p) system A z = r by Gaussian elimination with partial pivoting.
std::vector<double> solve(std::vector<double> a, std::vector<double> r, int p) {
  for (int c = 0; c < p; ++c) {
    int piv = c;
    for (int i = c + 1; i < p; ++i)
      if (std::fabs(a[i * p + c]) > std::fabs(a[piv * p + c])) piv = i;
    for (int j = 0; j < p; ++j) std::swap(a[c * p + j], a[piv * p + j]);
    std::swap(r[c], r[piv]);
    for (int i = c + 1; i < p; ++i) {
      const double f = a[i * p + c] / a[c * p + c];
      for (int j = c; j < p; ++j) a[i * p + j] -= f * a[c * p + j];
      r[i] -= f * r[c];
    }
  }
  std::vector<double> z(p);
  for (int i = p - 1; i >= 0; --i) {
    double s = r[i];
    for (int j = i + 1; j < p; ++j) s -= a[i * p + j] * z[j];
    z[i] = s / a[i * p + i];
  }
  return z;
}

}  // namespace

int main() {
  const int n = 2000, p = 6;
  std::mt19937 rng(42);
  std::normal_distribution<double> normal(0.0, 1.0);
  const double true_w[p] = {1.5, -2.0, 0.5, 3.0, 0.0, -1.0};
  const double true_b = 0.7;

  Tensor X = Tensor::empty(DType::float64, {n, p});
  Tensor T = Tensor::empty(DType::float64, {n, 1});
  double* xp = X.data<double>();
  double* tp = T.data<double>();
  for (int i = 0; i < n; ++i) {
    double y = true_b + 0.1 * normal(rng);
    for (int j = 0; j < p; ++j) {
      xp[i * p + j] = normal(rng);
      y += true_w[j] * xp[i * p + j];
    }
    tp[i] = y;
  }

  // The model: y = x @ w + b, loss = mean((y - t)^2).
  Graph g;
  Var x = g.input("x", {kDynamic, p}, DType::float64);
  Var t = g.input("t", {kDynamic, 1}, DType::float64);
  Var w = g.param("w", Tensor::zeros(DType::float64, {p, 1}));
  Var b = g.param("b", Tensor::zeros(DType::float64, {1}));
  Var loss = mean(square(matmul(x, w) + b - t));
  optim::Options options;
  options.lr = 0.1;
  optim::SGD sgd({w, b}, options);
  Program step = compile({loss}, sgd.minimize(loss));  // each run: forward, backward, update

  double final_loss = 0;
  for (int epoch = 0; epoch <= 200; ++epoch) {
    final_loss = step.run({{"x", X}, {"t", T}})[0].item();  // the loss before this run's update
    if (epoch % 40 == 0) std::printf("epoch %3d  mse %.6f\n", epoch, final_loss);
  }

  // Closed form on [X, 1]: (A^T A) z = A^T t.
  const int q = p + 1;
  std::vector<double> ata(q * q, 0.0), att(q, 0.0);
  for (int i = 0; i < n; ++i) {
    double row[q];
    for (int j = 0; j < p; ++j) row[j] = xp[i * p + j];
    row[p] = 1.0;
    for (int a = 0; a < q; ++a) {
      att[a] += row[a] * tp[i];
      for (int c = 0; c < q; ++c) ata[a * q + c] += row[a] * row[c];
    }
  }
  const std::vector<double> z = solve(ata, att, q);
  double exact_mse = 0;
  for (int i = 0; i < n; ++i) {
    double y = z[p];
    for (int j = 0; j < p; ++j) y += z[j] * xp[i * p + j];
    exact_mse += (y - tp[i]) * (y - tp[i]) / n;
  }

  std::printf("\n%-6s %10s %10s %10s\n", "coef", "xgrad", "exact", "true");
  for (int j = 0; j < p; ++j)
    std::printf("w[%d]   %10.5f %10.5f %10.5f\n", j, w->value().data<double>()[j], z[j], true_w[j]);
  std::printf("b      %10.5f %10.5f %10.5f\n", b->value().data<double>()[0], z[p], true_b);
  std::printf("\nmse: xgrad %.8f, closed form %.8f\n", final_loss, exact_mse);
  const bool ok = std::fabs(final_loss - exact_mse) <= 1e-3 * exact_mse;
  std::printf(ok ? "OK: within 0.1%% of the closed-form fit\n" : "FAIL: not within 0.1%% of the closed-form fit\n");
  return ok ? 0 : 1;
}
