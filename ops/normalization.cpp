// Layer and batch normalization, composed of registered ops so their
// gradients (and second derivatives) come from the parts.
#include "ops/ops.h"

namespace xgrad {

namespace {

Var scale_shift(Var y, Var weight, Var bias) {
  if (weight) y = y * weight;
  if (bias) y = y + bias;
  return y;
}

// Per-channel parameters (C,) shaped to broadcast against (N, C, ...).
Var as_channel(Var p, std::size_t rank) {
  if (!p || rank <= 2) return p;
  Axes trailing;
  for (std::size_t d = 2; d < rank; ++d) trailing.push_back(static_cast<std::int64_t>(d - 1));
  return unsqueeze(p, trailing);
}

}  // namespace

Var layer_norm(Var x, std::int64_t normalized_ndim, Var weight, Var bias, double eps) {
  const auto rank = static_cast<std::int64_t>(x.shape().size());
  if (normalized_ndim < 1 || normalized_ndim > rank)
    throw ValueError("layer_norm: cannot normalize the last " + std::to_string(normalized_ndim) + " axes of " +
                     to_string(x.shape()));
  Axes axes;
  for (auto d = rank - normalized_ndim; d < rank; ++d) axes.push_back(d);
  const Var centered = x - mean(x, axes, true);
  const Var y = centered * rsqrt(mean(square(centered), axes, true) + eps);
  return scale_shift(y, weight, bias);
}

Var batch_norm(Var x, Var weight, Var bias, Var running_mean, Var running_var, bool training, double momentum,
               double eps, ParamUpdates* updates) {
  const std::size_t rank = x.shape().size();
  if (rank < 2) throw ValueError("batch_norm: input must be (N, C, ...), got " + to_string(x.shape()));
  Axes axes{0};
  for (std::size_t d = 2; d < rank; ++d) axes.push_back(static_cast<std::int64_t>(d));
  if (!training) {
    if (!running_mean || !running_var) throw ValueError("batch_norm: evaluation mode needs running_mean and running_var");
    const Var y = (x - as_channel(running_mean, rank)) * rsqrt(as_channel(running_var, rank) + eps);
    return scale_shift(y, as_channel(weight, rank), as_channel(bias, rank));
  }
  const Var mu = mean(x, axes);
  const Var centered = x - as_channel(mu, rank);
  const Var batch_var = mean(square(centered), axes);
  const Var y = centered * rsqrt(as_channel(batch_var, rank) + eps);
  if (updates && running_mean && running_var) {
    // PyTorch's convention: the running variance uses the unbiased batch variance.
    const Var n = count_reduced(x, axes);
    const Var unbiased = batch_var * n / (n - 1.0);
    updates->emplace_back(running_mean, stop_gradient(running_mean * (1.0 - momentum) + mu * momentum));
    updates->emplace_back(running_var, stop_gradient(running_var * (1.0 - momentum) + unbiased * momentum));
  }
  return scale_shift(y, as_channel(weight, rank), as_channel(bias, rank));
}

}  // namespace xgrad
