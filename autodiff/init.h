// Parameter initializers: Tensors for Graph::param, the C++ counterpart of
// python/xgrad/init.py.
//
//   init::Generator rng(0);
//   Var w = g.param("fc1.weight", init::kaiming_uniform({256, 784}, rng, 0.0, init::FanMode::fan_in, "relu"));
//
// Fans and gains follow torch.nn.init with PyTorch's weight layouts
// ((out_features, in_features) for a linear layer, (out_channels,
// in_channels / groups, kh, kw) for a convolution): fan_in is
// shape[1] * prod(shape[2:]) and fan_out is shape[0] * prod(shape[2:]).
//
// Randomness comes from a Seed: an integer (the same integer always gives
// the same tensor), a Generator passed by reference (draws continue from its
// state, so one generator initializes a whole model reproducibly), or
// nothing (fresh entropy). The stream is this library's own (mt19937_64 plus
// a fixed uniform / Box-Muller mapping), so it is the same on every compiler
// and platform; it does not match numpy's.
#pragma once
#include <concepts>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <utility>

#include "core/tensor.h"

namespace xgrad::init {

using Generator = std::mt19937_64;

// Where random draws come from: its own generator (from an integer seed or
// fresh entropy) or a caller's generator, which then advances.
class Seed {
 public:
  Seed();                                       // fresh entropy (std::random_device)
  // Implicit so that `uniform(shape, 42)` reads naturally; a template so that every integer type converts
  // without ambiguity.
  template <std::integral I>
  Seed(I seed) : own_(static_cast<std::uint64_t>(seed)) {}  // NOLINT
  Seed(Generator& generator) : shared_(&generator) {}     // NOLINT: implicit; draws continue in the caller's
  Generator& generator() { return shared_ ? *shared_ : own_; }

 private:
  Generator own_;
  Generator* shared_ = nullptr;
};

enum class FanMode { fan_in, fan_out };

// The recommended gain for a nonlinearity, as torch.nn.init.calculate_gain
// ("linear", "conv2d", "sigmoid", "tanh", "relu", "leaky_relu", "selu", ...).
double calculate_gain(const std::string& nonlinearity, std::optional<double> param = std::nullopt);
// (fan_in, fan_out) of a weight of this shape (needs 2 or more axes).
std::pair<std::int64_t, std::int64_t> fan_in_and_fan_out(const Shape& shape);

// Deterministic tensors. float32 or float64 only, as every initializer here.
Tensor zeros(const Shape& shape, DType dtype = DType::float32);
Tensor ones(const Shape& shape, DType dtype = DType::float32);
Tensor constant(const Shape& shape, double value, DType dtype = DType::float32);

// U[low, high).
Tensor uniform(const Shape& shape, Seed seed, double low = 0.0, double high = 1.0, DType dtype = DType::float32);
// N(mean, std^2).
Tensor normal(const Shape& shape, Seed seed, double mean = 0.0, double std = 1.0, DType dtype = DType::float32);
// Glorot & Bengio (2010): U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)).
Tensor xavier_uniform(const Shape& shape, Seed seed, double gain = 1.0, DType dtype = DType::float32);
// Glorot & Bengio (2010): N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)).
Tensor xavier_normal(const Shape& shape, Seed seed, double gain = 1.0, DType dtype = DType::float32);
// He et al. (2015): U(-b, b), b = gain * sqrt(3 / fan); torch's defaults (a is the leaky ReLU's slope).
Tensor kaiming_uniform(const Shape& shape, Seed seed, double a = 0.0, FanMode mode = FanMode::fan_in,
                       const std::string& nonlinearity = "leaky_relu", DType dtype = DType::float32);
// He et al. (2015): N(0, std^2), std = gain / sqrt(fan).
Tensor kaiming_normal(const Shape& shape, Seed seed, double a = 0.0, FanMode mode = FanMode::fan_in,
                      const std::string& nonlinearity = "leaky_relu", DType dtype = DType::float32);

// An initializer as layers take it: a tensor of `shape` and `dtype` drawn from `rng`.
using Initializer = std::function<Tensor(const Shape& shape, Generator& rng, DType dtype)>;
// One of the functions above by name ("zeros", "ones", "uniform", "normal", "xavier_uniform",
// "xavier_normal", "kaiming_uniform", "kaiming_normal", or the glorot_* / he_* aliases), with its
// default arguments, as Python layers accept init="xavier_uniform".
Initializer by_name(const std::string& name);

}  // namespace xgrad::init
