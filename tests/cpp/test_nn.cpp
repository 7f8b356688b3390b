// xgrad::init and xgrad::nn: initializer fans, bounds and seeding; an MLP
// trained with a compiled Adam step; the per-run train/eval switch of
// Dropout and BatchNorm.
#include <gtest/gtest.h>

#include <cmath>

#include "autodiff/init.h"
#include "autodiff/nn.h"
#include "autodiff/optim.h"
#include "autodiff/program.h"
#include "ops/ops.h"

using namespace xgrad;

namespace {
double max_abs(const Tensor& t) {
  double m = 0;
  for (std::int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::abs(static_cast<double>(t.data<float>()[i])));
  return m;
}

bool same(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return false;
  for (std::int64_t i = 0; i < a.numel(); ++i)
    if (a.data<float>()[i] != b.data<float>()[i]) return false;
  return true;
}

// XOR-like data: label 1 when x and y have the same sign, points kept away from the axes.
void xor_data(std::int64_t n, std::uint64_t seed, Tensor& X, Tensor& T) {
  init::Generator rng(seed);
  X = init::uniform({n, 2}, rng, -1.0, 1.0);
  T = Tensor::empty(DType::int64, {n});
  float* x = X.data<float>();
  for (std::int64_t i = 0; i < n; ++i) {
    for (int j = 0; j < 2; ++j) x[2 * i + j] += x[2 * i + j] < 0 ? -0.1f : 0.1f;
    T.data<std::int64_t>()[i] = (x[2 * i] > 0) == (x[2 * i + 1] > 0) ? 1 : 0;
  }
}
}  // namespace

TEST(Init, FansAndGainsFollowTorch) {
  EXPECT_EQ(init::fan_in_and_fan_out({16, 8, 3, 3}), (std::pair<std::int64_t, std::int64_t>{72, 144}));
  EXPECT_EQ(init::fan_in_and_fan_out({10, 4}), (std::pair<std::int64_t, std::int64_t>{4, 10}));
  EXPECT_THROW(init::fan_in_and_fan_out({5}), ValueError);
  EXPECT_DOUBLE_EQ(init::calculate_gain("relu"), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(init::calculate_gain("tanh"), 5.0 / 3.0);
  EXPECT_DOUBLE_EQ(init::calculate_gain("leaky_relu", std::sqrt(5.0)), std::sqrt(2.0 / 6.0));
  EXPECT_THROW(init::calculate_gain("swish"), ValueError);
}

TEST(Init, BoundsAndSpreads) {
  const Tensor k = init::kaiming_uniform({64, 32}, 1, 0.0, init::FanMode::fan_in, "relu");
  const double bound = std::sqrt(2.0) * std::sqrt(3.0 / 32.0);
  EXPECT_LE(max_abs(k), bound);
  EXPECT_GT(max_abs(k), 0.95 * bound);
  const Tensor xu = init::xavier_uniform({30, 20}, 2, 2.0);
  EXPECT_LE(max_abs(xu), 2.0 * std::sqrt(6.0 / 50.0));
  // kaiming_uniform's fan_out mode uses shape[0] * receptive field.
  EXPECT_LE(max_abs(init::kaiming_uniform({4, 100, 3, 3}, 3, 0.0, init::FanMode::fan_out, "linear")),
            std::sqrt(3.0 / 36.0));
  const Tensor xn = init::xavier_normal({200, 300}, 4, 1.0, DType::float64);
  double sum = 0, sq = 0;
  for (std::int64_t i = 0; i < xn.numel(); ++i) {
    sum += xn.data<double>()[i];
    sq += xn.data<double>()[i] * xn.data<double>()[i];
  }
  const double n = static_cast<double>(xn.numel()), mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.002);
  EXPECT_NEAR(sd, std::sqrt(2.0 / 500.0), 0.002);
  EXPECT_EQ(init::constant({2, 3}, 1.5).data<float>()[5], 1.5f);
  EXPECT_THROW(init::normal({2}, 0, 0.0, 1.0, DType::int64), TypeError);
  EXPECT_THROW(init::by_name("orthogonal"), ValueError);
}

