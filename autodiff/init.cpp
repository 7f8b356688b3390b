#include "autodiff/init.h"

#include <cmath>
#include <map>

#include "core/error.h"

namespace xgrad::init {

namespace {
constexpr double kPi = 3.14159265358979323846;

void check_dtype(DType dtype, const char* what) {
  if (dtype != DType::float32 && dtype != DType::float64)
    throw TypeError(std::string("init.") + what + ": dtype must be float32 or float64, got " + dtype_name(dtype));
}

void check_shape(const Shape& shape, const char* what) {
  for (auto d : shape)
    if (d < 0) throw ValueError(std::string("init.") + what + ": shape must be concrete, got " + to_string(shape));
}

// Fills a new tensor with next() for each element in order. Values are made in
// double and rounded once, so float32 and float64 tensors from one seed agree.
template <class Next>
Tensor fill(const Shape& shape, DType dtype, const char* what, Next&& next) {
  check_dtype(dtype, what);
  check_shape(shape, what);
  Tensor t = Tensor::empty(dtype, shape);
  const std::int64_t n = t.numel();
  if (dtype == DType::float32) {
    float* p = t.data<float>();
    for (std::int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(next());
  } else {
    double* p = t.data<double>();
    for (std::int64_t i = 0; i < n; ++i) p[i] = next();
  }
  return t;
}

// [0, 1) with 53 random bits. Written out rather than std::uniform_real_distribution,
// whose output the standard leaves to each library: a seed must give the same weights everywhere.
double uniform01(Generator& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

double fan(const Shape& shape, FanMode mode) {
  const auto [fan_in, fan_out] = fan_in_and_fan_out(shape);
  return static_cast<double>(mode == FanMode::fan_in ? fan_in : fan_out);
}
}  // namespace

Seed::Seed() : own_(std::random_device{}() ^ (static_cast<std::uint64_t>(std::random_device{}()) << 32)) {}

double calculate_gain(const std::string& nonlinearity, std::optional<double> param) {
  static const char* const linear_like[] = {"linear", "identity", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                                            "conv_transpose2d", "conv_transpose3d", "sigmoid"};
  for (const char* name : linear_like)
    if (nonlinearity == name) return 1.0;
  if (nonlinearity == "tanh") return 5.0 / 3.0;
  if (nonlinearity == "relu") return std::sqrt(2.0);
  if (nonlinearity == "leaky_relu") {
    const double slope = param.value_or(0.01);
    return std::sqrt(2.0 / (1.0 + slope * slope));
  }
  if (nonlinearity == "selu") return 3.0 / 4.0;
  throw ValueError("init.calculate_gain: unsupported nonlinearity '" + nonlinearity + "'");
}

std::pair<std::int64_t, std::int64_t> fan_in_and_fan_out(const Shape& shape) {
  if (shape.size() < 2)
    throw ValueError("init: fan in and fan out need a shape with at least 2 axes, got " + to_string(shape));
  check_shape(shape, "fan_in_and_fan_out");
  std::int64_t receptive = 1;
  for (std::size_t d = 2; d < shape.size(); ++d) receptive *= shape[d];
  return {shape[1] * receptive, shape[0] * receptive};
}

Tensor zeros(const Shape& shape, DType dtype) { return constant(shape, 0.0, dtype); }
Tensor ones(const Shape& shape, DType dtype) { return constant(shape, 1.0, dtype); }

Tensor constant(const Shape& shape, double value, DType dtype) {
  return fill(shape, dtype, "constant", [&] { return value; });
}

Tensor uniform(const Shape& shape, Seed seed, double low, double high, DType dtype) {
  if (!(low <= high)) throw ValueError("init.uniform: low must not exceed high");
  Generator& rng = seed.generator();
  return fill(shape, dtype, "uniform", [&] { return low + (high - low) * uniform01(rng); });
}

Tensor normal(const Shape& shape, Seed seed, double mean, double std, DType dtype) {
  if (std < 0) throw ValueError("init.normal: std must be non-negative");
  Generator& rng = seed.generator();
  // Box-Muller, both outputs of each pair used in turn (portable, like uniform01).
  bool have_spare = false;
  double spare = 0.0;
  return fill(shape, dtype, "normal", [&] {
    if (have_spare) {
      have_spare = false;
      return mean + std * spare;
    }
    const double u1 = 1.0 - uniform01(rng);  // (0, 1]: log stays finite
    const double u2 = uniform01(rng);
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare = r * std::sin(2.0 * kPi * u2);
    have_spare = true;
    return mean + std * r * std::cos(2.0 * kPi * u2);
  });
}

Tensor xavier_uniform(const Shape& shape, Seed seed, double gain, DType dtype) {
  const auto [fan_in, fan_out] = fan_in_and_fan_out(shape);
  const double bound = gain * std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  return uniform(shape, seed, -bound, bound, dtype);
}

Tensor xavier_normal(const Shape& shape, Seed seed, double gain, DType dtype) {
  const auto [fan_in, fan_out] = fan_in_and_fan_out(shape);
  return normal(shape, seed, 0.0, gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out)), dtype);
}

Tensor kaiming_uniform(const Shape& shape, Seed seed, double a, FanMode mode, const std::string& nonlinearity,
                       DType dtype) {
  const double bound = calculate_gain(nonlinearity, a) * std::sqrt(3.0 / fan(shape, mode));
  return uniform(shape, seed, -bound, bound, dtype);
}

Tensor kaiming_normal(const Shape& shape, Seed seed, double a, FanMode mode, const std::string& nonlinearity,
                      DType dtype) {
  return normal(shape, seed, 0.0, calculate_gain(nonlinearity, a) / std::sqrt(fan(shape, mode)), dtype);
}

Initializer by_name(const std::string& name) {
  static const std::map<std::string, Initializer> table = {
      {"zeros", [](const Shape& s, Generator&, DType d) { return zeros(s, d); }},
      {"ones", [](const Shape& s, Generator&, DType d) { return ones(s, d); }},
      {"uniform", [](const Shape& s, Generator& g, DType d) { return uniform(s, g, 0.0, 1.0, d); }},
      {"normal", [](const Shape& s, Generator& g, DType d) { return normal(s, g, 0.0, 1.0, d); }},
      {"xavier_uniform", [](const Shape& s, Generator& g, DType d) { return xavier_uniform(s, g, 1.0, d); }},
      {"xavier_normal", [](const Shape& s, Generator& g, DType d) { return xavier_normal(s, g, 1.0, d); }},
      {"kaiming_uniform",
       [](const Shape& s, Generator& g, DType d) { return kaiming_uniform(s, g, 0.0, FanMode::fan_in, "leaky_relu", d); }},
      {"kaiming_normal",
       [](const Shape& s, Generator& g, DType d) { return kaiming_normal(s, g, 0.0, FanMode::fan_in, "leaky_relu", d); }},
  };
  static const std::map<std::string, std::string> aliases = {{"glorot_uniform", "xavier_uniform"},
                                                             {"glorot_normal", "xavier_normal"},
                                                             {"he_uniform", "kaiming_uniform"},
                                                             {"he_normal", "kaiming_normal"}};
  const auto alias = aliases.find(name);
  const auto it = table.find(alias == aliases.end() ? name : alias->second);
  if (it == table.end()) throw ValueError("init: unknown initializer '" + name + "'");
  return it->second;
}

}  // namespace xgrad::init
