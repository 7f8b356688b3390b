#include "autodiff/passes.h"

#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "ops/ops.h"

namespace xgrad {

namespace {

bool is_op(const Var& v, const char* name) { return v->kind() == NodeKind::op && v->op()->name() == name; }

// A constant holding only the value `x` (any shape that does not broadcast the other operand).
bool is_scalar_constant(const Var& v, double x) {
  if (v->kind() != NodeKind::constant || v->value().numel() != 1) return false;
  return v->value().item() == x;
}

using NodeSet = std::unordered_set<const Node*>;

// Replacement for node n (whose inputs are already rewritten), or an empty Var.
// A rule that would drop an inner node from the graph leaves kept nodes alone.
Var stable_form(const Var& n, const NodeSet& keep) {
  const auto& in = n->inputs();
  if (in.empty() || keep.count(in[0])) return {};
  if (is_op(n, "log")) {
    const Var arg(in[0]);
    if (is_op(arg, "softmax")) return log_softmax(Var(arg->inputs()[0]), arg->attrs().get_int("axis"));
    if (is_op(arg, "sigmoid")) return -softplus(-Var(arg->inputs()[0]));
    if (is_op(arg, "add")) {
      const Var a(arg->inputs()[0]), b(arg->inputs()[1]);
      if (is_scalar_constant(a, 1.0) && !keep.count(a.node()) && b.shape() == arg.shape()) return log1p(b);
      if (is_scalar_constant(b, 1.0) && !keep.count(b.node()) && a.shape() == arg.shape()) return log1p(a);
    }
  }
  if (is_op(n, "sub")) {
    const Var a(in[0]), b(in[1]);
    if (is_op(a, "exp") && is_scalar_constant(b, 1.0) && !keep.count(b.node()) && a.shape() == n.shape())
      return expm1(Var(a->inputs()[0]));
  }
  return {};
}

std::string constant_key(const Node& n) {
  const Tensor& t = n.value();
  std::string key = std::string(dtype_name(t.dtype())) + to_string(t.shape()) + ":";
  const Tensor c = t.contiguous();
  key.append(static_cast<const char*>(c.raw_data()), static_cast<std::size_t>(c.numel()) * itemsize(c.dtype()));
  return key;
}

std::string op_key(const Node& n, const std::vector<Node*>& inputs) {
  std::string key = n.op()->name() + "(";
  for (const Node* in : inputs) key += std::to_string(in->id()) + ",";
  return key + "){" + n.attrs().to_string() + "}";
}

}  // namespace

std::vector<Var> simplify(const std::vector<Var>& roots, const std::vector<Var>& keep_vars) {
  NodeSet keep;
  for (const auto& k : keep_vars) keep.insert(k.node());
  std::vector<Node*> root_nodes;
  for (const auto& r : roots) root_nodes.push_back(r.node());
  std::unordered_map<const Node*, Var> mapped;
  std::unordered_map<std::string, Var> seen;  // CSE: key -> canonical node
  constexpr std::int64_t kMaxFoldedConstant = 64;
  for (Node* node : topological_order(root_nodes)) {
    Var v(node);
    if (keep.count(node)) {
      mapped[node] = v;
      continue;
    }
    if (node->kind() == NodeKind::constant && node->value().numel() <= kMaxFoldedConstant) {
      auto [it, fresh] = seen.emplace(constant_key(*node), v);
      mapped[node] = it->second;
      continue;
    }
    if (node->kind() != NodeKind::op) {
      mapped[node] = v;
      continue;
    }
    std::vector<Node*> inputs;
    bool changed = false;
    for (Node* in : node->inputs()) {
      inputs.push_back(mapped.at(in).node());
      changed = changed || inputs.back() != in;
    }
    if (changed) {
      std::vector<Var> in_vars(inputs.begin(), inputs.end());
      v = node->graph().apply(*node->op(), in_vars, node->attrs());
    }
    if (Var stable = stable_form(v, keep)) v = stable;
    if (!v->op() || !v->op()->deterministic()) {  // two dropout masks stay two masks
      mapped[node] = v;
      continue;
    }
    auto [it, fresh] = seen.emplace(op_key(*v.node(), v->inputs()), v);
    mapped[node] = it->second;
  }
  std::vector<Var> out;
  for (const auto& r : roots) out.push_back(mapped.at(r.node()));
  return out;
}

}  // namespace xgrad
