// The C++ builders of ops/conv.h. Numerical coverage (every geometry, both
// dtypes, gradients of all orders, PyTorch parity) is in tests/python/test_conv.py.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "autodiff/grad.h"
#include "autodiff/program.h"
#include "ops/conv.h"
#include "ops/ops.h"

using namespace xgrad;

namespace {

Tensor filled(const Shape& shape, float value) { return Tensor::full(DType::float32, shape, value); }

Tensor ramp(const Shape& shape, float scale) {
  Tensor t = Tensor::empty(DType::float32, shape);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = scale * static_cast<float>(i % 7 - 3);
  return t;
}

}  // namespace

TEST(Conv, OnesKernelCountsTheInputsInsideEachPaddedWindow) {
  Graph g;
  Var x = g.input("x", {kDynamic, 1, 3, 4});
  Var w = g.param("w", filled({2, 1, 3, 3}, 1.0f));
  Var b = g.param("b", filled({2}, 0.5f));
  Program p = compile({conv2d(x, w, b, {.padding = {1, 1}})});
  Tensor y = p.run({{"x", filled({1, 1, 3, 4}, 1.0f)}})[0];
  ASSERT_EQ(y.shape(), (Shape{1, 2, 3, 4}));
  const float expected[3][4] = {{4, 6, 6, 4}, {6, 9, 9, 6}, {4, 6, 6, 4}};
  for (int c = 0; c < 2; ++c)
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 4; ++j) EXPECT_FLOAT_EQ(y.data<float>()[(c * 3 + i) * 4 + j], expected[i][j] + 0.5f);
}

TEST(Conv, GradientsAreTheAdjointOps) {
  Graph g;
  Var x = g.input("x", {kDynamic, 2, 6, 7});
  Var w = g.input("w", {4, 1, 3, 3});
  const Conv2dParams p{.stride = {2, 3}, .groups = 2};
  Var y = conv2d(x, w, p);
  EXPECT_EQ(y.shape(), (Shape{kDynamic, 4, 2, 2}));
  auto grads = grad(sum(y), {x, w});
  EXPECT_EQ(grads[0]->op()->name(), "conv2d_grad_input");
  EXPECT_EQ(grads[1]->op()->name(), "conv2d_grad_weight");
  EXPECT_EQ(grads[0].shape(), x.shape());  // the leftover row and column come from `like`
  EXPECT_EQ(grads[1].shape(), w.shape());
}

TEST(Conv, ShapeErrorsNameTheOpAndShapes) {
  Graph g;
  Var x = g.input("x", {2, 3, 5, 5});
  try {
    conv2d(x, g.input("w", {4, 2, 3, 3}));
    FAIL() << "no error";
  } catch (const ValueError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("conv2d"), std::string::npos) << msg;
    EXPECT_NE(msg.find("(2, 3, 5, 5)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("(4, 2, 3, 3)"), std::string::npos) << msg;
  }
  EXPECT_THROW(conv2d(x, g.input("w2", {4, 3, 3, 3}), {.groups = 2}), ValueError);
  EXPECT_THROW(max_pool2d(x, {.kernel = {2, 2}, .padding = {2, 0}}), ValueError);
  EXPECT_THROW(avg_pool2d(x, {.kernel = {6, 6}}), ValueError);
}

TEST(Pool, StrideDefaultsToTheKernel) {
  Graph g;
  Var x = g.input("x", {1, 1, 4, 4});
  Var m = max_pool2d(x, {.kernel = {2, 2}});
  EXPECT_EQ(m.shape(), (Shape{1, 1, 2, 2}));
  EXPECT_EQ(m->attrs().get_ints("stride"), (std::vector<std::int64_t>{2, 2}));
  Tensor in = Tensor::empty(DType::float32, {1, 1, 4, 4});
  for (int i = 0; i < 16; ++i) in.data<float>()[i] = static_cast<float>(i);
  auto out = compile({m, avg_pool2d(x, {.kernel = {2, 2}, .stride = Pair{2, 2}})}).run({{"x", in}});
  const float want_max[4] = {5, 7, 13, 15}, want_avg[4] = {2.5f, 4.5f, 10.5f, 12.5f};
  for (int i = 0; i < 4; ++i) {
    EXPECT_FLOAT_EQ(out[0].data<float>()[i], want_max[i]);
    EXPECT_FLOAT_EQ(out[1].data<float>()[i], want_avg[i]);
  }
}

// Each thread has its own im2col scratch; runs of different batch sizes at
// once must not see each other's columns.
TEST(Conv, ConcurrentRunsOfDifferentBatchSizesAgree) {
  Graph g;
  Var x = g.input("x", {kDynamic, 3, 9, 9});
  Var w = g.param("w", ramp({5, 3, 3, 3}, 0.1f));
  Var y = max_pool2d(conv2d(x, w, {.padding = {1, 1}}), {.kernel = {2, 2}});
  auto grads = grad(sum(y * y), {x, w});
  Program p = compile({y, grads[0], grads[1]});
  const std::int64_t batches[4] = {1, 6, 3, 8};
  std::vector<std::vector<Tensor>> serial;
  for (auto n : batches) serial.push_back(p.run({{"x", ramp({n, 3, 9, 9}, 0.25f)}}));
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 20; ++rep) {
        auto out = p.run({{"x", ramp({batches[t], 3, 9, 9}, 0.25f)}});
        for (std::size_t k = 0; k < out.size(); ++k)
          for (std::int64_t i = 0; i < out[k].numel(); ++i) {
            // BLAS may split work differently under load, so allow rounding-level differences.
            const float a = out[k].data<float>()[i], b = serial[t][k].data<float>()[i];
            mismatches[t] += std::abs(a - b) > 1e-5f * std::abs(b) + 1e-5f;
          }
      }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(mismatches[t], 0) << "batch " << batches[t];
}
