#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "autodiff/grad.h"
#include "autodiff/program.h"
#include "ops/ops.h"

using namespace xgrad;

namespace {
Tensor range_tensor(const Shape& shape, double start = 0.0) {
  Tensor t = Tensor::empty(DType::float32, shape);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(start + i);
  return t;
}
}  // namespace

TEST(Program, RunsWithDifferentBatchSizes) {
  Graph g;
  Var x = g.input("x", {kDynamic, 3});
  Var w = g.param("w", range_tensor({3, 2}));
  Program p = compile({sum(matmul(x, w), {1})});
  for (std::int64_t batch : {1, 5, 2, 5}) {
    auto out = p.run({{"x", range_tensor({batch, 3})}});
    ASSERT_EQ(out[0].shape(), (Shape{batch}));
    // row r of x is (3r, 3r+1, 3r+2); w columns sum to (1, 5, 9)
    for (std::int64_t r = 0; r < batch; ++r)
      EXPECT_FLOAT_EQ(out[0].data<float>()[r], 3 * r * 1 + (3 * r + 1) * 5 + (3 * r + 2) * 9);
  }
}

TEST(Program, ShapesComputedFromTheFeedsResolveWhileItPlans) {
  Graph g;
  Var x = g.input("x", {kDynamic, 3, 4});
  Tensor rest = Tensor::full(DType::int64, {1}, -1.0);
  // x.view(x.size(0), -1), and zeros(x.size(0)) as arange's length
  Var batch = slice(shape_of(x), {0}, {1}, {1});
  Var flat = reshape(x, concat({batch, g.constant(rest)}, 0));
  Var positions = arange(g.scalar(0, DType::int64), reshape(batch, Shape{}), g.scalar(1, DType::int64));
  EXPECT_EQ(flat.shape(), (Shape{kDynamic, kDynamic}));
  Program p = compile({sum(flat, {1}), astype(positions, DType::float32)});
  for (std::int64_t n : {2, 5, 2}) {
    auto out = p.run({{"x", range_tensor({n, 3, 4})}});
    ASSERT_EQ(out[0].shape(), (Shape{n}));
    ASSERT_EQ(out[1].shape(), (Shape{n}));
    for (std::int64_t r = 0; r < n; ++r) {
      EXPECT_FLOAT_EQ(out[0].data<float>()[r], static_cast<float>(12 * 12 * r + 66));  // 12r..12r+11
      EXPECT_FLOAT_EQ(out[1].data<float>()[r], static_cast<float>(r));
    }
  }
  // The shape arithmetic ran while planning: the printed plan says so.
  EXPECT_NE(p.to_string().find("computed while planning"), std::string::npos);
}

TEST(Program, AShapeFedAsDataIsRefusedNamingIt) {
  Graph g;
  Var x = g.input("x", {kDynamic, 4});
  Var target = g.input("target", {2}, DType::int64);
  Program p = compile({reshape(x, target)});
  Tensor t = Tensor::full(DType::int64, {2}, 2.0);
  try {
    p.run({{"x", range_tensor({1, 4})}, {"target", t}});
    FAIL() << "expected a ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("input 'target' sets the shape"), std::string::npos) << e.what();
  }
}

TEST(Program, OutputsAreFreshAndNotOverwrittenByLaterRuns) {
  Graph g;
  Var x = g.input("x", {4});
  Program p = compile({x * 2.0, reshape(x, {2, 2})});
  auto first = p.run({{"x", range_tensor({4})}});
  auto second = p.run({{"x", range_tensor({4}, 10.0)}});
  EXPECT_FLOAT_EQ(first[0].data<float>()[3], 6.0f);
  EXPECT_FLOAT_EQ(second[0].data<float>()[3], 26.0f);
  EXPECT_NE(first[0].storage().get(), second[0].storage().get());
  // An output that is a view of a feed is copied, so the caller owns it.
  Tensor feed = range_tensor({4});
  auto third = p.run({{"x", feed}});
  EXPECT_NE(third[1].storage().get(), feed.storage().get());
}

TEST(Program, ParamUpdatesAreSeenWithoutRecompiling) {
  Graph g;
  Var w = g.param("w", range_tensor({2}));
  Program p = compile({sum(w)});
  EXPECT_FLOAT_EQ(p.run({})[0].item(), 1.0);
  w->value().data<float>()[0] = 10.0f;
  EXPECT_FLOAT_EQ(p.run({})[0].item(), 11.0);
  w->set_value(Tensor::full(DType::float32, {2}, 3.0));
  EXPECT_FLOAT_EQ(p.run({})[0].item(), 6.0);
  EXPECT_THROW(w->set_value(Tensor::zeros(DType::float32, {3})), ValueError);
}

