// xgrad::distributed in a world of one (the mpirun runs are the ctest example_distributed_digits and
// tests/python/test_distributed.py): init is idempotent, allreduce is the identity with the identity gradient,
// minimize(loss, Reduce::mean) trains exactly as minimize(loss), and print(program) lists the buckets.
#include <gtest/gtest.h>

#include <cmath>

#include "autodiff/grad.h"
#include "autodiff/optim.h"
#include "autodiff/program.h"
#include "distributed/distributed.h"
#include "ops/ops.h"

using namespace xgrad;

TEST(Distributed, AWorldOfOne) {
  distributed::init();
  distributed::init();
  EXPECT_TRUE(distributed::is_initialized());
  EXPECT_EQ(distributed::rank(), 0);
  EXPECT_EQ(distributed::world_size(), 1);
  EXPECT_EQ(distributed::is_available(), distributed::why_unavailable().empty());
  distributed::barrier();
  EXPECT_THROW(distributed::parse_reduce("max"), ValueError);
}

TEST(Distributed, AllreduceIsTheIdentityWithItsGradient) {
  Graph g;
  Var x = g.input("x", {2, 3}, DType::float64);
  Var y = distributed::allreduce(tanh(x), distributed::Reduce::mean);
  Var gx = grad(sum(y * y), {x})[0];
  Program p = compile({y, gx});
  Tensor X = Tensor::full(DType::float64, {2, 3}, 0.5);
  const auto out = p.run({{"x", X}});
  const double th = std::tanh(0.5);
  for (int i = 0; i < 6; ++i) {
    EXPECT_DOUBLE_EQ(out[0].data<double>()[i], th);
    EXPECT_NEAR(out[1].data<double>()[i], 2 * th * (1 - th * th), 1e-15);
  }
}

TEST(Distributed, MinimizeWithAllreduceTrainsAsWithout) {
  std::vector<std::vector<double>> finals;
  for (bool reduce : {false, true}) {
    Graph g;
    Var x = g.input("x", {kDynamic, 3}, DType::float64);
    Var w = g.param("w", Tensor::full(DType::float64, {3, 2}, 0.1));
    Var b = g.param("b", Tensor::zeros(DType::float64, {2}));
    Var loss = mean(square(tanh(matmul(x, w) + b) - 0.3));
    optim::Options options;
    options.lr = 0.05;
    optim::Adam adam({w, b}, options);
    Program step = compile({loss}, reduce ? adam.minimize(loss, distributed::Reduce::mean, 16) : adam.minimize(loss));
    if (reduce) {
      const std::string text = step.to_string();
      EXPECT_NE(text.find("over processes on the communication thread"), std::string::npos) << text;
    }
    Tensor X = Tensor::full(DType::float64, {4, 3}, 0.7);
    for (int i = 0; i < 5; ++i) step.run({{"x", X}});
    std::vector<double> values(w->value().data<double>(), w->value().data<double>() + 6);
    values.push_back(b->value().data<double>()[0]);
    finals.push_back(values);
  }
  EXPECT_EQ(finals[0], finals[1]);
}
