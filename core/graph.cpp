#include "core/graph.h"

#include <sstream>
#include <unordered_set>

#include "core/error.h"

namespace xgrad {

const char* kind_name(NodeKind kind) {
  switch (kind) {
    case NodeKind::input: return "input";
    case NodeKind::param: return "param";
    case NodeKind::constant: return "const";
    case NodeKind::op: return "op";
  }
  return "?";
}

const Tensor& Node::value() const {
  if (kind_ != NodeKind::param && kind_ != NodeKind::constant)
    throw ValueError("node '" + name_ + "' is a " + kind_name(kind_) + " and holds no value");
  return value_;
}

void Node::set_value(const Tensor& v) {
  if (kind_ != NodeKind::param) throw ValueError("node '" + name_ + "' is not a param; only params can be set");
  if (v.dtype() != value_.dtype())
    throw TypeError("param '" + name_ + "' is " + dtype_name(value_.dtype()) + ", cannot assign " +
                    dtype_name(v.dtype()));
  if (v.shape() != value_.shape())
    throw ValueError("param '" + name_ + "' has shape " + xgrad::to_string(value_.shape()) +
                     ", cannot assign shape " + xgrad::to_string(v.shape()));
  value_.copy_from(v.device() == value_.device() ? v : v.to(value_.device()));
}

void Node::move_to(Device device) {
  if (kind_ != NodeKind::param && kind_ != NodeKind::constant)
    throw ValueError("node '" + name_ + "' is a " + kind_name(kind_) + " and holds no value to move");
  value_ = value_.to(device);
}

std::string Node::to_string() const {
  std::ostringstream os;
  os << "Node(" << name_ << ": " << kind_name(kind_);
  if (op_) {
    os << " " << op_->name() << "(";
    for (std::size_t i = 0; i < inputs_.size(); ++i) os << (i ? ", " : "") << inputs_[i]->name();
    os << ")";
    if (!attrs_.items().empty()) os << " {" << attrs_.to_string() << "}";
  }
  os << " -> " << xgrad::to_string(type_) << ")";
  return os.str();
}

void Graph::check_new_name(const std::string& name, const char* what) const {
  if (name.empty()) throw ValueError(std::string(what) + " needs a non-empty name");
  if (find(name)) throw ValueError(std::string(what) + " '" + name + "': the graph already has a node of that name");
}

Node& Graph::add_node(NodeKind kind, const std::string& name, TensorType type) {
  auto node = std::unique_ptr<Node>(new Node());
  node->graph_ = this;
  node->id_ = static_cast<int>(nodes_.size());
  node->kind_ = kind;
  node->name_ = name;
  node->type_ = std::move(type);
  nodes_.push_back(std::move(node));
  return *nodes_.back();
}

Var Graph::input(const std::string& name, const Shape& shape, DType dtype) {
  check_new_name(name, "input");
  for (auto d : shape)
    if (d < kDynamic) throw ValueError("input '" + name + "': invalid shape " + xgrad::to_string(shape));
  return &add_node(NodeKind::input, name, {dtype, shape});
}

Var Graph::param(const std::string& name, const Tensor& value) {
  check_new_name(name, "param");
  if (!value.defined()) throw ValueError("param '" + name + "' needs a value");
  Node& n = add_node(NodeKind::param, name, {value.dtype(), value.shape()});
  n.value_ = value.copy();
  return &n;
}

Var Graph::constant(const Tensor& value, const std::string& name) {
  if (!name.empty()) check_new_name(name, "constant");
  Node& n = add_node(NodeKind::constant, name, {value.dtype(), value.shape()});
  if (name.empty()) n.name_ = "const_" + std::to_string(n.id_);
  n.value_ = value.copy();
  return &n;
}

Var Graph::scalar(double value, DType dtype) { return constant(Tensor::full(dtype, {}, value)); }

Var Graph::apply(const OpDef& op, const std::vector<Var>& inputs, Attrs attrs) {
  const std::string node_name = op.name() + "_" + std::to_string(nodes_.size());
  auto where = [&] {
    std::string s = "op '" + op.name() + "' (node '" + node_name + "'";
    if (!inputs.empty()) {
      s += ", inputs ";
      for (std::size_t i = 0; i < inputs.size(); ++i)
        s += (i ? ", " : "") + (inputs[i] ? inputs[i].name() + ": " + xgrad::to_string(inputs[i]->type()) : "?");
    }
    return s + "): ";
  };
  if (op.arity() >= 0 && static_cast<int>(inputs.size()) != op.arity())
    throw ValueError(where() + "takes " + std::to_string(op.arity()) + " inputs, got " +
                     std::to_string(inputs.size()));
  std::vector<TensorType> types;
  for (const auto& v : inputs) {
    if (!v) throw ValueError(where() + "an input is an empty node");
    if (&v.graph() != this) throw ValueError(where() + "input '" + v.name() + "' belongs to another graph");
    types.push_back(v->type());
  }
  // A value-dependent shape reads the inputs that are constants now; the rest resolve when a Program plans.
  std::vector<Tensor> host_values(inputs.size());
  std::vector<const Tensor*> values(inputs.size(), nullptr);
  for (int k : op.value_inputs())
    if (k < static_cast<int>(inputs.size()) && inputs[k]->kind() == NodeKind::constant) {
      host_values[k] = inputs[k]->value().to(Device::cpu);
      values[k] = &host_values[k];
    }
  TensorType out;
  try {
    out = op.infer_type(types, values, attrs);
  } catch (const TypeError& e) {
    throw TypeError(where() + e.what());
  } catch (const ValueError& e) {
    throw ValueError(where() + e.what());
  } catch (const std::bad_variant_access&) {
    throw ValueError(where() + "an attribute has the wrong type");
  }
  Node& n = add_node(NodeKind::op, node_name, std::move(out));
  n.op_ = &op;
  n.attrs_ = std::move(attrs);
  for (const auto& v : inputs) n.inputs_.push_back(v.node());
  return &n;
}

Var Graph::find(const std::string& name) const {
  for (const auto& n : nodes_)
    if (n->name() == name) return n.get();
  return {};
}

std::vector<Var> Graph::inputs() const {
  std::vector<Var> out;
  for (const auto& n : nodes_)
    if (n->kind() == NodeKind::input) out.emplace_back(n.get());
  return out;
}

std::vector<Var> Graph::params() const {
  std::vector<Var> out;
  for (const auto& n : nodes_)
    if (n->kind() == NodeKind::param) out.emplace_back(n.get());
  return out;
}

std::string Graph::to_string() const {
  std::ostringstream os;
  os << "Graph(" << nodes_.size() << " nodes)";
  for (const auto& n : nodes_) os << "\n  " << n->to_string();
  return os.str();
}

namespace {
// A DOT string literal's body: quotes and backslashes escaped (user-chosen names may hold either).
std::string dot_escaped(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}
}  // namespace

std::string Graph::to_dot(const std::vector<Var>& outputs) const {
  std::vector<Node*> nodes;
  if (outputs.empty()) {
    for (const auto& n : nodes_) nodes.push_back(n.get());
  } else {
    std::vector<Node*> roots;
    for (const Var& v : outputs) {
      if (!v || &v.graph() != this) throw ValueError("to_dot: an output is not a node of this graph");
      roots.push_back(v.node());
    }
    nodes = topological_order(roots);
  }
  std::unordered_set<const Node*> is_output;
  for (const Var& v : outputs) is_output.insert(v.node());

  std::ostringstream os;
  os << "digraph xgrad {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=10];\n";
  for (const Node* n : nodes) {
    const char* shape = n->kind() == NodeKind::op ? "box" : n->kind() == NodeKind::param ? "doubleoctagon" : "ellipse";
    // An op node's generated name ("matmul_8") only repeats its op: show a name the user gave.
    const bool generated_name = n->op() && n->name() == n->op()->name() + "_" + std::to_string(n->id());
    os << "  n" << n->id() << " [shape=" << shape << ", label=\"";
    if (!generated_name) os << dot_escaped(n->name()) << (n->op() ? "\\n" : "");
    if (n->op()) os << n->op()->name();
    os << "\\n" << xgrad::to_string(n->type()) << "\"";
    if (is_output.count(n)) os << ", penwidth=2";
    os << "];\n";
    for (const Node* in : n->inputs()) os << "  n" << in->id() << " -> n" << n->id() << ";\n";
  }
  os << "}\n";
  return os.str();
}

std::vector<Node*> topological_order(const std::vector<Node*>& roots) {
  std::vector<Node*> order;
  std::unordered_set<const Node*> done;
  std::vector<std::pair<Node*, std::size_t>> stack;  // node, next input to visit
  for (Node* root : roots) {
    if (done.count(root)) continue;
    stack.emplace_back(root, 0);
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      if (next < node->inputs().size()) {
        Node* child = node->inputs()[next++];
        if (!done.count(child)) stack.emplace_back(child, 0);
        continue;
      }
      if (done.insert(node).second) order.push_back(node);
      stack.pop_back();
    }
  }
  return order;
}

}  // namespace xgrad

namespace xgrad {
const Var& GradCtx::x(std::size_t i) const { return inputs.at(i); }
}  // namespace xgrad