TEST(Program, FeedErrorsAreClear) {
  Graph g;
  Var x = g.input("x", {kDynamic, 3});
  g.input("unused", {1});
  Program p = compile({sum(x)});
  EXPECT_THROW(p.run({}), ValueError);                                                      // missing
  EXPECT_THROW(p.run({{"x", range_tensor({2, 4})}}), ValueError);                           // shape
  EXPECT_THROW(p.run({{"x", Tensor::zeros(DType::float64, {2, 3})}}), TypeError);           // dtype
  EXPECT_THROW(p.run({{"x", range_tensor({2, 3})}, {"nope", range_tensor({1})}}), ValueError);  // unknown
  // Another input of the graph is checked and then ignored.
  EXPECT_FLOAT_EQ(p.run({{"x", range_tensor({2, 3})}, {"unused", range_tensor({1})}})[0].item(), 15.0f);
  EXPECT_THROW(p.run({{"x", range_tensor({2, 3})}, {"unused", range_tensor({2})}}), ValueError);
}

TEST(Program, TransposedMatmulOperandsAreViewsNotCopies) {
  Graph g;
  Var a = g.input("a", {3, 2}, DType::float64);
  Var b = g.input("b", {3, 4}, DType::float64);
  Program p = compile({matmul(transpose(a), b)});
  const std::string plan_before = p.to_string();
  Tensor A = Tensor::empty(DType::float64, {3, 2}), B = Tensor::empty(DType::float64, {3, 4});
  for (int i = 0; i < 6; ++i) A.data<double>()[i] = i + 1;
  for (int i = 0; i < 12; ++i) B.data<double>()[i] = i % 5;
  auto out = p.run({{"a", A}, {"b", B}});
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 4; ++c) {
      double expect = 0;
      for (int k = 0; k < 3; ++k) expect += A.data<double>()[k * 2 + r] * B.data<double>()[k * 4 + c];
      EXPECT_DOUBLE_EQ(out[0].data<double>()[r * 4 + c], expect);
    }
  const std::string plan = p.to_string();
  EXPECT_NE(plan.find("transpose_2 (2, 3) view"), std::string::npos) << plan;
}

TEST(Program, ConcurrentRunsGiveTheSingleThreadedResult) {
  Graph g;
  Var x = g.input("x", {kDynamic, 8});
  Var w = g.param("w", range_tensor({8, 8}));
  Var y = sum(tanh(matmul(x, w) * 0.001), {1});
  Program p = compile({y});
  Tensor X = range_tensor({16, 8});
  const Tensor ref = p.run({{"x", X}})[0];
  std::vector<std::thread> threads;
  std::vector<int> mismatches(8, 0);
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        Tensor out = p.run({{"x", X}})[0];
        for (std::int64_t j = 0; j < out.numel(); ++j) mismatches[t] += out.data<float>()[j] != ref.data<float>()[j];
      }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(mismatches[t], 0);
}

namespace {
// A test-only op whose kernel records where its input lives.
const void* probed_address = nullptr;
const OpDef& probe_op = register_op(
    OpDef("test_probe")
        .infer([](const std::vector<TensorType>& in, const Attrs&) { return in[0]; })
        .kernel([](const Tensor* const* in, Tensor& out, const Attrs&) {
          probed_address = in[0]->raw_data();
          out.copy_from(*in[0]);
        })
        .not_differentiable("test op")
        .onnx("Identity"));
}  // namespace

TEST(Program, ContiguousFeedsAndParamsAreReadInPlace) {
  Graph g;
  Var x = g.input("x", {kDynamic, 3});
  Var w = g.param("w", range_tensor({2, 3}));
  Program p = compile({g.apply(probe_op, {x})});
  Tensor X = range_tensor({4, 3});
  p.run({{"x", X}});
  EXPECT_EQ(probed_address, X.raw_data());  // the kernel read the caller's memory
  Program q = compile({g.apply(probe_op, {w})});
  q.run({});
  EXPECT_EQ(probed_address, w->value().raw_data());
  // A non-contiguous feed is made contiguous once, not refused.
  Tensor Xt = range_tensor({3, 4}).transpose();
  auto out = p.run({{"x", Xt}});
  EXPECT_NE(probed_address, Xt.raw_data());
  EXPECT_FLOAT_EQ(out[0].data<float>()[1], 4.0f);
}

