// Builder functions: the public way to apply ops. Each one lives in the
// same file as its op's definition (ops/<family>.cpp).
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/graph.h"

namespace xgrad {

using Axes = std::vector<std::int64_t>;

// Elementwise binary, numpy broadcasting (ops/binary.cpp).
Var add(Var a, Var b);
Var sub(Var a, Var b);
Var mul(Var a, Var b);
Var div(Var a, Var b);

Var pow(Var base, Var exponent);
Var maximum(Var a, Var b);  // ties split the gradient evenly, as in PyTorch
Var minimum(Var a, Var b);
// a + weight * (b - a) (torch.lerp with a number weight), and a + weight * (b^2 - a): the optimizers'
// moving averages in one pass each.
Var lerp(Var a, Var b, double weight);
Var lerp_square(Var a, Var b, double weight);
// w - k * m / (sqrt(v) + e), k and e single values: Adam's parameter step in one pass.
Var adam_update(Var w, Var m, Var v, Var k, Var e);

// Comparisons: bool out, not differentiable (ops/compare.cpp). Scalars take a's dtype.
Var eq(Var a, Var b);
Var ne(Var a, Var b);
Var lt(Var a, Var b);
Var le(Var a, Var b);
Var gt(Var a, Var b);
Var ge(Var a, Var b);
Var eq(Var a, double b);
Var ne(Var a, double b);
Var lt(Var a, double b);
Var le(Var a, double b);
Var gt(Var a, double b);
Var ge(Var a, double b);
Var where(Var cond, Var a, Var b);
Var where(Var cond, Var a, double b);
Var where(Var cond, double a, Var b);

// Elementwise unary (ops/unary.cpp).
Var neg(Var x);
Var exp(Var x);
Var log(Var x);
Var tanh(Var x);
Var sigmoid(Var x);
Var relu(Var x);
Var square(Var x);
Var sqrt(Var x);
Var pow(Var x, double exponent);
Var abs(Var x);
Var sign(Var x);
Var expm1(Var x);
Var log1p(Var x);
Var rsqrt(Var x);
Var sin(Var x);
Var cos(Var x);
Var erf(Var x);
Var floor(Var x);  // zero gradient
Var zeros_like(Var x);  // zeros of x's (run-time) shape
Var astype(Var x, DType dtype);

// Activations (ops/activation.cpp).
Var leaky_relu(Var x, double negative_slope = 0.01);
Var elu(Var x, double alpha = 1.0);
Var gelu(Var x, bool tanh_approximation = false);
Var softplus(Var x);
Var clip(Var x, double lo, double hi);

// Reductions (ops/reduce.cpp). Empty axes: all axes.
Var sum(Var x, const Axes& axes = {}, bool keepdims = false);
Var mean(Var x, const Axes& axes = {}, bool keepdims = false);
Var max(Var x, const Axes& axes = {}, bool keepdims = false);
Var min(Var x, const Axes& axes = {}, bool keepdims = false);
Var prod(Var x, const Axes& axes = {}, bool keepdims = false);
// Composites of the above (ops/statistics.cpp); ddof as numpy (0: population).
Var var(Var x, const Axes& axes = {}, bool keepdims = false, double ddof = 0.0);
Var std(Var x, const Axes& axes = {}, bool keepdims = false, double ddof = 0.0);
Var logsumexp(Var x, const Axes& axes = {}, bool keepdims = false);
// Index of the largest / smallest element along `axis` (flattened when axis is empty); int64.
Var argmax(Var x, std::optional<std::int64_t> axis = std::nullopt, bool keepdims = false);
Var argmin(Var x, std::optional<std::int64_t> axis = std::nullopt, bool keepdims = false);
// The number of elements a reduction over `axes` folds together, as a scalar of x's dtype
// (a constant when those dims are static).
Var count_reduced(Var x, const Axes& axes);
// Sums x down to the shape of `like` (undoes broadcasting); a no-op alias when equal.
Var sum_to_like(Var x, Var like);

// Linear algebra (ops/matmul.cpp).
Var matmul(Var a, Var b);
// act(x @ w + b) in one kernel (the epilogue fused into the GEMM): x (m, k), w (k, n), b (n,); activation "" (none),
// "relu", "tanh" or "sigmoid". compile() also forms it from matmul, add and activation nodes (autodiff/fusion.h).
Var linear(Var x, Var w, Var b, const std::string& activation = "");

// Shape ops, zero-copy where the layout allows (ops/shape.cpp).
Var reshape(Var x, const Shape& shape);  // one -1 allowed
Var reshape_like(Var x, Var like);
Var transpose(Var x, const Axes& perm = {});  // empty: reverse the axes
Var unsqueeze(Var x, const Axes& axes);       // axes in the output
Var squeeze(Var x, const Axes& axes = {});
Var broadcast_to(Var x, const Shape& shape);
Var broadcast_like(Var x, Var like);
Var stop_gradient(Var x);  // x itself (a view); no gradient flows through it

// Shapes as values computed in the graph (ops/shape_values.cpp): a Program computes them when it plans each
// feed-shape signature, so a target computed from shape_of resolves at any batch size.
Var shape_of(Var x);  // int64 (ndim,); a constant when x's shape is static
// x reshaped to the int64 1-D `shape`: one -1 takes the remaining elements; a 0 copies x's dim when copy_zeros
// (ONNX Reshape's default), else means 0. `dims`: the output shape as far as the builder knows it (kDynamic
// where it does not), so the node's shape is that static; the plan checks it against the target's value.
Var reshape(Var x, Var shape, bool copy_zeros = false, const Shape& dims = {});
// x and the int64 1-D `shape` broadcast against each other (ONNX Expand); `dims` as for reshape.
Var expand(Var x, Var shape, const Shape& dims = {});
// start, start + delta, ... up to limit (exclusive), from three scalars of one dtype (ONNX Range).
Var arange(Var start, Var limit, Var delta);
// x sliced along `axes` by int64 1-D starts / stops computed in the graph (Python slice rules, static steps):
// a gather of the indices each slice picks, which the plan computes.
Var slice(Var x, Var starts, Var stops, const Axes& axes, const Axes& steps);

// Softmax family (ops/softmax.cpp), stable along `axis`.
Var softmax(Var x, std::int64_t axis = -1);
Var log_softmax(Var x, std::int64_t axis = -1);

// Indexing by int64 tensors (ops/gather.cpp).
Var take(Var x, Var indices, std::int64_t axis = 0);             // numpy.take
Var take_along_axis(Var x, Var indices, std::int64_t axis);      // numpy.take_along_axis (gather)
// take_along_axis(log_softmax(x, 1), indices, 1) for x (N, C), indices (N, 1) int64, in one pass per row, and
// its gradient d * (onehot(indices) - softmax(x)) for d (N, 1). compile() forms both from the composite.
Var log_softmax_take(Var x, Var indices);
Var log_softmax_take_grad(Var x, Var indices, Var d);
Var one_hot(Var labels, std::int64_t num_classes, DType dtype = DType::float32);

// Losses and helpers composed of the ops above (ops/losses.cpp).
enum class Reduction { mean, sum, none };
Reduction parse_reduction(const std::string& name);  // "mean", "sum", "none"
// logits (N, C, ...); target int64 class indices (N, ...) or float probabilities like logits.
Var cross_entropy(Var logits, Var target, Reduction reduction = Reduction::mean);
Var binary_cross_entropy_with_logits(Var logits, Var target, Reduction reduction = Reduction::mean);
Var mse_loss(Var prediction, Var target, Reduction reduction = Reduction::mean);
Var huber_loss(Var prediction, Var target, double delta = 1.0, Reduction reduction = Reduction::mean);
Var index_select(Var x, Var indices, std::int64_t axis);  // 1-D indices
Var embedding(Var weight, Var ids);                       // rows of weight (V, D) by ids
Var flatten(Var x, std::int64_t start_axis = 0, std::int64_t end_axis = -1);

// Slicing and joining (ops/slice.cpp). slice takes Python-style bounds per axis
// (kSliceEnd for an open end); the result is a view.
Var slice(Var x, const Axes& starts, const Axes& stops, const Axes& steps);
Var concat(const std::vector<Var>& xs, std::int64_t axis = 0);
Var stack(const std::vector<Var>& xs, std::int64_t axis = 0);
std::vector<Var> split(Var x, const std::vector<std::int64_t>& sizes, std::int64_t axis = 0);
// pads: (before, after) for every axis, flattened. constant fills with value; reflect mirrors the input about
// its edge values without repeating them (numpy's and PyTorch's "reflect"; each pad smaller than its axis);
// edge repeats the edge values (numpy's "edge", PyTorch's "replicate"). reflect and edge gather along each
// padded axis (differentiable as take is; exported as Gather), which must be static and non-empty.
enum class PadMode { constant, reflect, edge };
PadMode pad_mode(const std::string& name);  // "constant", "reflect", "edge" or "replicate"; else ValueError
Var pad(Var x, const std::vector<std::int64_t>& pads, double value = 0.0, PadMode mode = PadMode::constant);

// Training-time layers (ops/dropout.cpp, ops/normalization.cpp).
// dropout: x * mask with mask 0 (probability p) or 1/(1-p), drawn on every run;
// `training` is fixed at build time (bool) or chosen per run (a bool scalar node).
Var dropout(Var x, double p, bool training = true, std::uint64_t seed = 0);
Var dropout(Var x, double p, Var training, std::uint64_t seed = 0);
// Normalizes over the last normalized_ndim axes; weight and bias may be empty Vars.
Var layer_norm(Var x, std::int64_t normalized_ndim, Var weight = {}, Var bias = {}, double eps = 1e-5);
// x (N, C, ...) normalized per channel. Training: batch statistics, and when
// `updates` is given, the running-statistics updates are appended to it (pass
// them to compile). Evaluation: the running statistics.
Var batch_norm(Var x, Var weight, Var bias, Var running_mean, Var running_var, bool training, double momentum = 0.1,
               double eps = 1e-5, ParamUpdates* updates = nullptr);

// Operators: nodes mixed with nodes or with scalars (scalars take the node's dtype).
Var operator+(Var a, Var b);
Var operator-(Var a, Var b);
Var operator*(Var a, Var b);
Var operator/(Var a, Var b);
Var operator-(Var a);
Var operator+(Var a, double b);
Var operator-(Var a, double b);
Var operator*(Var a, double b);
Var operator/(Var a, double b);
Var operator+(double a, Var b);
Var operator-(double a, Var b);
Var operator*(double a, Var b);
Var operator/(double a, Var b);

}  // namespace xgrad
