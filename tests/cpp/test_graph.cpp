#include <gtest/gtest.h>

#include "autodiff/grad.h"
#include "autodiff/program.h"
#include "ops/ops.h"

using namespace xgrad;

TEST(Graph, ShapeErrorsNameOpNodeAndShapes) {
  Graph g;
  Var a = g.input("a", {kDynamic, 3});
  Var b = g.input("b", {4});
  try {
    add(a, b);
    FAIL() << "expected a ValueError";
  } catch (const ValueError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("op 'add'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("node 'add_"), std::string::npos) << msg;
    EXPECT_NE(msg.find("(None, 3)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("(4,)"), std::string::npos) << msg;
  }
  EXPECT_THROW(matmul(a, g.input("m", {4, 2})), ValueError);
  EXPECT_THROW(add(a, g.input("d", {3}, DType::float64)), TypeError);
  EXPECT_THROW(g.input("a", {1}), ValueError);  // duplicate name
}

TEST(Graph, SymbolicBatchDimension) {
  Graph g;
  Var x = g.input("x", {kDynamic, 10});
  Var w = g.param("w", Tensor::zeros(DType::float32, {10, 2}));
  Var y = matmul(x, w);
  EXPECT_EQ(y.shape(), (Shape{kDynamic, 2}));
  EXPECT_EQ(sum(y, {0}).shape(), (Shape{2}));
  EXPECT_EQ(reshape(y, {-1}).shape(), (Shape{kDynamic}));
}

TEST(Graph, VarsFromAnotherGraphAreRefused) {
  Graph g1, g2;
  Var a = g1.input("a", {2});
  Var b = g2.input("b", {2});
  EXPECT_THROW(add(a, b), ValueError);
}

TEST(Graph, DeepChainsNeedNoRecursion) {
  // 50,000 nodes deep: recursion over depth would overflow the stack.
  Graph g;
  Var x = g.input("x", {4}, DType::float64);
  Var y = x;
  for (int i = 0; i < 50000; ++i) y = y * 1.0;
  Var loss = sum(y);
  Var gx = grad(loss, {x})[0];
  Program p = compile({loss, gx});
  Tensor X = Tensor::full(DType::float64, {4}, 2.0);
  auto out = p.run({{"x", X}});
  EXPECT_DOUBLE_EQ(out[0].item(), 8.0);
  EXPECT_DOUBLE_EQ(out[1].data<double>()[3], 1.0);
}

TEST(Graph, DotOutputListsNodesAndEdges) {
  Graph g;
  Var x = g.input("x", {2});
  Var y = tanh(x);
  const std::string dot = g.to_dot();
  EXPECT_NE(dot.find("digraph"), std::string::npos);
  EXPECT_NE(dot.find("n" + std::to_string(x->id()) + " -> n" + std::to_string(y->id())), std::string::npos);
}

TEST(Graph, DotOfOutputsHoldsOnlyWhatTheyDependOn) {
  Graph g;
  Var x = g.input("x", {2});
  Var y = tanh(x);
  Var unrelated = exp(g.input("say \"hi\"", {3}));
  const std::string dot = g.to_dot({y});
  EXPECT_NE(dot.find("n" + std::to_string(y->id()) + " [shape=box"), std::string::npos);
  EXPECT_NE(dot.find("penwidth=2"), std::string::npos);  // the output is drawn bold
  // A generated op name ("tanh_1") is left out of the label; it would only repeat the op.
  EXPECT_NE(dot.find("label=\"tanh\\nfloat32(2,)\""), std::string::npos);
  EXPECT_EQ(dot.find("n" + std::to_string(unrelated->id()) + " "), std::string::npos);
  // A quote in a name is escaped, so the DOT text stays well formed.
  EXPECT_NE(g.to_dot().find("say \\\"hi\\\""), std::string::npos);
  Graph other;
  EXPECT_THROW(other.to_dot({y}), ValueError);
}

TEST(Grad, MissingDependencyIsAnErrorUnlessAllowed) {
  Graph g;
  Var x = g.input("x", {3}, DType::float64);
  Var z = g.param("z", Tensor::zeros(DType::float64, {2}));
  Var loss = sum(exp(x));
  EXPECT_THROW(grad(loss, {z}), ValueError);
  Var gz = grad(loss, {z}, true)[0];
  Program p = compile({gz});
  auto out = p.run({});
  EXPECT_EQ(out[0].shape(), (Shape{2}));
  EXPECT_EQ(out[0].data<double>()[1], 0.0);
  EXPECT_THROW(grad(exp(x), {x}), ValueError);  // not a scalar
}

TEST(Grad, EveryRegisteredOpHasAGradientOrAReason) {
  for (const OpDef* op : registered_ops()) {
    EXPECT_TRUE(op->differentiable() || !op->non_differentiable_reason().empty()) << op->name();
    EXPECT_TRUE(static_cast<bool>(op->lowering())) << op->name() << " has no ONNX lowering";
  }
}

#include "autodiff/gradcheck.h"

TEST(Gradcheck, AcceptsCorrectAndRejectsWrongGradients) {
  Tensor a = Tensor::empty(DType::float64, {3, 4}), b = Tensor::empty(DType::float64, {4, 2});
  for (int i = 0; i < 12; ++i) a.data<double>()[i] = 0.1 * i - 0.5;
  for (int i = 0; i < 8; ++i) b.data<double>()[i] = 0.3 - 0.07 * i;
  EXPECT_TRUE(gradcheck([](const std::vector<Var>& v) { return tanh(matmul(v[0], v[1])); }, {a, b}).ok);
  const GradcheckResult wrong = gradcheck([](const std::vector<Var>& v) { return v[0] * stop_gradient(v[0]); }, {a});
  EXPECT_FALSE(wrong.ok);
  EXPECT_NE(wrong.message.find("input 0"), std::string::npos) << wrong.message;
}
