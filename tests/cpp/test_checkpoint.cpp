#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "autodiff/optim.h"
#include "autodiff/program.h"
#include "io/checkpoint.h"
#include "io/npz.h"
#include "ops/ops.h"

using namespace xgrad;

namespace {
std::string temp_path(const char* name) { return std::string(::testing::TempDir()) + name; }
}  // namespace

TEST(Checkpoint, RoundTripIsBitIdenticalIncludingOptimizerState) {
  Graph g;
  Var x = g.input("x", {kDynamic, 2});
  Var w = g.param("w", Tensor::full(DType::float32, {2, 1}, 0.5));
  Var loss = mean(square(matmul(x, w) - 1.0));
  optim::Adam adam({w}, {});
  Program step = compile({loss}, adam.minimize(loss));
  Tensor X = Tensor::full(DType::float32, {3, 2}, 1.5);
  for (int i = 0; i < 3; ++i) step.run({{"x", X}});
  const std::string path = temp_path("xgrad_ckpt.npz");
  io::save_params(g, path);
  const Tensor before = step.run({{"x", X}})[0];  // one more step changes w and the state
  io::load_params(g, path);
  const Tensor again = step.run({{"x", X}})[0];
  EXPECT_EQ(before.item(), again.item());
  EXPECT_EQ(g.find("adam.step")->value().item(), 4.0);
  std::remove(path.c_str());
}

TEST(Checkpoint, MismatchesNameTheParameter) {
  const std::string path = temp_path("xgrad_ckpt2.npz");
  Graph a;
  a.param("w", Tensor::zeros(DType::float32, {3}));
  io::save_params(a, path);
  Graph b;
  b.param("w", Tensor::zeros(DType::float32, {4}));
  try {
    io::load_params(b, path);
    FAIL();
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("parameter 'w'"), std::string::npos) << e.what();
  }
  Graph c;
  c.param("v", Tensor::zeros(DType::float32, {3}));
  EXPECT_THROW(io::load_params(c, path), ValueError);
  EXPECT_TRUE(io::load_params(c, path, false).empty());
  std::remove(path.c_str());
}

TEST(Checkpoint, TruncatedOrForeignFilesAreClearErrors) {
  const std::string path = temp_path("xgrad_ckpt3.npz");
  io::write_npz(path, {{"a", Tensor::full(DType::float64, {5}, 2.0)}, {"s", Tensor::full(DType::int64, {}, 7.0)}});
  const auto back = io::read_npz(path);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].second.data<double>()[4], 2.0);
  EXPECT_EQ(back[1].second.shape(), Shape{});
  std::string bytes;
  {
    std::ifstream f(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(f), {});
  }
  for (std::size_t keep : {bytes.size() - 30, bytes.size() / 2, std::size_t{10}}) {
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(keep));
    EXPECT_THROW(io::read_npz(path), ValueError) << keep;
  }
  std::ofstream(path, std::ios::trunc) << "not a zip file at all";
  EXPECT_THROW(io::read_npz(path), ValueError);
  EXPECT_THROW(io::read_npz(temp_path("does_not_exist.npz")), ValueError);
  std::remove(path.c_str());
}