#include "autodiff/optim.h"

TEST(Optim, AdamCompiledIntoTheStepFitsALine) {
  Graph g;
  Var x = g.input("x", {kDynamic, 1}, DType::float64);
  Var t = g.input("t", {kDynamic, 1}, DType::float64);
  Var w = g.param("w", Tensor::zeros(DType::float64, {1, 1}));
  Var b = g.param("b", Tensor::zeros(DType::float64, {1}));
  Var loss = mean(square(matmul(x, w) + b - t));
  optim::Options options;
  options.lr = 0.05;
  optim::Adam adam({w, b}, options);
  Program step = compile({loss}, adam.minimize(loss));
  Tensor X = Tensor::empty(DType::float64, {20, 1}), T = Tensor::empty(DType::float64, {20, 1});
  for (int i = 0; i < 20; ++i) {
    X.data<double>()[i] = i / 10.0;
    T.data<double>()[i] = 3.0 * i / 10.0 - 1.0;
  }
  double last = 0;
  for (int i = 0; i < 2000; ++i) last = step.run({{"x", X}, {"t", T}})[0].item();
  EXPECT_LT(last, 1e-8);
  EXPECT_NEAR(w->value().item(), 3.0, 1e-4);
  EXPECT_NEAR(b->value().item(), -1.0, 1e-4);
  EXPECT_EQ(adam.state().size(), 5u);  // step count, and m and v for each param
  EXPECT_NEAR(g.find("adam.step")->value().item(), 2000.0, 0.0);
}

TEST(Program, FeedsFromCallerBuffersAreReadWithoutCopies) {
  Graph g;
  Var x = g.input("x", {kDynamic, 3});
  Var y = x * 2.0f;
  Program p = compile({y, sum(x)});
  const std::vector<float> rows{1, 2, 3, 4, 5, 6};              // a service's request buffer, const
  const Tensor feed = Tensor::from_buffer(rows.data(), {2, 3});
  EXPECT_EQ(feed.raw_data(), static_cast<const void*>(rows.data()));  // a view, not a copy
  EXPECT_EQ(feed.dtype(), DType::float32);
  const auto out = p.run({{"x", feed}});
  EXPECT_FLOAT_EQ(out[0].data<float>()[5], 12.0f);
  EXPECT_FLOAT_EQ(out[1].item(), 21.0f);
  // An owner keeps shared memory alive after the caller lets go.
  auto owned = std::make_shared<std::vector<double>>(std::vector<double>{0.5, 1.5});
  Tensor kept = Tensor::from_buffer(owned->data(), {2}, owned);
  owned.reset();
  EXPECT_DOUBLE_EQ(kept.data<double>()[1], 1.5);
  EXPECT_THROW(Tensor::from_buffer(static_cast<float*>(nullptr), {2}), ValueError);
}

TEST(Program, CheckFiniteNamesTheFirstBadNodeAndLeavesParamsAlone) {
  Graph g;
  const Var x = g.input("x", {3}, DType::float64);
  Tensor start = Tensor::empty(DType::float64, {3});
  for (int i = 0; i < 3; ++i) start.data<double>()[i] = 1.0;
  const Var w = g.param("w", start);
  const Var y = sum(log(mul(x, w)));
  const Var dw = grad(y, {w})[0];
  CompileOptions watch;
  watch.check_finite = true;
  Program step = compile({y}, {{w, sub(w, dw)}}, watch);
  Tensor bad = Tensor::empty(DType::float64, {3});
  bad.data<double>()[0] = 1.0;
  bad.data<double>()[1] = -2.0;  // log of a negative number: NaN
  bad.data<double>()[2] = 3.0;
  try {
    step.run({{"x", bad}});
    FAIL() << "a NaN went through";
  } catch (const RuntimeError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("op 'log'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("nan at [1] (1 of 3 values are not finite)"), std::string::npos) << msg;
  }
  for (int i = 0; i < 3; ++i) EXPECT_EQ(w->value().data<double>()[i], 1.0);
  // Without the watch the same run goes through (NaN in, NaN out, as in numpy) and writes the param.
  Program quiet = compile({y}, {{w, sub(w, dw)}});
  EXPECT_TRUE(std::isnan(quiet.run({{"x", bad}})[0].item()));
  EXPECT_NE(w->value().data<double>()[0], 1.0);
}
