// ONNX export and import from C++: a service builds or loads a model without Python.
#include <gtest/gtest.h>

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include "autodiff/grad.h"
#include "autodiff/program.h"
#include "io/onnx.h"
#include "ops/ops.h"

using namespace xgrad;

namespace {

Tensor ramp(DType dtype, const Shape& shape, double scale) {
  Tensor t = Tensor::empty(dtype, shape);
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    const double v = scale * static_cast<double>((i * 7) % 11) - 0.3;
    if (dtype == DType::float32) t.data<float>()[i] = static_cast<float>(v);
    else t.data<double>()[i] = v;
  }
  return t;
}

void expect_close(const Tensor& a, const Tensor& b, double tol) {
  ASSERT_EQ(a.shape(), b.shape());
  ASSERT_EQ(a.dtype(), b.dtype());
  const Tensor x = a.astype(DType::float64), y = b.astype(DType::float64);
  for (std::int64_t i = 0; i < x.numel(); ++i) EXPECT_NEAR(x.data<double>()[i], y.data<double>()[i], tol) << i;
}

}  // namespace

TEST(Onnx, ExportPassesTheCheckerAndRoundTrips) {
  for (DType dtype : {DType::float32, DType::float64}) {
    Graph g;
    Var x = g.input("x", {kDynamic, 4}, dtype);
    Var w1 = g.param("w1", ramp(dtype, {4, 5}, 0.1));
    Var b1 = g.param("b1", ramp(dtype, {5}, 0.05));
    Var w2 = g.param("w2", ramp(dtype, {5, 3}, 0.2));
    Var probs = softmax(matmul(tanh(matmul(x, w1) + b1), w2), -1);
    const std::string bytes = io::export_onnx_bytes({probs}, {.output_names = {"probs"}});

    onnx::ModelProto model;
    ASSERT_TRUE(model.ParseFromString(bytes));
    EXPECT_NO_THROW(onnx::checker::check_model(model));
    EXPECT_EQ(model.opset_import(0).version(), 17);
    ASSERT_EQ(model.graph().input_size(), 1);
    EXPECT_EQ(model.graph().input(0).type().tensor_type().shape().dim(0).dim_param(), "batch");
    EXPECT_EQ(model.graph().initializer_size(), 3);
    EXPECT_EQ(model.graph().output(0).name(), "probs");

    io::OnnxModel back = io::load_onnx_bytes(bytes);
    ASSERT_EQ(back.inputs.size(), 1u);
    EXPECT_EQ(back.inputs[0].name(), "x");
    EXPECT_EQ(back.inputs[0].shape(), (Shape{kDynamic, 4}));
    EXPECT_EQ(back.graph->params().size(), 3u);
    EXPECT_EQ(back.output_names, std::vector<std::string>{"probs"});
    for (std::int64_t batch : {2, 7}) {
      const Tensor X = ramp(dtype, {batch, 4}, 0.3);
      const Tensor want = compile({probs}).run({{"x", X}})[0];
      const Tensor got = compile(back.outputs).run({{"x", X}})[0];
      expect_close(got, want, dtype == DType::float32 ? 1e-6 : 1e-14);
    }
  }
}

TEST(Onnx, ImportedParamsTrainAndExportAgain) {
  Graph g;
  Var x = g.input("x", {kDynamic, 2});
  Var w = g.param("w", Tensor::full(DType::float32, {2, 1}, 0.1));
  const std::string path = std::string(::testing::TempDir()) + "xgrad_linear.onnx";
  io::export_onnx({matmul(x, w)}, path);
  io::OnnxModel m = io::load_onnx(path);
  Var y = m.outputs[0];
  Var mw = m.graph->find("w");
  ASSERT_TRUE(mw);
  EXPECT_EQ(mw->kind(), NodeKind::param);
  Var loss = mean(square(y - 1.0));
  Program step = compile({loss}, {{mw, mw - 0.1 * grad(loss, {mw})[0]}});
  const Tensor X = Tensor::full(DType::float32, {3, 2}, 1.0);
  const double first = step.run({{"x", X}})[0].item();
  double last = first;
  for (int i = 0; i < 5; ++i) last = step.run({{"x", X}})[0].item();
  EXPECT_LT(last, first);
  io::export_onnx({y}, path);
  io::OnnxModel again = io::load_onnx(path);
  expect_close(again.graph->find("w")->value(), mw->value(), 0);
}

TEST(Onnx, BadFilesAndGraphsGiveClearErrors) {
  EXPECT_THROW(io::load_onnx("/nonexistent/model.onnx"), ValueError);
  EXPECT_THROW(io::load_onnx_bytes(std::string("\xff\xff\xff\xff garbage", 13)), ValueError);
  Graph g;
  Var x = g.input("x", {2});
  const std::string bytes = io::export_onnx_bytes({exp(x)});
  EXPECT_THROW(io::load_onnx_bytes(bytes.substr(0, bytes.size() / 2)), ValueError);
  try {
    io::export_onnx_bytes({broadcast_to(g.input("s", {1, 3}), {kDynamic, 3})});
    FAIL() << "expected a ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("op 'broadcast_to'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(io::export_onnx_bytes({exp(x)}, {.opset = 18}), ValueError);
}
