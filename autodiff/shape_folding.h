// What a plan knows before its run: every value that the feeds' shapes and small constants alone determine
// (shape_of, and the shape arithmetic on it that exporters write: gather, concat, casts, products). The plan
// computes these once per feed-shape signature, so an op whose shape depends on such a value (a reshape to a
// computed target) gets a static shape, and the run does none of this work. Internal to autodiff/.
#pragma once
#include <cstdint>
#include <vector>

#include "core/op.h"

#pragma GCC visibility push(hidden)

namespace xgrad {

class Var;

// The output of a small deterministic op whose inputs' values are all known, computed now with the CPU kernels
// (or its view, copied); an undefined Tensor when the op has neither.
Tensor evaluate_now(const OpDef& op, const Attrs& attrs, const std::vector<const Tensor*>& values, const TensorType& out);

// v's value when v is computed only from small constants by a few ops (shape arithmetic on static shapes),
// evaluated now; an undefined Tensor otherwise. Builders use it so that such shapes are static from the start.
Tensor evaluate_if_constant(const Var& v);

// Whether a program knows v's value while it plans (v is computed by a few ops from constants and shape_of),
// so that a shape taken from v resolves before the run.
bool known_before_run(const Var& v);

class ShapeFolding {
 public:
  // Larger values are left to the run: folding is for shapes, not for precomputing tensors.
  static constexpr std::int64_t kMaxElements = 4096;

  explicit ShapeFolding(std::size_t num_values) : known_(num_values) {}
  void know_constant(int value, const Tensor& held);
  const Tensor* value(int v) const { return known_[static_cast<std::size_t>(v)].defined() ? &known_[static_cast<std::size_t>(v)] : nullptr; }
  // Computes a step's output now when it is known before the run: a shape_only op, or a small deterministic
  // step whose inputs are all known. Returns that value (a CPU tensor), or null.
  // `layouts` are the inputs' planned tensors (shapes only); `values` their known values (null where unknown).
  const Tensor* try_step(const OpDef& op, const Attrs& attrs, const std::vector<int>& inputs, int out,
                         const std::vector<const Tensor*>& layouts, const std::vector<const Tensor*>& values,
                         const TensorType& out_type);

 private:
  std::vector<Tensor> known_;
};

}  // namespace xgrad

#pragma GCC visibility pop
