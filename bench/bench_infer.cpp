// Inference latency through the C++ API, for bench/bench_serve.py: loads an ONNX file, compiles it once,
// and times single calls at each batch size given (best of 5 timed loops after a warm-up).
//
//   bench_infer model.onnx 1 128     ->   {"batch": 1, "us_per_call": 41.3} ... one JSON line per batch size
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "xgrad.h"

using namespace xgrad;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_infer model.onnx batch...\n");
    return 2;
  }
  io::OnnxModel model = io::load_onnx(argv[1]);
  const Var input = model.inputs.at(0);
  const Program program = compile(model.outputs);
  for (int a = 2; a < argc; ++a) {
    const std::int64_t batch = std::stoll(argv[a]);
    Tensor x = Tensor::empty(DType::float32, {batch, input.shape()[1]});
    for (std::int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>((i * 37 % 101) / 101.0 - 0.5);
    const Program::Feeds feeds{{input.name(), x}};
    auto time_loop = [&](long n) {
      const auto t0 = std::chrono::steady_clock::now();
      for (long i = 0; i < n; ++i) program.run(feeds);
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    time_loop(3);  // plans and caches
    long n = 1;
    while (time_loop(n) < 0.06) n *= 2;
    double best = 1e30;
    for (int r = 0; r < 5; ++r) best = std::min(best, time_loop(n) / static_cast<double>(n));
    std::printf("{\"batch\": %lld, \"us_per_call\": %.3f}\n", static_cast<long long>(batch), best * 1e6);
  }
  return 0;
}
