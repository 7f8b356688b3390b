// Dropout: x * mask, mask drawn fresh on every run (ops/random.h: a
// counter-based hash of seed, run counter and element), so runs are
// reproducible for a given seed and sequence of calls.
#include <atomic>

#include "ops/elementwise.h"
#include "ops/random.h"
#include "core/onnx_lowering.h"
#include "ops/ops.h"

namespace xgrad {

namespace {

std::atomic<std::uint64_t> mask_calls{0};

void dropout_mask_kernel(const Tensor* const*, Tensor& out, const Attrs& a) {
  const ew::DropoutMaskF mask(next_random_stream(static_cast<std::uint64_t>(a.get_int("seed"))), a.get_float("p"));
  kernels::dispatch_floating(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* m = static_cast<T*>(out.raw_data());
    for (std::int64_t i = 0; i < out.numel(); ++i) m[i] = mask.operator()<T>(i);
  });
}

// ONNX Dropout in training mode draws the mask; it is scaled as ours is.
std::string lower_dropout_mask(OnnxLowerCtx& c) {
  const double p = c.attrs().get_float("p");
  const auto outs = c.emit("Dropout", {c.in(), c.scalar(p), c.scalar(1, DType::bool_)}, {}, 2, "");
  return c.op("Mul", {c.cast(outs[1], c.out_type().dtype), c.scalar(1.0 / (1.0 - p))});
}

// The mask depends on x's shape only, so its gradient with respect to x is zero.
const OpDef& dropout_mask_op = register_op(OpDef("dropout_mask").kernel(dropout_mask_kernel).onnx(lower_dropout_mask).nondeterministic()
    .infer(infer::same_floating).grad([](const GradCtx&) { return std::vector<Var>{Var()}; }));

}  // namespace

std::uint64_t next_random_stream(std::uint64_t seed) {
  return ew::splitmix64(seed ^ ew::splitmix64(mask_calls.fetch_add(1, std::memory_order_relaxed)));
}

Var dropout(Var x, double p, bool training, std::uint64_t seed) {
  if (p < 0 || p >= 1) throw ValueError("dropout: p must be in [0, 1), got " + std::to_string(p));
  if (!training || p == 0) return x;
  return x * x.graph().apply(dropout_mask_op, {x}, {{"p", p}, {"seed", static_cast<std::int64_t>(seed)}});
}

Var dropout(Var x, double p, Var training, std::uint64_t seed) {
  if (training.dtype() != DType::bool_ || !training.shape().empty())
    throw TypeError("dropout: training must be a bool scalar node, got " + to_string(training->type()));
  return where(training, dropout(x, p, true, seed), x);
}

}  // namespace xgrad
