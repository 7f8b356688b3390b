#include "autodiff/optim.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "autodiff/grad.h"
#include "core/error.h"
#include "ops/ops.h"

namespace xgrad::optim {

namespace {
constexpr double kPi = 3.14159265358979323846;

// How many nodes `root` depends on, itself included.
std::size_t ancestors(const Node* root) {
  std::unordered_set<const Node*> seen{root};
  std::vector<const Node*> stack{root};
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    for (const Node* in : n->inputs())
      if (seen.insert(in).second) stack.push_back(in);
  }
  return seen.size();
}

// A fresh name for an optimizer-owned param (two optimizers may share a graph).
std::string unique_name(Graph& g, const std::string& base) {
  if (!g.find(base)) return base;
  for (int k = 2;; ++k)
    if (!g.find(base + "_" + std::to_string(k))) return base + "_" + std::to_string(k);
}
}  // namespace

Optimizer::Optimizer(std::vector<Var> params, Options options, std::string kind)
    : params_(std::move(params)), options_(options), kind_(std::move(kind)) {
  if (params_.empty()) throw ValueError(kind_ + ": no params to optimize");
  for (const auto& p : params_) {
    if (!p || p->kind() != NodeKind::param) throw ValueError(kind_ + ": can only optimize params, got '" + (p ? p.name() : std::string("?")) + "'");
    if (&p.graph() != &params_[0].graph()) throw ValueError(kind_ + ": params come from different graphs");
    if (p.dtype() != params_[0].dtype())
      throw TypeError(kind_ + ": params must share one dtype ('" + p.name() + "' is " + dtype_name(p.dtype()) + ", '" +
                      params_[0].name() + "' is " + dtype_name(params_[0].dtype()) + ")");
  }
  if (options_.lr < 0) throw ValueError(kind_ + ": lr must be non-negative");
  Graph& g = params_[0].graph();
  step_ = g.param(unique_name(g, kind_ + ".step"), Tensor::zeros(params_[0].dtype(), {}));
  state_.push_back(step_);
}

Var Optimizer::state_for(std::size_t i, const std::string& what, double init) {
  const Var& p = params_[i];
  Graph& g = p.graph();
  Var s = g.param(unique_name(g, p.name() + "." + kind_ + "." + what), Tensor::full(p.dtype(), p.shape(), init));
  state_.push_back(s);
  return s;
}

Var Optimizer::learning_rate() const {
  const Schedule& s = options_.schedule;
  const Var t = step_;
  Var lr;
  switch (s.kind) {
    case Schedule::Kind::constant: lr = t * 0.0 + options_.lr; break;
    case Schedule::Kind::step: lr = pow(t.graph().scalar(s.gamma, t.dtype()), floor(t / s.step_size)) * options_.lr; break;
    case Schedule::Kind::exponential: lr = exp(t * std::log(s.gamma)) * options_.lr; break;
    case Schedule::Kind::cosine:
      // As torch's CosineAnnealingLR: past t_max the cosine continues (the rate rises again).
      lr = (cos(t * (kPi / s.t_max)) + 1.0) * (0.5 * (options_.lr - s.lr_min)) + s.lr_min;
      break;
  }
  if (s.warmup_steps > 0) {
    const Var progress = minimum(t / s.warmup_steps, t.graph().scalar(1.0, t.dtype()));
    lr = lr * (progress * (1.0 - s.warmup_start) + s.warmup_start);
  }
  return lr;
}

ParamUpdates Optimizer::minimize(Var loss) { return apply(grad(loss, params_, true)); }

ParamUpdates Optimizer::minimize(Var loss, distributed::Reduce allreduce, std::size_t bucket_bytes) {
  const std::vector<Var> local = grad(loss, params_, true);
  // Buckets in the order the backward pass can finish the gradients (the last layer's first): by how many
  // nodes each gradient depends on. A bucket's reduction then starts while the gradients of earlier layers
  // are still being computed (the Program starts it as soon as its gradients exist).
  std::vector<std::size_t> cone(params_.size());
  for (std::size_t i = 0; i < local.size(); ++i) cone[i] = ancestors(local[i].node());
  std::vector<std::size_t> order(params_.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return cone[a] < cone[b]; });
  std::vector<Var> ordered;
  std::vector<std::string> names;
  for (std::size_t i : order) {
    ordered.push_back(local[i]);
    names.push_back(params_[i].name());
  }
  const std::vector<Var> reduced = distributed::allreduce_buckets(ordered, allreduce, bucket_bytes, names);
  std::vector<Var> grads(params_.size());
  for (std::size_t k = 0; k < order.size(); ++k) grads[order[k]] = reduced[k];
  return apply(grads);
}

