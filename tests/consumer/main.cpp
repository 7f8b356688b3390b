// Builds a small regression model with the installed library, trains it with Adam, checks the fit,
// round-trips it through an ONNX file and a checkpoint, and prints the version. Exit code 0: all good.
#include <xgrad/xgrad.h>

// The umbrella header keeps heavy templates out of consumers' translation units.
#if defined(XTENSOR_VERSION_MAJOR) || defined(XSIMD_VERSION_MAJOR) || defined(GOOGLE_PROTOBUF_VERSION) || defined(ONNX_NAMESPACE)
#error "xgrad.h pulled in xtensor, xsimd, protobuf or ONNX headers"
#endif

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

using namespace xgrad;

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : ".";
  Graph g;
  Var x = g.input("x", {kDynamic, 3}, DType::float64);
  Var t = g.input("t", {kDynamic, 1}, DType::float64);
  Var w = g.param("w", Tensor::zeros(DType::float64, {3, 1}));
  Var b = g.param("b", Tensor::zeros(DType::float64, {1}));
  Var y = matmul(x, w) + b;
  Var loss = mean(square(y - t));
  optim::Options options;
  options.lr = 0.05;
  optim::Adam adam({w, b}, options);
  Program step = compile({loss}, adam.minimize(loss));

  // t = x . (1, -2, 0.5) + 0.25, no noise: the fit must find it.
  const std::int64_t n = 64;
  Tensor X = Tensor::empty(DType::float64, {n, 3}), T = Tensor::empty(DType::float64, {n, 1});
  for (std::int64_t i = 0; i < n; ++i) {
    double* row = X.data<double>() + 3 * i;
    row[0] = std::sin(0.3 * i), row[1] = std::cos(0.7 * i), row[2] = 0.01 * i - 0.3;
    T.data<double>()[i] = row[0] - 2 * row[1] + 0.5 * row[2] + 0.25;
  }
  double final_loss = 0;
  for (int it = 0; it < 2000; ++it) final_loss = step.run({{"x", X}, {"t", T}})[0].item();
  std::printf("xgrad %s: training loss %.3g, w = (%.3f, %.3f, %.3f), b = %.3f\n", version(), final_loss,
              w->value().data<double>()[0], w->value().data<double>()[1], w->value().data<double>()[2],
              b->value().data<double>()[0]);
  if (!(final_loss < 1e-6)) return 1;

  io::export_onnx({y}, dir + "/consumer.onnx");
  io::OnnxModel model = io::load_onnx(dir + "/consumer.onnx");
  Program served = compile(model.outputs);
  const Tensor want = compile({y}).run({{"x", X}})[0], got = served.run({{"x", X}})[0];
  for (std::int64_t i = 0; i < n; ++i)
    if (std::abs(want.data<double>()[i] - got.data<double>()[i]) > 1e-12) return 2;

  io::save_params(g, dir + "/consumer.npz");
  w->set_value(Tensor::zeros(DType::float64, {3, 1}));
  io::load_params(g, dir + "/consumer.npz");
  if (std::abs(w->value().data<double>()[1] + 2.0) > 1e-3) return 3;
  std::puts("consumer: OK");
  return 0;
}
