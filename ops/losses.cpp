// Losses and indexing helpers composed of registered ops: each is a few lines
// of math, and its gradient (to any order) comes from the parts.
#include <algorithm>

#include "ops/ops.h"

namespace xgrad {

namespace {

Var reduce_loss(Var per_element, Reduction reduction) {
  switch (reduction) {
    case Reduction::mean: return mean(per_element);
    case Reduction::sum: return sum(per_element);
    case Reduction::none: return per_element;
  }
  return per_element;
}

void require_same_shape(const char* what, Var a, Var b) {
  if (a.shape().size() != b.shape().size())
    throw ValueError(std::string(what) + ": input " + to_string(a.shape()) + " and target " + to_string(b.shape()) +
                     " differ in rank");
}

}  // namespace

Reduction parse_reduction(const std::string& name) {
  if (name == "mean") return Reduction::mean;
  if (name == "sum") return Reduction::sum;
  if (name == "none") return Reduction::none;
  throw ValueError("reduction must be 'mean', 'sum' or 'none', got '" + name + "'");
}

// Class scores along axis 1: (N, C) or (N, C, d1, ...) as in PyTorch. Integer
// targets hold class indices of shape (N, d1, ...); float targets are
// probabilities with the logits' shape.
Var cross_entropy(Var logits, Var target, Reduction reduction) {
  if (logits.shape().size() < 2)
    throw ValueError("cross_entropy: logits must be (N, C, ...), got " + to_string(logits.shape()));
  const Var log_p = log_softmax(logits, 1);
  if (target.dtype() == DType::int64) {
    if (target.shape().size() + 1 != logits.shape().size())
      throw ValueError("cross_entropy: class-index target " + to_string(target.shape()) + " must have the logits' shape " +
                       to_string(logits.shape()) + " without the class axis");
    return reduce_loss(-squeeze(take_along_axis(log_p, unsqueeze(target, {1}), 1), {1}), reduction);
  }
  require_same_shape("cross_entropy", logits, target);
  return reduce_loss(-sum(target * log_p, {1}), reduction);
}

// softplus(x) - x t = -(t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))), without overflow.
Var binary_cross_entropy_with_logits(Var logits, Var target, Reduction reduction) {
  require_same_shape("binary_cross_entropy_with_logits", logits, target);
  return reduce_loss(softplus(logits) - logits * target, reduction);
}

Var mse_loss(Var prediction, Var target, Reduction reduction) {
  require_same_shape("mse_loss", prediction, target);
  return reduce_loss(square(prediction - target), reduction);
}

// Quadratic within delta of the target, linear beyond (PyTorch's huber_loss).
Var huber_loss(Var prediction, Var target, double delta, Reduction reduction) {
  require_same_shape("huber_loss", prediction, target);
  if (delta <= 0) throw ValueError("huber_loss: delta must be positive");
  const Var d = prediction - target;
  const Var a = abs(d);
  return reduce_loss(where(le(a, delta), square(d) * 0.5, (a - 0.5 * delta) * delta), reduction);
}

Var index_select(Var x, Var indices, std::int64_t axis) {
  if (indices.shape().size() != 1)
    throw ValueError("index_select: indices must be 1-D, got " + to_string(indices.shape()));
  return take(x, indices, axis);
}

Var embedding(Var weight, Var ids) {
  if (weight.shape().size() != 2)
    throw ValueError("embedding: weight must be (num_embeddings, dim), got " + to_string(weight.shape()));
  return take(weight, ids, 0);
}

Var flatten(Var x, std::int64_t start_axis, std::int64_t end_axis) {
  const auto rank = static_cast<std::int64_t>(x.shape().size());
  if (rank == 0) return reshape(x, {1});
  const auto s = normalize_axis(start_axis, rank, "flatten"), e = normalize_axis(end_axis, rank, "flatten");
  if (s > e) throw ValueError("flatten: start axis comes after end axis");
  Shape target(x.shape().begin(), x.shape().begin() + s);
  std::int64_t merged = 1;
  for (auto d = s; d <= e; ++d) merged = (merged == kDynamic || x.shape()[d] == kDynamic) ? kDynamic : merged * x.shape()[d];
  target.push_back(merged);
  target.insert(target.end(), x.shape().begin() + e + 1, x.shape().end());
  // reshape infers one -1 at run time; two symbolic dims left apart cannot both be inferred.
  if (std::count(target.begin(), target.end(), kDynamic) > 1)
    throw ValueError("flatten: " + to_string(x.shape()) + " would keep two symbolic dimensions");
  return reshape(x, target);
}

}  // namespace xgrad
