// Reductions composed of other ops: their gradients (and second derivatives)
// come from the parts, and they export as the parts.
#include <limits>

#include "ops/ops.h"

namespace xgrad {

namespace {
Axes all_axes_if_empty(const Axes& axes, std::size_t ndim) {
  if (!axes.empty()) return normalize_axes(axes, static_cast<std::int64_t>(ndim), "reduce");
  Axes all;
  for (std::size_t i = 0; i < ndim; ++i) all.push_back(static_cast<std::int64_t>(i));
  return all;
}
}  // namespace

Var var(Var x, const Axes& axes, bool keepdims, double ddof) {
  const Var centered = x - mean(x, axes, true);
  return sum(square(centered), axes, keepdims) / (count_reduced(x, axes) - ddof);
}

Var std(Var x, const Axes& axes, bool keepdims, double ddof) { return sqrt(var(x, axes, keepdims, ddof)); }

// log(sum(exp(x))) computed as m + log(sum(exp(x - m))) with m the max, so large
// inputs do not overflow. m is held constant for differentiation: its terms cancel.
Var logsumexp(Var x, const Axes& axes, bool keepdims) {
  const Var m = stop_gradient(max(x, axes, true));
  const Var shift = where(eq(abs(m), std::numeric_limits<double>::infinity()), 0.0, m);  // all -inf: stay -inf
  const Var out = log(sum(exp(x - shift), axes, true)) + shift;
  return keepdims ? out : squeeze(out, all_axes_if_empty(axes, x.shape().size()));
}

}  // namespace xgrad
