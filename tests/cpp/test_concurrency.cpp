// One compiled Program served from many threads at once: 8 threads x 2,000
// inference calls on a model loaded from an ONNX file, every output checked
// against a single-threaded reference. Built twice by CMake: into the normal
// test binary, and (make test-tsan) into a ThreadSanitizer build of the
// library, where any data race fails the run.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "xgrad.h"

using namespace xgrad;

namespace {

constexpr int kThreads = 8;
constexpr int kCallsPerThread = 2000;
constexpr int kBatches = 16;

// Deterministic inputs of varying batch size (1 to 16 rows), so runs hit several memory plans at once.
std::vector<Tensor> make_batches() {
  std::vector<Tensor> out;
  for (int b = 0; b < kBatches; ++b) {
    const std::int64_t rows = 1 + b;
    Tensor x = Tensor::empty(DType::float32, {rows, 20});
    for (std::int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>(std::sin(0.37 * i + b));
    out.push_back(x);
  }
  return out;
}

}  // namespace

TEST(Concurrency, OneProgramServesEightThreadsWithExactResults) {
  // The trained model a service would load: an MLP 20-64-32-5 with softmax, written to and read from ONNX.
  const std::string path = ::testing::TempDir() + "xgrad_concurrency_model_" + std::to_string(::getpid()) + ".onnx";
  {
    Graph g;
    Var x = g.input("x", {kDynamic, 20});
    nn::MLPOptions options;
    options.seed = init::Seed{7};
    nn::MLP mlp(g, {20, 64, 32, 5}, options);
    io::export_onnx({softmax(mlp(x), -1)}, path);
  }
  io::OnnxModel model = io::load_onnx(path);
  std::remove(path.c_str());
  const Program program = compile(model.outputs);

  const std::vector<Tensor> batches = make_batches();
  std::vector<Tensor> reference;
  for (const Tensor& x : batches) reference.push_back(program.run({{"x", x}})[0]);

  std::atomic<int> mismatches{0}, errors{0};
  std::mutex error_mutex;
  std::string first_error;
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t)
    workers.emplace_back([&, t] {
      for (int call = 0; call < kCallsPerThread; ++call) {
        const int b = (call * 7 + t) % kBatches;
        try {
          const Tensor y = program.run({{"x", batches[b]}})[0];
          const Tensor& want = reference[b];
          bool same = y.shape() == want.shape();
          for (std::int64_t i = 0; same && i < y.numel(); ++i) same = y.data<float>()[i] == want.data<float>()[i];
          if (!same) ++mismatches;
        } catch (const std::exception& e) {
          if (errors++ == 0) {
            std::lock_guard<std::mutex> lock(error_mutex);
            first_error = e.what();
          }
        }
      }
    });
  for (auto& w : workers) w.join();
  EXPECT_EQ(errors.load(), 0) << first_error;
  EXPECT_EQ(mismatches.load(), 0) << "of " << kThreads * kCallsPerThread << " calls";
}
