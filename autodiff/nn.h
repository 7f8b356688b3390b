// Layers built into a Graph, the C++ counterpart of python/xgrad/nn.py:
// Linear, MLP, Conv2d, BatchNorm, LayerNorm, Embedding, Dropout, Flatten,
// Lambda, Sequential.
//
// A layer creates its params when it is constructed and adds op nodes each
// time it is called on a Var:
//
//   Graph g;
//   Var x = g.input("x", {kDynamic, 784});
//   nn::MLP model(g, {784, 256, 10}, {.activation = "relu", .dropout = 0.2, .name = "mlp", .seed = 0});
//   Var loss = cross_entropy(model(x), g.input("t", {kDynamic}, DType::int64));
//   optim::Adam adam(model.params(), {});
//   ParamUpdates ups = adam.minimize(loss);
//   for (auto& u : model.updates()) ups.push_back(u);   // batch-norm running statistics
//   Program step = compile({loss}, ups);
//   step.run({{"x", X}, {"t", T}, {"training", nn::training_value(true)}});
//
// Params are named "<layer name>.<param>" ("mlp.0.weight") exactly as in
// Python, so checkpoints move between the two; a layer without a name gets
// a fresh default one ("linear0", "linear1", ...). Weights use PyTorch's
// layouts and default initializations.
//
// Train / eval switch: Dropout and BatchNorm read the graph's bool scalar
// input "training" (training_flag(g), created on first use) at every run,
// so one compiled program serves both modes. Setting a layer's `training`
// option fixes its mode when the graph is built instead.
//
// Batch norm's running statistics are params listed by buffers(), not by
// params(), so optimizers leave them alone; each call records the
// (running stat, new value) pairs that updates() returns.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "autodiff/init.h"
#include "core/graph.h"
#include "ops/conv.h"

namespace xgrad::nn {

inline constexpr const char* kTrainingInput = "training";

// The graph's bool scalar input "training", created on first use; a ValueError
// when a node of that name exists but is not a bool scalar input.
Var training_flag(Graph& graph);
// The feed for it: a bool scalar tensor.
Tensor training_value(bool training);

using Activation = std::function<Var(Var)>;
// "relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "softplus"; an empty
// function for "none", "linear", "identity" or "". Unknown names throw.
Activation activation(const std::string& name);

class Module {
 public:
  virtual ~Module() = default;
  Module(const Module&) = delete;  // a copy would share params but not recorded updates
  Module& operator=(const Module&) = delete;

  virtual Var forward(Var x) = 0;
  Var operator()(Var x) { return forward(x); }

  const std::string& name() const { return name_; }
  // This module and every module below it, depth first, each once.
  std::vector<const Module*> modules() const;
  // Trainable params of this module and its children (a shared layer counts once).
  std::vector<Var> params() const;
  // Non-trainable state params (batch norm's running statistics).
  std::vector<Var> buffers() const;
  // (param, new value) pairs recorded by the latest call of each layer, for compile(outputs, updates);
  // call the model first (not in the same compile(...) expression: argument order is unspecified).
  ParamUpdates updates() const;

 protected:
  // graph null: a layer with no params of its own (Dropout, Sequential); name empty: a fresh "<base><i>".
  Module(Graph* graph, std::string name, const std::string& default_base);
  Var add_param(const std::string& local, const Tensor& value);
  Var add_buffer(const std::string& local, const Tensor& value);
  void add_child(std::shared_ptr<Module> child) { children_.push_back(std::move(child)); }

  Graph* graph_ = nullptr;
  std::string name_;
  ParamUpdates updates_;

 private:
  std::vector<Var> own_params_, own_buffers_;
  std::vector<std::shared_ptr<Module>> children_;
};

// A layer's initializer; empty: the layer's default (torch's).
using Initializer = init::Initializer;

struct LinearOptions {
  bool bias = true;
  std::string name;
  init::Seed seed;
  DType dtype = DType::float32;
  Initializer init, bias_init;
};

// y = x @ weight.T + bias, weight (out_features, in_features), as torch.nn.Linear.
class Linear : public Module {
 public:
  Linear(Graph& graph, std::int64_t in_features, std::int64_t out_features, LinearOptions options = {});
  Var forward(Var x) override;
  Var weight, bias;  // bias empty without one
  std::int64_t in_features, out_features;
};

struct DropoutOptions {
  std::optional<bool> training;  // none: the graph's per-run "training" input
  init::Seed seed;
};

// Zeroes elements with probability p in training (a fresh mask every run), scales the rest by 1/(1-p).
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5, DropoutOptions options = {});
  Var forward(Var x) override;
  double p;
  std::optional<bool> training;
  std::uint64_t op_seed;  // the mask op's seed, drawn from options.seed
};

