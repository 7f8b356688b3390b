// Optimizers that compile into the training step: minimize(loss) returns
// (param, new value) updates built from graph ops, for compile(outputs,
// updates). Optimizer state (moments, the step count) lives in the graph as
// params, so it is saved and loaded with the model. The arithmetic follows
// torch.optim step for step.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/graph.h"
#include "distributed/distributed.h"

namespace xgrad::optim {

// Learning rate as a function of the step count t (0 for the first step),
// as PyTorch's schedulers stepped once per optimizer step.
struct Schedule {
  enum class Kind { constant, step, exponential, cosine };
  Kind kind = Kind::constant;
  double step_size = 1;  // step: multiply by gamma every step_size steps (StepLR)
  double gamma = 0.1;    // step, exponential (ExponentialLR)
  double t_max = 1;      // cosine: CosineAnnealingLR(T_max, eta_min); a half period, not a stop
  double lr_min = 0;
  double warmup_steps = 0;  // linear warm-up: factor from warmup_start to 1 over warmup_steps (LinearLR)
  double warmup_start = 1.0 / 3.0;
};

struct Options {
  double lr = 0.01;
  double weight_decay = 0;  // L2: adds weight_decay * w to the gradient (AdamW: decoupled)
  double l1 = 0;            // adds l1 * sign(w) to the gradient
  double clip_value = 0;    // > 0: clip each gradient element to [-clip_value, clip_value]
  double clip_norm = 0;     // > 0: scale gradients so their global L2 norm is at most clip_norm
  Schedule schedule;
};

class Optimizer {
 public:
  Optimizer(std::vector<Var> params, Options options, std::string kind);
  virtual ~Optimizer() = default;

  // Gradients of loss, then one update per param plus the optimizer's state.
  ParamUpdates minimize(Var loss);
  // Data-parallel: each gradient is reduced over all processes (distributed::Reduce::mean averages them)
  // before the update, in buckets of about bucket_bytes whose reductions overlap the rest of the backward
  // pass (see distributed::allreduce_buckets).
  ParamUpdates minimize(Var loss, distributed::Reduce allreduce, std::size_t bucket_bytes = distributed::kDefaultBucketBytes);
  // Updates from given gradients (one per param), e.g. accumulated elsewhere.
  ParamUpdates apply(const std::vector<Var>& grads);

  const std::vector<Var>& params() const { return params_; }
  const std::vector<Var>& state() const { return state_; }  // moment buffers and the step count
  Var learning_rate() const;                                 // lr at the current step, as a node

 protected:
  // New value of param i given its (decayed, clipped) gradient; may add state updates.
  virtual Var update(std::size_t i, Var param, Var grad, Var lr, ParamUpdates& state_updates) = 0;
  // A state buffer for param i, created on first use and initialized to `init`.
  Var state_for(std::size_t i, const std::string& what, double init);
  Var step_count() const { return step_; }  // t, before this step's increment
  const Options& options() const { return options_; }

 private:
  std::vector<Var> params_;
  Options options_;
  std::string kind_;
  Var step_;
  std::vector<Var> state_;
};

struct SGD : Optimizer {
  SGD(std::vector<Var> params, Options options, double momentum = 0, double dampening = 0, bool nesterov = false);
  Var update(std::size_t i, Var param, Var grad, Var lr, ParamUpdates& state_updates) override;
  double momentum, dampening;
  bool nesterov;
};

// Adam; with decoupled weight decay it is AdamW.
struct Adam : Optimizer {
  Adam(std::vector<Var> params, Options options, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
       bool decoupled_weight_decay = false);
  Var update(std::size_t i, Var param, Var grad, Var lr, ParamUpdates& state_updates) override;
  double beta1, beta2, eps;
  bool decoupled;
};

struct RMSProp : Optimizer {
  RMSProp(std::vector<Var> params, Options options, double alpha = 0.99, double eps = 1e-8, double momentum = 0,
          bool centered = false);
  Var update(std::size_t i, Var param, Var grad, Var lr, ParamUpdates& state_updates) override;
  double alpha, eps, momentum;
  bool centered;
};

struct AdaGrad : Optimizer {
  AdaGrad(std::vector<Var> params, Options options, double lr_decay = 0, double initial_accumulator = 0,
          double eps = 1e-10);
  Var update(std::size_t i, Var param, Var grad, Var lr, ParamUpdates& state_updates) override;
  double lr_decay, initial_accumulator, eps;
};

}  // namespace xgrad::optim
