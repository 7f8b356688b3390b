#include "autodiff/shape_folding.h"

#include <unordered_map>
#include <unordered_set>

#include "core/graph.h"

namespace xgrad {

namespace {
constexpr std::size_t kMaxOps = 64;  // shape arithmetic is a handful of ops; a longer chain is not
}  // namespace

Tensor evaluate_now(const OpDef& op, const Attrs& attrs, const std::vector<const Tensor*>& values, const TensorType& out) {
  if (op.view() && (!op.alias_if() || op.alias_if()(values.data(), out.shape, attrs)))
    return op.view()(values.data(), out.shape, attrs).contiguous();
  const KernelFn kernel = kernel_for(op, Device::cpu);
  if (!kernel) return {};
  Tensor result = Tensor::empty(out.dtype, out.shape);
  kernel(values.data(), result, attrs);
  return result;
}

Tensor evaluate_if_constant(const Var& v) {
  std::unordered_map<const Node*, Tensor> known;
  std::vector<std::pair<Node*, bool>> stack{{v.node(), false}};  // (node, its inputs are known)
  std::size_t ops = 0;
  try {
    while (!stack.empty()) {
      const auto [n, ready] = stack.back();
      stack.pop_back();
      if (known.count(n)) continue;
      if (n->kind() == NodeKind::constant) {
        if (n->value().numel() > ShapeFolding::kMaxElements) return {};
        known[n] = n->value().to(Device::cpu);
        continue;
      }
      if (n->kind() != NodeKind::op || !n->op()->deterministic() || n->op()->completion() || !is_static(n->shape()) ||
          numel(n->shape()) > ShapeFolding::kMaxElements)
        return {};
      if (!ready) {
        if (++ops > kMaxOps) return {};
        stack.push_back({n, true});
        for (Node* in : n->inputs())
          if (!known.count(in)) stack.push_back({in, false});
        continue;
      }
      std::vector<const Tensor*> values;
      for (Node* in : n->inputs()) values.push_back(&known.at(in));
      Tensor t = evaluate_now(*n->op(), n->attrs(), values, n->type());
      if (!t.defined()) return {};
      known[n] = std::move(t);
    }
  } catch (const std::exception&) {
    return {};  // left to the node itself, which reports it with its name when the program plans
  }
  return known.at(v.node());
}

bool known_before_run(const Var& v) {
  std::vector<const Node*> stack{v.node()};
  std::unordered_set<const Node*> seen{v.node()};
  std::size_t ops = 0;
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    if (n->kind() == NodeKind::constant) continue;
    if (n->kind() != NodeKind::op || ++ops > kMaxOps || !n->op()->deterministic()) return false;
    if (n->op()->is_shape_only()) continue;  // reads shapes, which the plan knows
    for (const Node* in : n->inputs())
      if (seen.insert(in).second) stack.push_back(in);
  }
  return true;
}

void ShapeFolding::know_constant(int value, const Tensor& held) {
  if (held.numel() <= kMaxElements) known_[static_cast<std::size_t>(value)] = held.to(Device::cpu);
}

const Tensor* ShapeFolding::try_step(const OpDef& op, const Attrs& attrs, const std::vector<int>& inputs, int out,
                                     const std::vector<const Tensor*>& layouts, const std::vector<const Tensor*>& values,
                                     const TensorType& out_type) {
  if (numel(out_type.shape) > kMaxElements || !op.deterministic() || op.completion()) return nullptr;
  Tensor result;
  if (op.is_shape_only()) {
    const KernelFn kernel = kernel_for(op, Device::cpu);
    if (!kernel) return nullptr;
    result = Tensor::empty(out_type.dtype, out_type.shape);
    kernel(layouts.data(), result, attrs);  // reads the layouts' shapes, never their data
  } else {
    for (std::size_t k = 0; k < inputs.size(); ++k)
      if (!values[k]) return nullptr;
    result = evaluate_now(op, attrs, values, out_type);
    if (!result.defined()) return nullptr;
  }
  known_[static_cast<std::size_t>(out)] = result;
  return &known_[static_cast<std::size_t>(out)];
}

}  // namespace xgrad
