// Data-parallel training through the C++ API: the digits MLP (64-64-10, scikit-learn's 8x8 digits) trained by
// every process on its own part of each epoch, the gradients averaged over the processes inside the compiled
// step. Run it with
//   mpirun -np 2 build/train_digits_mpi [digits.csv.gz]
// (alone it trains as a world of one). Exits non-zero when the test accuracy is below 90%.
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "autodiff/init.h"
#include "autodiff/optim.h"
#include "autodiff/program.h"
#include "distributed/distributed.h"
#include "ops/ops.h"

using namespace xgrad;

namespace {

// 1797 rows of 64 pixel values (0..16) and the digit, comma-separated, gzip-compressed (Debian's scikit-learn).
bool read_digits(const std::string& path, std::vector<float>& pixels, std::vector<std::int64_t>& labels) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return false;
  std::string text;
  char buf[1 << 16];
  for (int n; (n = gzread(f, buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
  gzclose(f);
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    std::istringstream cells(line);
    std::string cell;
    std::vector<double> row;
    while (std::getline(cells, cell, ',')) row.push_back(std::stod(cell));
    if (row.size() != 65) return false;
    for (int j = 0; j < 64; ++j) pixels.push_back(static_cast<float>(row[static_cast<std::size_t>(j)] / 16.0));
    labels.push_back(static_cast<std::int64_t>(row[64]));
  }
  return !labels.empty();
}

Tensor rows(const std::vector<float>& x, const std::vector<std::size_t>& pick, std::int64_t width) {
  Tensor t = Tensor::empty(DType::float32, {static_cast<std::int64_t>(pick.size()), width});
  float* out = t.data<float>();
  for (std::size_t i = 0; i < pick.size(); ++i)
    std::copy_n(x.data() + pick[i] * static_cast<std::size_t>(width), width, out + i * static_cast<std::size_t>(width));
  return t;
}

Tensor labels_of(const std::vector<std::int64_t>& y, const std::vector<std::size_t>& pick) {
  Tensor t = Tensor::empty(DType::int64, {static_cast<std::int64_t>(pick.size())});
  for (std::size_t i = 0; i < pick.size(); ++i) t.data<std::int64_t>()[i] = y[pick[i]];
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz";
  distributed::init();
  const int rank = distributed::rank(), world = distributed::world_size();
  std::vector<float> pixels;
  std::vector<std::int64_t> digits;
  if (!read_digits(path, pixels, digits)) {
    std::fprintf(stderr, "cannot read the digits from %s\n", path.c_str());
    distributed::abort(2);
  }
  // The same split on every process: the first 1500 (shuffled with a fixed seed) train, the rest test.
  std::vector<std::size_t> order(digits.size());
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937(0));
  const std::vector<std::size_t> train(order.begin(), order.begin() + 1500), test(order.begin() + 1500, order.end());

  Graph g;
  Var x = g.input("x", {kDynamic, 64});
  Var t = g.input("t", {kDynamic}, DType::int64);
  // Each process draws different weights (seed = rank); broadcast_params makes them rank 0's.
  Var w0 = g.param("w0", init::kaiming_uniform({64, 64}, 1 + rank, 0.0, init::FanMode::fan_in, "relu"));
  Var b0 = g.param("b0", Tensor::zeros(DType::float32, {64}));
  Var w1 = g.param("w1", init::kaiming_uniform({64, 10}, 100 + rank, 0.0, init::FanMode::fan_in, "linear"));
  Var b1 = g.param("b1", Tensor::zeros(DType::float32, {10}));
  Var logits = matmul(relu(matmul(x, w0) + b0), w1) + b1;
  Var loss = cross_entropy(logits, t);
  distributed::broadcast_params({w0, b0, w1, b1}, 0);

  optim::Options options;
  options.lr = 0.01;
  optim::Adam adam({w0, b0, w1, b1}, options);
  Program step = compile({loss}, adam.minimize(loss, distributed::Reduce::mean));
  Program predict = compile({argmax(logits, 1)});
  if (rank == 0) std::printf("%d processes (%s)\n", world, distributed::library().c_str());

  // Each epoch: one permutation (same seed on every process), dealt out in `world` equal parts.
  const std::size_t per_rank = train.size() / static_cast<std::size_t>(world), batch = 32;
  std::mt19937 shuffle_rng(42);
  for (int epoch = 0; epoch < 30; ++epoch) {
    std::vector<std::size_t> perm = train;
    std::shuffle(perm.begin(), perm.end(), shuffle_rng);
    const std::vector<std::size_t> mine(perm.begin() + static_cast<std::ptrdiff_t>(rank * per_rank),
                                        perm.begin() + static_cast<std::ptrdiff_t>((rank + 1) * per_rank));
    double total = 0;
    int steps = 0;
    for (std::size_t lo = 0; lo < mine.size(); lo += batch) {
      const std::vector<std::size_t> pick(mine.begin() + static_cast<std::ptrdiff_t>(lo),
                                          mine.begin() + static_cast<std::ptrdiff_t>(std::min(lo + batch, mine.size())));
      total += step.run({{"x", rows(pixels, pick, 64)}, {"t", labels_of(digits, pick)}})[0].item();
      ++steps;
    }
    if (rank == 0 && epoch % 10 == 9) std::printf("epoch %2d  loss %.4f (rank 0's batches)\n", epoch + 1, total / steps);
  }
  const Tensor guessed = predict.run({{"x", rows(pixels, test, 64)}})[0];
  int right = 0;
  for (std::size_t i = 0; i < test.size(); ++i) right += guessed.data<std::int64_t>()[i] == digits[test[i]];
  const double accuracy = static_cast<double>(right) / static_cast<double>(test.size());
  // Every process holds the same weights, so every process scores the same.
  std::printf("rank %d: test accuracy %.3f\n", rank, accuracy);
  distributed::barrier();
  return accuracy >= 0.9 ? 0 : 1;
}
