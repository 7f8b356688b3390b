#include <gtest/gtest.h>

#include <numeric>

#include "core/tensor.h"

using namespace xgrad;

namespace {
Tensor iota(const Shape& shape) {
  Tensor t = Tensor::empty(DType::float64, shape);
  std::iota(t.data<double>(), t.data<double>() + t.numel(), 0.0);
  return t;
}
double at(const Tensor& t, const std::vector<std::int64_t>& idx) {
  std::int64_t off = 0;
  for (std::size_t i = 0; i < idx.size(); ++i) off += idx[i] * t.strides()[i];
  return t.data<double>()[off];
}
}  // namespace

TEST(Tensor, ViewsShareStorage) {
  Tensor t = iota({2, 3, 4});
  for (const Tensor& v : {t.reshape({6, 4}), t.permute({2, 0, 1}), t.transpose(), t.slice(1, 0, 3, 2),
                          t.unsqueeze(0), t.reshape({-1}), t.slice(2, 1, 2).squeeze({2})}) {
    EXPECT_EQ(v.storage().get(), t.storage().get());
  }
}

TEST(Tensor, PermuteAndTransposeIndexCorrectly) {
  Tensor t = iota({2, 3, 4});
  Tensor p = t.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(at(p, {3, 1, 2}), at(t, {1, 2, 3}));
  EXPECT_FALSE(p.is_contiguous());
  Tensor tt = t.transpose();
  EXPECT_EQ(tt.shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(at(tt, {1, 2, 0}), at(t, {0, 2, 1}));
}

TEST(Tensor, SliceFollowsPythonSemantics) {
  Tensor t = iota({10});
  Tensor s = t.slice(0, -2, -9, -3);  // python: list(range(10))[-2:-9:-3] == [8, 5, 2]
  ASSERT_EQ(s.shape(), (Shape{3}));
  EXPECT_EQ(at(s, {0}), 8);
  EXPECT_EQ(at(s, {1}), 5);
  EXPECT_EQ(at(s, {2}), 2);
  EXPECT_EQ(t.slice(0, 20, 30).numel(), 0);
  EXPECT_THROW(t.slice(0, 0, 5, 0), ValueError);
}

TEST(Tensor, BroadcastUsesZeroStrides) {
  Tensor t = iota({3, 1});
  Tensor b = t.broadcast_to({2, 3, 4});
  EXPECT_EQ(b.strides(), (Strides{0, 1, 0}));
  EXPECT_EQ(at(b, {1, 2, 3}), 2);
  EXPECT_THROW(t.broadcast_to({2, 2}), ValueError);
}

TEST(Tensor, ContiguousCopiesOnlyWhenNeeded) {
  Tensor t = iota({3, 4});
  EXPECT_EQ(t.contiguous().storage().get(), t.storage().get());
  Tensor c = t.transpose().contiguous();
  EXPECT_NE(c.storage().get(), t.storage().get());
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(at(c, {3, 2}), at(t, {2, 3}));
}

TEST(Tensor, ReshapeOfNonContiguousViewIsRefused) {
  Tensor t = iota({3, 4});
  EXPECT_THROW(t.transpose().reshape({12}), ValueError);
  EXPECT_THROW(t.reshape({5, -1}), ValueError);
  EXPECT_EQ(t.reshape({2, -1}).shape(), (Shape{2, 6}));
}

TEST(Tensor, SqueezeUnsqueeze) {
  Tensor t = iota({3, 1, 4});
  EXPECT_EQ(t.squeeze({}).shape(), (Shape{3, 4}));
  EXPECT_THROW(t.squeeze({0}), ValueError);
  EXPECT_EQ(t.unsqueeze(-1).shape(), (Shape{3, 1, 4, 1}));
}

TEST(Tensor, AstypeAndDtypeChecks) {
  Tensor t = iota({2, 2}).transpose();
  Tensor f = t.astype(DType::float32);
  EXPECT_EQ(f.dtype(), DType::float32);
  EXPECT_FLOAT_EQ(f.data<float>()[1], 2.0f);  // transposed element order
  EXPECT_THROW(f.data<double>(), TypeError);
}

#include <xtensor/xarray.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>

#include "core/xtensor_adapt.h"

TEST(Tensor, XtensorAdaptorsAreViewsOfTheSameMemory) {
  Tensor t = iota({2, 3});
  Tensor tt = t.transpose();  // (3, 2), strided
  auto xa = as_xtensor<double>(tt);
  EXPECT_EQ(xa(2, 1), at(t, {1, 2}));
  EXPECT_DOUBLE_EQ(xt::sum(xa)(), 15.0);
  Tensor out = Tensor::zeros(DType::float64, {3, 2});
  auto xo = as_xtensor<double>(out);
  xt::noalias(xo) = xa * 2.0 + 1.0;  // written straight into out's storage
  EXPECT_DOUBLE_EQ(out.data<double>()[5], 2.0 * at(t, {1, 2}) + 1.0);
  xa(0, 0) = 42.0;  // writes through to t
  EXPECT_DOUBLE_EQ(t.data<double>()[0], 42.0);
}
