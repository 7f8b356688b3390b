#include "autodiff/grad.h"

#include <unordered_map>
#include <unordered_set>

#include "autodiff/passes.h"
#include "core/error.h"
#include "ops/ops.h"

namespace xgrad {

namespace {

// A gradient must have its input's type. Symbolic dims may have been lost on
// the way (a (None, 3) input can get a (None, None) gradient); then the
// gradient is re-typed with a reshape_like view. Anything else is a bug in the rule.
Var fit_grad_type(const Node& op_node, const Node& input, const Var& g) {
  bool compatible = g.dtype() == input.dtype() && g.shape().size() == input.shape().size();
  for (std::size_t d = 0; compatible && d < g.shape().size(); ++d)
    compatible = g.shape()[d] == input.shape()[d] || g.shape()[d] == kDynamic || input.shape()[d] == kDynamic;
  if (!compatible)
    throw ValueError("grad: the gradient rule of op '" + op_node.op()->name() + "' (node '" + op_node.name() +
                     "') produced " + to_string(g->type()) + " for input '" + input.name() + "' of type " +
                     to_string(input.type()));
  return g.shape() == input.shape() ? g : reshape_like(g, Var(const_cast<Node*>(&input)));
}

}  // namespace

std::vector<Var> grad(Var y, const std::vector<Var>& xs, bool allow_unused) {
  if (!y) throw ValueError("grad: y is an empty node");
  Graph& g = y.graph();
  if (numel(y.shape()) != 1)
    throw ValueError("grad: y must have exactly one element (a loss), but node '" + y.name() + "' has shape " +
                     to_string(y.shape()) + "; reduce it first, e.g. with sum or mean");
  if (!is_floating(y.dtype()))
    throw TypeError("grad: y (node '" + y.name() + "') is " + dtype_name(y.dtype()) + "; only float nodes have gradients");
  std::unordered_set<const Node*> wanted;
  for (const auto& x : xs) {
    if (!x) throw ValueError("grad: an entry of xs is an empty node");
    if (&x.graph() != &g) throw ValueError("grad: node '" + x.name() + "' belongs to another graph than y");
    wanted.insert(x.node());
  }

  // Differentiate the stable forms (log_softmax, log1p, ...), whose gradients stay finite.
  y = simplify({y}, xs)[0];
  const std::vector<Node*> order = topological_order({y.node()});
  // Nodes on some path from an x to y: only their gradients are needed.
  std::unordered_set<const Node*> relevant;
  for (const Node* n : order) {
    bool r = wanted.count(n) > 0;
    for (const Node* in : n->inputs()) r = r || relevant.count(in);
    if (r) relevant.insert(n);
  }

  std::unordered_map<const Node*, Var> total;  // summed gradient per node
  total[y.node()] = g.constant(Tensor::full(y.dtype(), y.shape(), 1.0));
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* n = *it;
    auto found = total.find(n);
    if (found == total.end() || n->kind() != NodeKind::op || !relevant.count(n)) continue;
    const OpDef& op = *n->op();
    if (!op.differentiable())
      throw ValueError("grad: op '" + op.name() + "' (node '" + n->name() + "') is not differentiable (" +
                       op.non_differentiable_reason() + "), but it lies between y and the requested nodes");
    std::vector<Var> inputs(n->inputs().begin(), n->inputs().end());
    const Var out(n);
    const Var dy = found->second;
    const std::vector<Var> grads = op.grad()(GradCtx{*n, inputs, out, dy, n->attrs()});
    if (grads.size() != inputs.size())
      throw ValueError("grad: the gradient rule of op '" + op.name() + "' returned " + std::to_string(grads.size()) +
                       " gradients for " + std::to_string(inputs.size()) + " inputs");
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      Node* in = inputs[i].node();
      if (!grads[i] || !relevant.count(in)) continue;
      const Var gi = fit_grad_type(*n, *in, grads[i]);
      auto [slot, fresh] = total.emplace(in, gi);
      if (!fresh) slot->second = slot->second + gi;
    }
  }

  std::vector<Var> result;
  for (const auto& x : xs) {
    auto found = total.find(x.node());
    if (found != total.end()) {
      result.push_back(found->second);
    } else if (relevant.count(x.node()) || allow_unused) {
      // On a path to y but every rule on the way gave an exact zero (sign, a comparison under where): zeros.
      result.push_back(zeros_like(x));
    } else {
      throw ValueError("grad: y (node '" + y.name() + "') does not depend on node '" + x.name() +
                       "'; pass allow_unused=True to get zeros for it");
    }
  }
  return result;
}

}  // namespace xgrad
