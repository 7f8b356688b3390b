// The graph IR: a Graph owns immutable Nodes; Var is the cheap handle that
// user code and builder functions pass around.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/op.h"

namespace xgrad {

class Graph;

enum class NodeKind { input, param, constant, op };
const char* kind_name(NodeKind kind);

class Node {
 public:
  int id() const { return id_; }
  NodeKind kind() const { return kind_; }
  const std::string& name() const { return name_; }
  const TensorType& type() const { return type_; }
  const Shape& shape() const { return type_.shape; }
  DType dtype() const { return type_.dtype; }
  const OpDef* op() const { return op_; }  // null unless kind() == op
  const std::vector<Node*>& inputs() const { return inputs_; }
  const Attrs& attrs() const { return attrs_; }
  Graph& graph() const { return *graph_; }

  // Params and constants. A param's storage never changes identity, so
  // compiled Programs and numpy views of it always see the current value.
  const Tensor& value() const;
  void set_value(const Tensor& v);  // copies into the existing storage (across devices too)
  // Params and constants: the value now lives on `device` (a copy; the old storage is released).
  void move_to(Device device);

  std::string to_string() const;

 private:
  friend class Graph;
  Node() = default;
  Graph* graph_ = nullptr;
  int id_ = 0;
  NodeKind kind_ = NodeKind::op;
  std::string name_;
  TensorType type_;
  const OpDef* op_ = nullptr;
  std::vector<Node*> inputs_;
  Attrs attrs_;
  Tensor value_;
};

class Var {
 public:
  Var() = default;
  Var(Node* node) : node_(node) {}  // NOLINT: implicit by design, a Var is a Node handle
  Node* node() const { return node_; }
  Node* operator->() const { return node_; }
  explicit operator bool() const { return node_ != nullptr; }
  Graph& graph() const { return node_->graph(); }
  const Shape& shape() const { return node_->shape(); }
  DType dtype() const { return node_->dtype(); }
  const std::string& name() const { return node_->name(); }
  bool operator==(const Var& o) const { return node_ == o.node_; }
  bool operator!=(const Var& o) const { return node_ != o.node_; }

 private:
  Node* node_ = nullptr;
};

// (param, new value) pairs: state written back after a compiled run.
using ParamUpdates = std::vector<std::pair<Var, Var>>;

class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // A placeholder fed at run time. kDynamic (-1) dimensions are symbolic.
  Var input(const std::string& name, const Shape& shape, DType dtype = DType::float32);
  // A trainable value owned by the graph; `value` is copied once.
  Var param(const std::string& name, const Tensor& value);
  Var constant(const Tensor& value, const std::string& name = "");
  Var scalar(double value, DType dtype);

  // Creates an op application after checking the graph and inferring its type.
  Var apply(const OpDef& op, const std::vector<Var>& inputs, Attrs attrs = {});

  const std::vector<std::unique_ptr<Node>>& nodes() const { return nodes_; }
  Var find(const std::string& name) const;  // null Var when absent
  std::vector<Var> inputs() const;
  std::vector<Var> params() const;
  std::string to_string() const;
  // Graphviz DOT text: the nodes `outputs` depend on (outputs drawn bold), or the whole graph when empty.
  std::string to_dot(const std::vector<Var>& outputs = {}) const;

 private:
  Node& add_node(NodeKind kind, const std::string& name, TensorType type);
  void check_new_name(const std::string& name, const char* what) const;
  std::vector<std::unique_ptr<Node>> nodes_;
};

// Reverse-topological-safe ordering of everything `roots` depend on, without recursion.
std::vector<Node*> topological_order(const std::vector<Node*>& roots);

}  // namespace xgrad
