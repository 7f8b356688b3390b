#include "autodiff/nn.h"

#include <cmath>
#include <map>
#include <set>

#include "core/error.h"
#include "ops/ops.h"

namespace xgrad::nn {

namespace {

// The first "<base><i>" that no param or input name of the graph is or starts with as "<base><i>.".
std::string unique_prefix(const Graph& graph, const std::string& base) {
  std::vector<std::string> names;
  for (const auto& n : graph.nodes())
    if (n->kind() == NodeKind::param || n->kind() == NodeKind::input) names.push_back(n->name());
  for (int i = 0;; ++i) {
    const std::string prefix = base + std::to_string(i);
    bool taken = false;
    for (const auto& n : names) taken = taken || n == prefix || n.rfind(prefix + ".", 0) == 0;
    if (!taken) return prefix;
  }
}

// torch.nn.Linear / Conv2d weights: kaiming_uniform(a=sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
Tensor torch_default(const Shape& shape, init::Generator& rng, DType dtype) {
  return init::kaiming_uniform(shape, rng, std::sqrt(5.0), init::FanMode::fan_in, "leaky_relu", dtype);
}

// torch's bias default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with the weight's fan_in.
Tensor bias_default(const Shape& shape, std::int64_t fan_in, init::Generator& rng, DType dtype) {
  const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
  return init::uniform(shape, rng, -bound, bound, dtype);
}

void check_float(DType dtype, const std::string& who) {
  if (dtype != DType::float32 && dtype != DType::float64)
    throw TypeError(who + ": dtype must be float32 or float64, got " + dtype_name(dtype));
}

}  // namespace

Var training_flag(Graph& graph) {
  const Var node = graph.find(kTrainingInput);
  if (!node) return graph.input(kTrainingInput, {}, DType::bool_);
  if (node->kind() != NodeKind::input || !node.shape().empty() || node.dtype() != DType::bool_)
    throw ValueError(std::string("the graph's node '") + kTrainingInput + "' is a " + kind_name(node->kind()) + " of " +
                     to_string(node->type()) + "; layers need it to be a bool scalar input (the train/eval switch)");
  return node;
}

Tensor training_value(bool training) { return Tensor::full(DType::bool_, {}, training ? 1.0 : 0.0); }

Activation activation(const std::string& name) {
  static const std::map<std::string, Activation> table = {
      {"relu", [](Var x) { return relu(x); }},         {"tanh", [](Var x) { return tanh(x); }},
      {"sigmoid", [](Var x) { return sigmoid(x); }},   {"gelu", [](Var x) { return gelu(x); }},
      {"elu", [](Var x) { return elu(x); }},           {"leaky_relu", [](Var x) { return leaky_relu(x); }},
      {"softplus", [](Var x) { return softplus(x); }},
  };
  if (name.empty() || name == "none" || name == "linear" || name == "identity") return {};
  const auto it = table.find(name);
  if (it == table.end())
    throw ValueError("unknown activation '" + name + "'; use relu, tanh, sigmoid, gelu, elu, leaky_relu, softplus or none");
  return it->second;
}

// ---- Module ----

Module::Module(Graph* graph, std::string name, const std::string& default_base) : graph_(graph), name_(std::move(name)) {
  if (graph_ && name_.empty()) name_ = unique_prefix(*graph_, default_base);
}

Var Module::add_param(const std::string& local, const Tensor& value) {
  own_params_.push_back(graph_->param(name_ + "." + local, value));
  return own_params_.back();
}

Var Module::add_buffer(const std::string& local, const Tensor& value) {
  own_buffers_.push_back(graph_->param(name_ + "." + local, value));
  return own_buffers_.back();
}

std::vector<const Module*> Module::modules() const {
  std::vector<const Module*> out;
  std::set<const Module*> seen;
  // Explicit stack, children pushed in reverse, so the order is depth first as in Python.
  std::vector<const Module*> stack{this};
  while (!stack.empty()) {
    const Module* m = stack.back();
    stack.pop_back();
    if (!seen.insert(m).second) continue;
    out.push_back(m);
    for (auto it = m->children_.rbegin(); it != m->children_.rend(); ++it) stack.push_back(it->get());
  }
  return out;
}

namespace {
template <class Member>
std::vector<Var> collect(const std::vector<const Module*>& modules, Member member) {
  std::vector<Var> out;
  std::set<Node*> seen;  // a layer shared by two containers counts once
  for (const Module* m : modules)
    for (const Var& p : member(*m))
      if (seen.insert(p.node()).second) out.push_back(p);
  return out;
}
}  // namespace

std::vector<Var> Module::params() const {
  return collect(modules(), [](const Module& m) -> const std::vector<Var>& { return m.own_params_; });
}

std::vector<Var> Module::buffers() const {
  return collect(modules(), [](const Module& m) -> const std::vector<Var>& { return m.own_buffers_; });
}

ParamUpdates Module::updates() const {
  ParamUpdates out;
  for (const Module* m : modules()) out.insert(out.end(), m->updates_.begin(), m->updates_.end());
  return out;
}

// ---- Linear ----

Linear::Linear(Graph& graph, std::int64_t in, std::int64_t out, LinearOptions o)
    : Module(&graph, o.name, "linear"), in_features(in), out_features(out) {
  check_float(o.dtype, name_);
  if (in < 0 || out < 0) throw ValueError(name_ + ": feature counts must be non-negative");
  init::Generator& rng = o.seed.generator();
  weight = add_param("weight", o.init ? o.init({out, in}, rng, o.dtype) : torch_default({out, in}, rng, o.dtype));
  if (o.bias) bias = add_param("bias", o.bias_init ? o.bias_init({out}, rng, o.dtype) : bias_default({out}, in, rng, o.dtype));
}

Var Linear::forward(Var x) {
  const Var y = matmul(x, transpose(weight));  // a transpose flag for BLAS, not a copy
  return bias ? y + bias : y;
}

// ---- Dropout, Lambda, Flatten ----

Dropout::Dropout(double p_, DropoutOptions o) : Module(nullptr, "", ""), p(p_), training(o.training) {
  if (!(p >= 0.0 && p < 1.0)) throw ValueError("Dropout: p must be in [0, 1), got " + std::to_string(p));
  // The op takes an integer seed; drawing it from the layer's seed keeps seeded models reproducible.
  op_seed = o.seed.generator()() >> 1;
}

Var Dropout::forward(Var x) {
  if (p == 0.0 || training == false) return x;
  if (!training) return dropout(x, p, training_flag(x.graph()), op_seed);
  return dropout(x, p, true, op_seed);
}

Lambda::Lambda(std::function<Var(Var)> fn) : Module(nullptr, "", ""), fn_(std::move(fn)) {
  if (!fn_) throw ValueError("Lambda: empty function");
}

Flatten::Flatten(std::int64_t start, std::int64_t end) : Module(nullptr, "", ""), start_axis(start), end_axis(end) {}

Var Flatten::forward(Var x) { return flatten(x, start_axis, end_axis); }

// ---- Sequential, MLP ----

Sequential::Sequential(std::vector<std::shared_ptr<Module>> layers, std::string name)
    : Module(nullptr, std::move(name), "") {
  for (auto& l : layers) add(std::move(l));
}

Sequential& Sequential::add(std::shared_ptr<Module> layer) {
  if (!layer) throw ValueError("Sequential: null layer");
  layers_.push_back(layer);
  add_child(std::move(layer));
  return *this;
}

Var Sequential::forward(Var x) {
  for (const auto& layer : layers_) x = (*layer)(x);
  return x;
}

MLP::MLP(Graph& graph, const std::vector<std::int64_t>& sizes_, MLPOptions o)
    : Sequential({}, o.name.empty() ? unique_prefix(graph, "mlp") : o.name), sizes(sizes_) {
  graph_ = &graph;
  if (sizes.size() < 2) throw ValueError("MLP: sizes needs at least [in, out]");
  const std::size_t n = sizes.size() - 1;
  std::vector<std::string> acts = o.activations;
  if (acts.empty()) {
    activation(o.activation);  // an unknown name is an error even with no hidden layer to use it
    acts.assign(n - 1, o.activation);
    acts.push_back("none");
  }
  if (acts.size() != n)
    throw ValueError("MLP: " + std::to_string(n) + " linear layers but " + std::to_string(acts.size()) + " activations");
  std::vector<double> drops = o.dropouts.empty() ? std::vector<double>(n - 1, o.dropout) : o.dropouts;
  if (drops.size() != n - 1)
    throw ValueError("MLP: " + std::to_string(n - 1) + " hidden layers but " + std::to_string(drops.size()) +
                     " dropout probabilities");
  init::Generator& rng = o.seed.generator();
  // Dropout seeds come from one draw made first, so the weights do not depend on where dropout goes.
  const std::uint64_t drop_seed = rng() >> 2;
  for (std::size_t k = 0; k < n; ++k) {
    LinearOptions lo{.bias = true, .name = name_ + "." + std::to_string(k), .seed = rng, .dtype = o.dtype, .init = o.init,
                     .bias_init = {}};
    add(std::make_shared<Linear>(graph, sizes[k], sizes[k + 1], std::move(lo)));
    if (Activation act = activation(acts[k])) add(std::move(act));
    if (k + 1 < n && drops[k] != 0.0)
      add(std::make_shared<Dropout>(drops[k], DropoutOptions{.training = {}, .seed = drop_seed + k}));
  }
}

// ---- Conv2d ----

Conv2d::Conv2d(Graph& graph, std::int64_t in_channels, std::int64_t out_channels, Pair kernel_size, Conv2dOptions o)
    : Module(&graph, o.name, "conv"),
      conv{.stride = o.stride, .padding = o.padding, .dilation = o.dilation, .groups = o.groups} {
  check_float(o.dtype, name_);
  if (o.groups < 1 || in_channels % o.groups || out_channels % o.groups)
    throw ValueError(name_ + ": channels " + std::to_string(in_channels) + " -> " + std::to_string(out_channels) +
                     " are not divisible by groups=" + std::to_string(o.groups));
  init::Generator& rng = o.seed.generator();
  const Shape shape{out_channels, in_channels / o.groups, kernel_size[0], kernel_size[1]};
  weight = add_param("weight", o.init ? o.init(shape, rng, o.dtype) : torch_default(shape, rng, o.dtype));
  if (o.bias) {
    const std::int64_t fan_in = init::fan_in_and_fan_out(shape).first;
    bias = add_param("bias", o.bias_init ? o.bias_init({out_channels}, rng, o.dtype)
                                         : bias_default({out_channels}, fan_in, rng, o.dtype));
  }
}

Var Conv2d::forward(Var x) { return bias ? conv2d(x, weight, bias, conv) : conv2d(x, weight, conv); }

// ---- BatchNorm ----

BatchNorm::BatchNorm(Graph& graph, std::int64_t c, BatchNormOptions o)
    : Module(&graph, o.name, "bn"), num_features(c), eps(o.eps), momentum(o.momentum), training(o.training) {
  check_float(o.dtype, name_);
  if (o.affine) {
    weight = add_param("weight", init::ones({c}, o.dtype));
    bias = add_param("bias", init::zeros({c}, o.dtype));
  }
  if (o.track_running_stats) {
    running_mean = add_buffer("running_mean", init::zeros({c}, o.dtype));
    running_var = add_buffer("running_var", init::ones({c}, o.dtype));
  }
}

Var BatchNorm::forward(Var x) {
  if (x.shape().size() < 2 || (x.shape()[1] != num_features && x.shape()[1] != kDynamic))
    throw ValueError(name_ + ": expects (N, " + std::to_string(num_features) + ", ...) inputs, got " +
                     to_string(x.shape()));
  updates_.clear();  // only the latest call's updates are kept, as in Python
  if (!running_mean) return batch_norm(x, weight, bias, {}, {}, true, momentum, eps);  // batch statistics always
  if (training)  // the mode is fixed now: the op builds just that branch
    return batch_norm(x, weight, bias, running_mean, running_var, *training, momentum, eps,
                      *training ? &updates_ : nullptr);
  return switched(x, training_flag(x.graph()));
}

// The mode is a run-time bool: the (C,) statistics are chosen with where, so the full-size
// normalization is computed once; the batch statistics cost one reduction pass even in eval mode.
Var BatchNorm::switched(Var x, Var flag) {
  const std::size_t rank = x.shape().size();
  Axes axes{0};
  Shape chan{num_features};
  for (std::size_t d = 2; d < rank; ++d) {
    axes.push_back(static_cast<std::int64_t>(d));
    chan.push_back(1);
  }
  const Var batch_mean = reshape(mean(x, axes, true), {num_features});
  const Var batch_var = var(x, axes);
  const Var unbiased_var = var(x, axes, false, 1.0);  // shares the sum of squares with batch_var
  const Var mu = where(flag, batch_mean, running_mean);
  const Var v = where(flag, batch_var, running_var);
  Var y = (x - reshape(mu, chan)) * rsqrt(reshape(v, chan) + eps);
  if (weight) y = y * reshape(weight, chan) + reshape(bias, chan);
  const Var rm = running_mean, rv = running_var;
  updates_.emplace_back(rm, stop_gradient(where(flag, rm * (1.0 - momentum) + batch_mean * momentum, rm)));
  updates_.emplace_back(rv, stop_gradient(where(flag, rv * (1.0 - momentum) + unbiased_var * momentum, rv)));
  return y;
}

// ---- LayerNorm, Embedding ----

LayerNorm::LayerNorm(Graph& graph, Shape shape, LayerNormOptions o)
    : Module(&graph, o.name, "ln"), normalized_shape(std::move(shape)), eps(o.eps) {
  check_float(o.dtype, name_);
  if (normalized_shape.empty()) throw ValueError(name_ + ": normalized_shape must have at least one axis");
  if (o.elementwise_affine) {
    weight = add_param("weight", init::ones(normalized_shape, o.dtype));
    bias = add_param("bias", init::zeros(normalized_shape, o.dtype));
  }
}

Var LayerNorm::forward(Var x) {
  const Shape& s = x.shape();
  const std::size_t k = normalized_shape.size();
  bool ok = s.size() >= k;
  for (std::size_t i = 0; ok && i < k; ++i) {
    const auto d = s[s.size() - k + i];
    ok = d == kDynamic || d == normalized_shape[i];
  }
  if (!ok) throw ValueError(name_ + ": input " + to_string(s) + " does not end in " + to_string(normalized_shape));
  return layer_norm(x, static_cast<std::int64_t>(k), weight, bias, eps);
}

Embedding::Embedding(Graph& graph, std::int64_t num_embeddings, std::int64_t embedding_dim, EmbeddingOptions o)
    : Module(&graph, o.name, "embedding") {
  check_float(o.dtype, name_);
  init::Generator& rng = o.seed.generator();
  const Shape shape{num_embeddings, embedding_dim};
  weight = add_param("weight", o.init ? o.init(shape, rng, o.dtype) : init::normal(shape, rng, 0.0, 1.0, o.dtype));
}

Var Embedding::forward(Var ids) { return embedding(weight, ids); }

}  // namespace xgrad::nn
