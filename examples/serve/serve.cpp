// A small prediction service: loads an exported ONNX model, compiles it once,
// and answers batched requests from several worker threads that take them off
// one queue (standard library only). Prints latency percentiles at the end.
//
//   serve [model.onnx] [--workers N] [--requests N] [--batch ROWS]
//
// Without a model file it exports a demo MLP (784-512-256-10, softmax output)
// to a temporary file first, as a training job would, and serves that.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "xgrad.h"

using namespace xgrad;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string model;
  int workers = 4;
  int requests = 2000;
  std::int64_t batch = 8;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&] {
      if (i + 1 >= argc) throw ValueError(arg + " needs a value");
      return std::stoll(argv[++i]);
    };
    if (arg == "--workers") o.workers = static_cast<int>(value());
    else if (arg == "--requests") o.requests = static_cast<int>(value());
    else if (arg == "--batch") o.batch = value();
    else if (!arg.empty() && arg[0] != '-') o.model = arg;
    else throw ValueError("unknown option " + arg + " (serve [model.onnx] [--workers N] [--requests N] [--batch ROWS])");
  }
  if (o.workers < 1 || o.requests < 1 || o.batch < 1) throw ValueError("workers, requests and batch must be positive");
  return o;
}

// What a training job leaves behind: an MLP with a softmax output, exported to ONNX.
std::string export_demo_model() {
  const auto path = std::filesystem::temp_directory_path() / ("xgrad_serve_demo_" + std::to_string(::getpid()) + ".onnx");
  Graph g;
  Var x = g.input("x", {kDynamic, 784});
  nn::MLPOptions options;
  options.seed = init::Seed{0};
  nn::MLP mlp(g, {784, 512, 256, 10}, options);
  io::export_onnx({softmax(mlp(x), -1)}, path.string());
  return path.string();
}

struct Request {
  Tensor input;
  Clock::time_point arrived;
};

// A blocking queue: workers wait for requests until it is closed and empty.
class RequestQueue {
 public:
  void push(Request r) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      items_.push_back(std::move(r));
    }
    ready_.notify_one();
  }
  void close() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closed_ = true;
    }
    ready_.notify_all();
  }
  std::optional<Request> pop() {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [&] { return closed_ || !items_.empty(); });
    if (items_.empty()) return std::nullopt;
    Request r = std::move(items_.front());
    items_.pop_front();
    return r;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Request> items_;
  bool closed_ = false;
};

double percentile(std::vector<double> sorted, double p) {
  const auto k = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(k, sorted.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options opt = parse(argc, argv);
    const bool demo = opt.model.empty();
    const std::string path = demo ? export_demo_model() : opt.model;
    io::OnnxModel model = io::load_onnx(path);
    if (demo) std::filesystem::remove(path);
    if (model.inputs.size() != 1 || model.outputs.size() != 1)
      throw ValueError("serve expects a model with one input and one output");
    const Var input = model.inputs[0];
    const Shape& in_shape = input.shape();
    if (in_shape.size() != 2 || in_shape[1] == kDynamic) throw ValueError("serve expects an input (batch, features)");
    if (in_shape[0] != kDynamic && in_shape[0] != opt.batch)
      throw ValueError("the model takes batches of " + std::to_string(in_shape[0]) + " rows: pass --batch " +
                       std::to_string(in_shape[0]));
    if (input.dtype() != DType::float32 && input.dtype() != DType::float64)
      throw TypeError(std::string("serve feeds float32 or float64 inputs; the model's is ") + dtype_name(input.dtype()));
    const Program program = compile(model.outputs);  // compiled once, shared by every worker
    std::printf("xgrad %s serving %s: input '%s' %s, %d workers, %d requests of %lld rows\n", version(),
                demo ? "a demo MLP 784-512-256-10" : path.c_str(), input.name().c_str(), to_string(in_shape).c_str(),
                opt.workers, opt.requests, static_cast<long long>(opt.batch));

    RequestQueue queue;
    std::mutex results_mutex;
    std::vector<double> latencies_us, service_us;  // from arrival (queueing included); the model call alone
    int failures = 0;
    std::string first_error;
    std::vector<std::thread> workers;
    for (int w = 0; w < opt.workers; ++w)
      workers.emplace_back([&] {
        std::vector<double> mine, served;
        int bad = 0;
        std::string error;
        while (std::optional<Request> r = queue.pop()) {
          try {  // a failed request is counted and reported; the worker goes on with the next one
            const auto begin = Clock::now();
            const Tensor out = program.run({{input.name(), r->input}})[0];
            const auto done = Clock::now();
            mine.push_back(std::chrono::duration<double, std::micro>(done - r->arrived).count());
            served.push_back(std::chrono::duration<double, std::micro>(done - begin).count());
            if (out.shape()[0] != r->input.shape()[0]) ++bad;
          } catch (const std::exception& e) {
            ++bad;
            if (error.empty()) error = e.what();
          }
        }
        std::lock_guard<std::mutex> lock(results_mutex);
        if (first_error.empty()) first_error = error;
        latencies_us.insert(latencies_us.end(), mine.begin(), mine.end());
        service_us.insert(service_us.end(), served.begin(), served.end());
        failures += bad;
      });

    // Requests arrive one after another; each carries its own batch.
    std::mt19937 rng(42);
    std::normal_distribution<float> normal;
    const auto start = Clock::now();
    for (int i = 0; i < opt.requests; ++i) {
      Tensor x = Tensor::empty(input.dtype(), {opt.batch, in_shape[1]});
      if (input.dtype() == DType::float32)
        for (std::int64_t k = 0; k < x.numel(); ++k) x.data<float>()[k] = normal(rng);
      else
        for (std::int64_t k = 0; k < x.numel(); ++k) x.data<double>()[k] = normal(rng);
      queue.push({std::move(x), Clock::now()});
    }
    queue.close();
    for (auto& w : workers) w.join();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();

    if (latencies_us.empty()) {
      std::fprintf(stderr, "serve: no request was answered%s%s\n", first_error.empty() ? "" : ": ", first_error.c_str());
      return 1;
    }
    std::sort(latencies_us.begin(), latencies_us.end());
    std::sort(service_us.begin(), service_us.end());
    std::printf("%zu answered in %.2f s (%.0f requests/s)\n", latencies_us.size(), seconds,
                static_cast<double>(latencies_us.size()) / seconds);
    const auto report = [](const char* what, const std::vector<double>& us) {
      std::printf("  %-30s p50 %8.0f  p90 %8.0f  p99 %8.0f  max %8.0f us\n", what, percentile(us, 50), percentile(us, 90),
                  percentile(us, 99), us.back());
    };
    report("model call", service_us);
    report("from arrival (all at once)", latencies_us);
    if (failures != 0 || static_cast<int>(latencies_us.size()) != opt.requests) {
      std::fprintf(stderr, "serve: %d failed requests, %zu of %d answered%s%s\n", failures, latencies_us.size(), opt.requests,
                   first_error.empty() ? "" : "; first error: ", first_error.c_str());
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "serve: %s\n", e.what());
    return 2;
  }
}