TEST(Init, SeedsAreReproducible) {
  EXPECT_TRUE(same(init::normal({50}, 7), init::normal({50}, 7)));
  EXPECT_FALSE(same(init::normal({50}, 7), init::normal({50}, 8)));
  // A generator continues: two draws differ, and a fresh generator of the same seed repeats them.
  init::Generator a(11), b(11);
  const Tensor a1 = init::uniform({20}, a), a2 = init::uniform({20}, a);
  EXPECT_FALSE(same(a1, a2));
  EXPECT_TRUE(same(a1, init::uniform({20}, b)));
  EXPECT_TRUE(same(a2, init::uniform({20}, b)));
  // float32 is float64 rounded once.
  const Tensor d = init::normal({9}, 5, 0.0, 1.0, DType::float64);
  const Tensor f = init::normal({9}, 5);
  for (int i = 0; i < 9; ++i) EXPECT_EQ(f.data<float>()[i], static_cast<float>(d.data<double>()[i]));
  // Unseeded draws differ.
  EXPECT_FALSE(same(init::uniform({20}, {}), init::uniform({20}, {})));
}

TEST(NN, LayersNameParamsAsPython) {
  Graph g;
  nn::Linear a(g, 3, 4, {.seed = 0});
  nn::Linear b(g, 4, 2, {.bias = false, .seed = 0});
  EXPECT_EQ(a.weight.name(), "linear0.weight");
  EXPECT_EQ(a.bias.name(), "linear0.bias");
  EXPECT_EQ(b.weight.name(), "linear1.weight");
  EXPECT_EQ(a.weight.shape(), (Shape{4, 3}));
  EXPECT_LE(max_abs(a.weight->value()), 1.0 / std::sqrt(3.0));  // torch's default bound 1/sqrt(fan_in)
  EXPECT_LE(max_abs(a.bias->value()), 1.0 / std::sqrt(3.0));
  EXPECT_EQ(b.params().size(), 1u);
  nn::MLP mlp(g, {3, 8, 8, 2}, {.dropout = 0.5, .seed = 1});
  EXPECT_EQ(mlp.name(), "mlp0");
  EXPECT_EQ(mlp.params().size(), 6u);
  EXPECT_EQ(mlp.params()[4].name(), "mlp0.2.weight");
  EXPECT_EQ(mlp.size(), 3u + 2u + 2u);  // 3 Linear, 2 relu, 2 dropout
  // The same seed gives the same weights in another graph.
  Graph h;
  nn::MLP again(h, {3, 8, 8, 2}, {.dropout = 0.5, .seed = 1});
  EXPECT_TRUE(same(again.params()[2]->value(), mlp.params()[2]->value()));
  EXPECT_THROW(nn::MLP(g, {3, 2}, {.activation = "swish"}), ValueError);
  EXPECT_THROW(nn::MLP(g, {3, 4, 2}, {.activations = {"relu"}}), ValueError);

  nn::Conv2d conv(g, 4, 6, {3, 3}, {.padding = {1, 1}, .groups = 2, .seed = 2});
  EXPECT_EQ(conv.weight.shape(), (Shape{6, 2, 3, 3}));
  EXPECT_LE(max_abs(conv.bias->value()), 1.0 / std::sqrt(18.0));
  Var img = g.input("img", {kDynamic, 4, 5, 5});
  EXPECT_EQ(conv(img).shape(), (Shape{kDynamic, 6, 5, 5}));
  nn::LayerNorm ln(g, {6, 5, 5});
  EXPECT_EQ(ln.weight.name(), "ln0.weight");
  EXPECT_EQ(ln(conv(img)).shape(), (Shape{kDynamic, 6, 5, 5}));
  EXPECT_THROW(ln(img), ValueError);
  nn::Embedding emb(g, 10, 3, {.name = "tok", .seed = 3});
  EXPECT_EQ(emb(g.input("ids", {kDynamic, 7}, DType::int64)).shape(), (Shape{kDynamic, 7, 3}));
  EXPECT_EQ(emb.weight.name(), "tok.weight");
  // A node named "training" that is not a bool scalar input is refused.
  Graph bad;
  bad.input("training", {1});
  EXPECT_THROW(nn::training_flag(bad), ValueError);
}

TEST(NN, MLPTrainsWithCompiledAdam) {
  Graph g;
  Var x = g.input("x", {kDynamic, 2});
  Var t = g.input("t", {kDynamic}, DType::int64);
  nn::MLP model(g, {2, 32, 32, 2}, {.activation = "tanh", .dropout = 0.05, .name = "mlp", .seed = 0});
  Var logits = model(x);
  Var loss = cross_entropy(logits, t);
  optim::Options options;
  options.lr = 0.02;
  optim::Adam adam(model.params(), options);
  ParamUpdates updates = adam.minimize(loss);
  for (const auto& u : model.updates()) updates.push_back(u);
  Program step = compile({loss}, updates);
  Program predict = compile({argmax(logits, 1)});

  Tensor X, T, Xtest, Ttest;
  xor_data(256, 1, X, T);
  xor_data(512, 2, Xtest, Ttest);
  double first = 0, last = 0;
  for (int i = 0; i < 400; ++i) {
    last = step.run({{"x", X}, {"t", T}, {"training", nn::training_value(true)}})[0].item();
    if (i == 0) first = last;
  }
  EXPECT_LT(last, 0.3 * first);
  const Tensor pred = predict.run({{"x", Xtest}, {"training", nn::training_value(false)}})[0];
  int correct = 0;
  for (std::int64_t i = 0; i < 512; ++i) correct += pred.data<std::int64_t>()[i] == Ttest.data<std::int64_t>()[i];
  EXPECT_GT(correct / 512.0, 0.93) << correct << " of 512";
}

