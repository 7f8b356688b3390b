#include "autodiff/fusion.h"

#include <unordered_map>

#include "ops/ops.h"

namespace xgrad {

namespace {

bool is_op(const Node* n, const char* name) { return n->kind() == NodeKind::op && n->op()->name() == name; }

bool static_dim(std::int64_t d) { return d != kDynamic; }

// Inputs that a step reads only for their shape (gradients reduce to an operand's shape with sum_to_like, and
// zero-fill like one): they do not keep a fused-away value alive; its fused replacement, of the same shape, serves.
bool shape_only_use(const Node* reader, std::size_t input) {
  return (is_op(reader, "sum_to_like") && input == 1) || is_op(reader, "zeros_like");
}

// The matrix product and bias of add(matmul(x, w), b) or add(b, matmul(x, w)), when the product is 2-D, read only
// by this add, and b is a row of its width.
bool match_bias_add(const Node* add, const std::unordered_map<const Node*, int>& readers, const Node*& product,
                    const Node*& bias) {
  if (!is_op(add, "add")) return false;
  for (int side = 0; side < 2; ++side) {
    const Node* mm = add->inputs()[static_cast<std::size_t>(side)];
    const Node* b = add->inputs()[static_cast<std::size_t>(1 - side)];
    if (!is_op(mm, "matmul") || readers.at(mm) != 1) continue;
    const Shape& ms = mm->type().shape;
    if (ms.size() != 2 || mm->inputs()[0]->type().shape.size() != 2 || mm->inputs()[1]->type().shape.size() != 2) continue;
    const Shape& bs = b->type().shape;
    if (bs.size() != 1 || !static_dim(bs[0]) || bs[0] != ms[1] || b->type().dtype != mm->type().dtype) continue;
    if (add->type().shape != ms) continue;
    product = mm;
    bias = b;
    return true;
  }
  return false;
}

// An op's axis attribute `name`, made non-negative for its first input's rank.
std::int64_t axis_of(const Node* n, const char* name) {
  const std::int64_t axis = n->attrs().get_int(name);
  return axis < 0 ? axis + static_cast<std::int64_t>(n->inputs()[0]->type().shape.size()) : axis;
}

// Whether an index column of `index_rows` can serve `rows` rows: as many, one for all, or known only at run time
// (where the kernel checks, as take_along_axis would).
bool rows_match(std::int64_t index_rows, std::int64_t rows) {
  return index_rows == rows || index_rows == 1 || index_rows == kDynamic || rows == kDynamic;
}

// log_softmax(x, 1) of a 2-D x with enough classes for the fused cross-entropy kernels to pay: they compute
// each row's shift in both passes, which for fewer classes than a vector's lanes costs more than the
// composite's few passes over data that stays in L1.
bool is_row_log_softmax(const Node* n) {
  constexpr std::int64_t kMinFusedClasses = 16;
  if (!is_op(n, "log_softmax") || n->type().shape.size() != 2 || axis_of(n, "axis") != 1) return false;
  const std::int64_t classes = n->type().shape[1];
  return classes == kDynamic || classes >= kMinFusedClasses;
}

// take_along_axis(log_softmax(x, 1), idx, 1) with idx (N or 1, 1): the logits x.
const Node* match_log_softmax_take(const Node* n) {
  if (!is_op(n, "take_along_axis") || axis_of(n, "axis") != 1 || !is_row_log_softmax(n->inputs()[0])) return nullptr;
  const Shape& idx = n->inputs()[1]->type().shape;
  const Shape& x = n->inputs()[0]->type().shape;
  if (idx.size() != 2 || idx[1] != 1 || !rows_match(idx[0], x[0])) return nullptr;
  return n->inputs()[0]->inputs()[0];
}

// log_softmax's gradient A - exp(log_softmax(x, 1)) * sum(A, 1, keepdims) where A scatters d into zeros at idx
// (take_along_axis's gradient): x, idx and d, or false.
bool match_log_softmax_take_grad(const Node* n, const Node*& x, const Node*& idx, const Node*& d) {
  if (!is_op(n, "sub")) return false;
  const Node* a = n->inputs()[0];
  const Node* product = n->inputs()[1];
  if (!is_op(a, "take_along_axis_grad") || axis_of(a, "axis") != 1 || !is_op(product, "mul")) return false;
  const Node* ls = a->inputs()[2];  // the "like" input: the log-probabilities themselves
  if (!is_row_log_softmax(ls) || n->type().shape != ls->type().shape) return false;
  for (int side = 0; side < 2; ++side) {
    const Node* e = product->inputs()[static_cast<std::size_t>(side)];
    const Node* s = product->inputs()[static_cast<std::size_t>(1 - side)];
    if (!is_op(e, "exp") || e->inputs()[0] != ls || !is_op(s, "sum") || s->inputs()[0] != a) continue;
    const auto& axes = s->attrs().get_ints("axes");
    if (axes.size() != 1 || (axes[0] != 1 && axes[0] != -1) || s->attrs().get_int("keepdims") != 1) continue;
    const Shape& ix = a->inputs()[1]->type().shape;
    if (ix.size() != 2 || ix[1] != 1 || !rows_match(ix[0], ls->type().shape[0])) return false;
    x = ls->inputs()[0];
    idx = a->inputs()[1];
    d = a->inputs()[0];
    const Shape& ds = d->type().shape;  // one gradient per row (the kernel does not broadcast it)
    return ds.size() == 2 && ds[1] == 1 && (ds[0] == ls->type().shape[0] || ds[0] == kDynamic);
  }
  return false;
}

const char* activation_of(const Node* n) {
  if (is_op(n, "relu")) return "relu";
  if (is_op(n, "tanh")) return "tanh";
  if (is_op(n, "sigmoid")) return "sigmoid";
  return nullptr;
}

}  // namespace

std::vector<Var> fuse_cpu_kernels(const std::vector<Var>& roots) {
  std::vector<Node*> root_nodes;
  for (const auto& r : roots) root_nodes.push_back(r.node());
  const std::vector<Node*> order = topological_order(root_nodes);
  std::unordered_map<const Node*, int> readers;  // consumers in what the roots compute, roots counting as one each
  for (Node* node : order) readers.emplace(node, 0);
  for (Node* node : order)
    for (std::size_t i = 0; i < node->inputs().size(); ++i)
      if (!shape_only_use(node, i)) ++readers[node->inputs()[i]];
  for (Node* r : root_nodes) ++readers[r];

  std::unordered_map<const Node*, Var> mapped;
  std::unordered_map<const Node*, Var> same_shape;  // fused-away value -> the fused node that replaces it
  for (Node* node : order) {
    Var v(node);
    if (node->kind() == NodeKind::op) {
      std::vector<Var> inputs;
      bool changed = false;
      for (std::size_t i = 0; i < node->inputs().size(); ++i) {
        const Node* in = node->inputs()[i];
        const auto twin = shape_only_use(node, i) ? same_shape.find(in) : same_shape.end();
        inputs.push_back(twin != same_shape.end() ? twin->second : mapped.at(in));
        changed = changed || inputs.back().node() != in;
      }
      const Node *product = nullptr, *bias = nullptr, *x = nullptr, *idx = nullptr, *d = nullptr;
      if (const Node* logits = match_log_softmax_take(node)) {
        v = log_softmax_take(mapped.at(logits), mapped.at(node->inputs()[1]));
      } else if (match_log_softmax_take_grad(node, x, idx, d)) {
        v = log_softmax_take_grad(mapped.at(x), mapped.at(idx), mapped.at(d));
      } else if (match_bias_add(node, readers, product, bias)) {
        v = linear(mapped.at(product->inputs()[0]), mapped.at(product->inputs()[1]), mapped.at(bias));
        same_shape[product] = v;
      } else if (const char* act = activation_of(node)) {
        const Node* in = node->inputs()[0];
        const Var& fused = inputs[0];
        if (readers.at(in) == 1 && is_op(fused.node(), "linear") && fused->attrs().get_int("activation") == 0) {
          const auto& args = fused->inputs();
          v = linear(Var(args[0]), Var(args[1]), Var(args[2]), act);
          same_shape[in] = v;
          for (auto& [value, twin] : same_shape)  // the product it had replaced: now this node
            if (twin.node() == fused.node()) twin = v;
        } else if (changed) {
          v = node->graph().apply(*node->op(), inputs, node->attrs());
        }
      } else if (changed) {
        v = node->graph().apply(*node->op(), inputs, node->attrs());
      }
    }
    mapped[node] = v;
  }
  std::vector<Var> out;
  for (const auto& r : roots) out.push_back(mapped.at(r.node()));
  return out;
}

}  // namespace xgrad