// A function Var -> Var (an activation, a reshape) as a layer.
class Lambda : public Module {
 public:
  explicit Lambda(std::function<Var(Var)> fn);
  Var forward(Var x) override { return fn_(x); }

 private:
  std::function<Var(Var)> fn_;
};

// Merges axes start_axis..end_axis (default: all but the batch axis), as torch.nn.Flatten.
class Flatten : public Module {
 public:
  explicit Flatten(std::int64_t start_axis = 1, std::int64_t end_axis = -1);
  Var forward(Var x) override;
  std::int64_t start_axis, end_axis;
};

// Layers applied in order.
class Sequential : public Module {
 public:
  explicit Sequential(std::vector<std::shared_ptr<Module>> layers = {}, std::string name = "");
  Sequential& add(std::shared_ptr<Module> layer);
  Sequential& add(std::function<Var(Var)> fn) { return add(std::make_shared<Lambda>(std::move(fn))); }
  Var forward(Var x) override;
  Module& operator[](std::size_t i) const { return *layers_.at(i); }
  std::size_t size() const { return layers_.size(); }

 private:
  std::vector<std::shared_ptr<Module>> layers_;
};

struct MLPOptions {
  std::string activation = "relu";        // after every hidden layer; the output layer stays linear
  std::vector<std::string> activations;   // or one per Linear layer (overrides `activation`)
  double dropout = 0.0;                   // after every hidden activation
  std::vector<double> dropouts;           // or one per hidden layer (overrides `dropout`)
  std::string name;
  init::Seed seed;  // all weights and dropout seeds
  DType dtype = DType::float32;
  Initializer init;  // weights; biases keep torch's default
};

// Linear layers of sizes [in, hidden..., out], named "<name>.0", "<name>.1", ...
class MLP : public Sequential {
 public:
  MLP(Graph& graph, const std::vector<std::int64_t>& sizes, MLPOptions options = {});
  std::vector<std::int64_t> sizes;
};

struct Conv2dOptions {
  Pair stride{1, 1}, padding{0, 0}, dilation{1, 1};
  std::int64_t groups = 1;
  bool bias = true;
  std::string name;
  init::Seed seed;
  DType dtype = DType::float32;
  Initializer init, bias_init;
};

// (N, C_in, H, W) -> (N, C_out, H', W'), weight (C_out, C_in / groups, kh, kw), as torch.nn.Conv2d.
class Conv2d : public Module {
 public:
  Conv2d(Graph& graph, std::int64_t in_channels, std::int64_t out_channels, Pair kernel_size,
         Conv2dOptions options = {});
  Var forward(Var x) override;
  Var weight, bias;
  Conv2dParams conv;
};

struct BatchNormOptions {
  double eps = 1e-5;
  double momentum = 0.1;
  bool affine = true;
  bool track_running_stats = true;
  std::string name;
  DType dtype = DType::float32;
  std::optional<bool> training;  // none: the graph's per-run "training" input
};

// Per-channel normalization of (N, C, ...), as torch.nn.BatchNorm1d / 2d. Training: batch statistics,
// and the running mean / unbiased variance move by `momentum`; evaluation: the running statistics.
class BatchNorm : public Module {
 public:
  BatchNorm(Graph& graph, std::int64_t num_features, BatchNormOptions options = {});
  Var forward(Var x) override;
  Var weight, bias, running_mean, running_var;  // empty when not affine / not tracking
  std::int64_t num_features;
  double eps, momentum;
  std::optional<bool> training;

 private:
  Var switched(Var x, Var flag);
};

struct LayerNormOptions {
  double eps = 1e-5;
  bool elementwise_affine = true;
  std::string name;
  DType dtype = DType::float32;
};

// Normalization over the trailing normalized_shape axes with an elementwise affine, as torch.nn.LayerNorm.
class LayerNorm : public Module {
 public:
  LayerNorm(Graph& graph, Shape normalized_shape, LayerNormOptions options = {});
  Var forward(Var x) override;
  Var weight, bias;
  Shape normalized_shape;
  double eps;
};

struct EmbeddingOptions {
  std::string name;
  init::Seed seed;
  DType dtype = DType::float32;
  Initializer init;  // default N(0, 1), as torch.nn.Embedding
};

// A (num_embeddings, embedding_dim) table indexed by int64 ids.
class Embedding : public Module {
 public:
  Embedding(Graph& graph, std::int64_t num_embeddings, std::int64_t embedding_dim, EmbeddingOptions options = {});
  Var forward(Var ids) override;
  Var weight;
};

}  // namespace xgrad::nn