ParamUpdates Optimizer::apply(const std::vector<Var>& raw_grads) {
  if (raw_grads.size() != params_.size()) throw ValueError(kind_ + ": one gradient per param is needed");
  std::vector<Var> grads = raw_grads;
  for (std::size_t i = 0; i < grads.size(); ++i) {
    if (options_.clip_value > 0) grads[i] = clip(grads[i], -options_.clip_value, options_.clip_value);
  }
  if (options_.clip_norm > 0) {  // torch.nn.utils.clip_grad_norm_
    Var total;
    for (const auto& g : grads) total = total ? total + sum(square(g)) : sum(square(g));
    const Var coef = minimum(options_.clip_norm / (sqrt(total) + 1e-6), total.graph().scalar(1.0, total.dtype()));
    for (auto& g : grads) g = g * coef;
  }
  for (std::size_t i = 0; i < grads.size(); ++i) {
    if (options_.l1 > 0) grads[i] = grads[i] + sign(params_[i]) * options_.l1;
  }
  const Var lr = learning_rate();
  ParamUpdates updates;
  ParamUpdates state_updates;
  for (std::size_t i = 0; i < params_.size(); ++i) updates.emplace_back(params_[i], update(i, params_[i], grads[i], lr, state_updates));
  updates.insert(updates.end(), state_updates.begin(), state_updates.end());
  updates.emplace_back(step_, step_ + 1.0);
  return updates;
}

// ---- SGD ----

SGD::SGD(std::vector<Var> params, Options options, double momentum_, double dampening_, bool nesterov_)
    : Optimizer(std::move(params), options, "sgd"), momentum(momentum_), dampening(dampening_), nesterov(nesterov_) {
  if (nesterov && (momentum <= 0 || dampening != 0)) throw ValueError("sgd: nesterov needs momentum > 0 and no dampening");
}

Var SGD::update(std::size_t i, Var w, Var g, Var lr, ParamUpdates& state_updates) {
  if (options().weight_decay > 0) g = g + w * options().weight_decay;
  if (momentum > 0) {
    const Var buf = state_for(i, "momentum", 0.0);
    // torch starts the buffer at the first gradient itself
    const Var next = where(eq(step_count(), 0.0), g, buf * momentum + g * (1.0 - dampening));
    state_updates.emplace_back(buf, next);
    g = nesterov ? g + next * momentum : next;
  }
  return w - lr * g;
}

// ---- Adam / AdamW ----

Adam::Adam(std::vector<Var> params, Options options, double b1, double b2, double eps_, bool decoupled_)
    : Optimizer(std::move(params), options, decoupled_ ? "adamw" : "adam"), beta1(b1), beta2(b2), eps(eps_),
      decoupled(decoupled_) {}

Var Adam::update(std::size_t i, Var w, Var g, Var lr, ParamUpdates& state_updates) {
  if (decoupled) w = w * (1.0 - lr * options().weight_decay);
  else if (options().weight_decay > 0) g = g + w * options().weight_decay;
  const Var m = state_for(i, "m", 0.0), v = state_for(i, "v", 0.0);
  const Var m_next = lerp(m, g, 1.0 - beta1);          // m b1 + g (1 - b1), as torch's m.lerp_(g, 1 - b1)
  const Var v_next = lerp_square(v, g, 1.0 - beta2);   // v b2 + g^2 (1 - b2)
  state_updates.emplace_back(m, m_next);
  state_updates.emplace_back(v, v_next);
  const Var t = step_count() + 1.0;
  const Var correction1 = 1.0 - exp(t * std::log(beta1));
  const Var root2 = sqrt(1.0 - exp(t * std::log(beta2)));
  // w - lr / c1 * m / (sqrt(v) / sqrt(c2) + eps), with the per-step scalars folded: one pass over the param.
  return adam_update(w, m_next, v_next, lr * root2 / correction1, root2 * eps);
}

// ---- RMSProp ----

RMSProp::RMSProp(std::vector<Var> params, Options options, double alpha_, double eps_, double momentum_, bool centered_)
    : Optimizer(std::move(params), options, "rmsprop"), alpha(alpha_), eps(eps_), momentum(momentum_), centered(centered_) {}

Var RMSProp::update(std::size_t i, Var w, Var g, Var lr, ParamUpdates& state_updates) {
  if (options().weight_decay > 0) g = g + w * options().weight_decay;
  const Var sq = state_for(i, "square_avg", 0.0);
  const Var sq_next = lerp_square(sq, g, 1.0 - alpha);
  state_updates.emplace_back(sq, sq_next);
  Var avg = sq_next;
  if (centered) {
    const Var ga = state_for(i, "grad_avg", 0.0);
    const Var ga_next = lerp(ga, g, 1.0 - alpha);
    state_updates.emplace_back(ga, ga_next);
    avg = avg - square(ga_next);
  }
  const Var denom = sqrt(avg) + eps;
  if (momentum > 0) {
    const Var buf = state_for(i, "momentum", 0.0);
    const Var buf_next = buf * momentum + g / denom;
    state_updates.emplace_back(buf, buf_next);
    return w - lr * buf_next;
  }
  return w - lr * g / denom;
}

// ---- AdaGrad ----

AdaGrad::AdaGrad(std::vector<Var> params, Options options, double lr_decay_, double initial, double eps_)
    : Optimizer(std::move(params), options, "adagrad"), lr_decay(lr_decay_), initial_accumulator(initial), eps(eps_) {}

Var AdaGrad::update(std::size_t i, Var w, Var g, Var lr, ParamUpdates& state_updates) {
  if (options().weight_decay > 0) g = g + w * options().weight_decay;
  const Var acc = state_for(i, "sum", initial_accumulator);
  const Var acc_next = acc + square(g);
  state_updates.emplace_back(acc, acc_next);
  const Var clr = lr / (step_count() * lr_decay + 1.0);
  return w - clr * g / (sqrt(acc_next) + eps);
}

}  // namespace xgrad::optim