TEST(NN, DropoutIsIdentityInEvalMode) {
  Graph g;
  Var x = g.input("x", {4, 100});
  nn::Dropout drop(0.5, {.seed = 3});
  Program p = compile({drop(x)});
  const Tensor X = init::uniform({4, 100}, 9, 1.0, 2.0);
  EXPECT_TRUE(same(p.run({{"x", X}, {"training", nn::training_value(false)}})[0], X));
  const Tensor y = p.run({{"x", X}, {"training", nn::training_value(true)}})[0];
  int zeros = 0;
  for (std::int64_t i = 0; i < 400; ++i) {
    const float v = y.data<float>()[i];
    if (v == 0.0f) ++zeros;
    else EXPECT_FLOAT_EQ(v, 2.0f * X.data<float>()[i]);
  }
  EXPECT_GT(zeros, 140);
  EXPECT_LT(zeros, 260);
  // A fixed eval-mode layer adds nothing, not even the "training" input.
  Graph h;
  Var hx = h.input("x", {3});
  EXPECT_EQ(nn::Dropout(0.5, {.training = false})(hx), hx);
  EXPECT_FALSE(h.find("training"));
}

TEST(NN, BatchNormRunningStatisticsFollowTheSwitch) {
  Graph g;
  Var x = g.input("x", {kDynamic, 2}, DType::float64);
  nn::BatchNorm bn(g, 2, {.dtype = DType::float64});
  Var y = bn(x);
  ASSERT_EQ(bn.buffers().size(), 2u);
  ASSERT_EQ(bn.params().size(), 2u);
  ASSERT_EQ(bn.updates().size(), 2u);
  Program p = compile({y}, bn.updates());
  Tensor X = Tensor::empty(DType::float64, {4, 2});
  const double col0[] = {1, 2, 3, 6}, col1[] = {-1, -1, 1, 1};  // means 3, 0; unbiased variances 14/3, 4/3
  for (int i = 0; i < 4; ++i) {
    X.data<double>()[2 * i] = col0[i];
    X.data<double>()[2 * i + 1] = col1[i];
  }
  const Tensor train_out = p.run({{"x", X}, {"training", nn::training_value(true)}})[0];
  const double* rm = bn.running_mean->value().data<double>();
  const double* rv = bn.running_var->value().data<double>();
  EXPECT_NEAR(rm[0], 0.3, 1e-12);
  EXPECT_NEAR(rm[1], 0.0, 1e-12);
  EXPECT_NEAR(rv[0], 0.9 + 0.1 * 14.0 / 3.0, 1e-12);
  EXPECT_NEAR(rv[1], 0.9 + 0.1 * 4.0 / 3.0, 1e-12);
  // Training normalizes with the batch statistics (population variance 3.5 for column 0).
  EXPECT_NEAR(train_out.data<double>()[0], (1 - 3) / std::sqrt(3.5 + 1e-5), 1e-9);

  // Eval uses the running statistics and leaves them unchanged.
  const double m0 = rm[0], v0 = rv[0];
  const Tensor eval_out = p.run({{"x", X}, {"training", nn::training_value(false)}})[0];
  EXPECT_NEAR(eval_out.data<double>()[0], (1 - m0) / std::sqrt(v0 + 1e-5), 1e-9);
  EXPECT_EQ(rm[0], m0);
  EXPECT_EQ(rv[0], v0);

  // A layer fixed in training mode records the same updates without the switch.
  Graph h;
  Var hx = h.input("x", {kDynamic, 2}, DType::float64);
  nn::BatchNorm fixed(h, 2, {.dtype = DType::float64, .training = true});
  Var hy = fixed(hx);  // before updates(): the call records them (argument order is unspecified)
  Program q = compile({hy}, fixed.updates());
  q.run({{"x", X}});
  EXPECT_FALSE(h.find("training"));
  EXPECT_NEAR(fixed.running_var->value().data<double>()[0], 0.9 + 0.1 * 14.0 / 3.0, 1e-12);
}
