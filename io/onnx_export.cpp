// ONNX export: walks the subgraph that computes the outputs, asks each op's
// lowering for its ONNX nodes, then checks the model with the ONNX checker and
// shape inference before anything is written.
#include <onnx/checker.h>
#include <onnx/shape_inference/implementation.h>

#include <map>
#include <set>
#include <unordered_map>

#include "core/error.h"
#include "core/onnx_lowering.h"
#include "io/atomic_file.h"
#include "io/onnx.h"
#include "io/onnx_proto.h"

namespace xgrad::io {

namespace {

constexpr std::int64_t kIrVersion = 8;  // the IR version of opset 17

class Exporter;

// A Constant node whose output is `name`.
void add_constant_node(onnx::GraphProto& graph, const std::string& name, const Tensor& value) {
  onnx::NodeProto* n = graph.add_node();
  n->set_op_type("Constant");
  n->set_name(name);
  n->add_output(name);
  onnx::AttributeProto* a = n->add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  *a->mutable_t() = to_proto(value, name);
}

void add_identity_node(onnx::GraphProto& graph, const std::string& from, const std::string& to) {
  onnx::NodeProto* n = graph.add_node();
  n->set_op_type("Identity");
  n->set_name(to + "/Identity");
  n->add_input(from);
  n->add_output(to);
}

// One node's lowering, writing into the exporter's GraphProto.
class LowerCtx final : public OnnxLowerCtx {
 public:
  LowerCtx(Exporter& ex, const Node& node, std::vector<std::string> inputs)
      : OnnxLowerCtx(node, std::move(inputs)), ex_(ex) {}
  std::vector<std::string> emit(const std::string& op_type, const std::vector<std::string>& inputs,
                                const std::vector<OnnxAttr>& attrs, int n_outputs, const std::string& domain) override;
  std::string constant(const Tensor& value) override;
  int first_node = 0;  // index in the GraphProto of this lowering's first node

 private:
  Exporter& ex_;
};

class Exporter {
 public:
  Exporter(const std::vector<Var>& outputs, const OnnxExportOptions& options) : outputs_(outputs), options_(options) {}

  onnx::ModelProto run();
  std::string fresh_name(const std::string& base) {
    std::string name = base;
    for (int k = 1; used_names_.count(name); ++k) name = base + "_" + std::to_string(k);
    used_names_.insert(name);
    return name;
  }
  onnx::GraphProto& graph() { return *model_.mutable_graph(); }
  void use_domain(const std::string& domain) {
    if (!domain.empty()) domains_.insert(domain);
  }

 private:
  void check_arguments(const std::vector<Node*>& order);
  const Node* resolve(const Node* n) const;
  std::vector<const Node*> export_order();
  void add_value_info(onnx::ValueInfoProto* info, const std::string& name, const TensorType& type, bool name_dims);
  std::string lower(const Node& node);
  void check_shapes(const onnx::ModelProto& model);

  std::vector<Var> outputs_;
  const OnnxExportOptions& options_;
  std::vector<Var> inputs_;
  onnx::ModelProto model_;
  std::set<std::string> used_names_;
  std::set<std::string> domains_;
  std::unordered_map<const Node*, std::string> value_of_;
  std::unordered_map<const Node*, Tensor> fixed_;  // inputs exported as constants
};

std::vector<std::string> LowerCtx::emit(const std::string& op_type, const std::vector<std::string>& inputs,
                                        const std::vector<OnnxAttr>& attrs, int n_outputs, const std::string& domain) {
  onnx::NodeProto* n = ex_.graph().add_node();
  n->set_op_type(op_type);
  n->set_name(ex_.fresh_name(node().name() + "/" + op_type));
  if (!domain.empty()) n->set_domain(domain);
  ex_.use_domain(domain);
  for (const auto& in : inputs) n->add_input(in);
  std::vector<std::string> outs;
  for (int i = 0; i < n_outputs; ++i) {
    outs.push_back(ex_.fresh_name(node().name() + "/" + op_type + "_out" + (i ? std::to_string(i) : "")));
    n->add_output(outs.back());
  }
  for (const auto& a : attrs) {
    onnx::AttributeProto* p = n->add_attribute();
    p->set_name(a.name);
    std::visit(
        [&](const auto& v) {
          using V = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<V, std::int64_t>) {
            p->set_type(onnx::AttributeProto::INT);
            p->set_i(v);
          } else if constexpr (std::is_same_v<V, double>) {
            p->set_type(onnx::AttributeProto::FLOAT);
            p->set_f(static_cast<float>(v));
          } else if constexpr (std::is_same_v<V, std::vector<std::int64_t>>) {
            p->set_type(onnx::AttributeProto::INTS);
            for (auto x : v) p->add_ints(x);
          } else if constexpr (std::is_same_v<V, std::vector<double>>) {
            p->set_type(onnx::AttributeProto::FLOATS);
            for (auto x : v) p->add_floats(static_cast<float>(x));
          } else {
            p->set_type(onnx::AttributeProto::STRING);
            p->set_s(v);
          }
        },
        a.value);
  }
  return outs;
}

std::string LowerCtx::constant(const Tensor& value) {
  const std::string name = ex_.fresh_name(node().name() + "/const");
  add_constant_node(ex_.graph(), name, value);
  return name;
}

void Exporter::check_arguments(const std::vector<Node*>& order) {
  if (outputs_.empty()) throw ValueError("onnx export: no outputs given");
  const Graph* g = &outputs_[0].graph();
  for (const auto& v : outputs_)
    if (&v.graph() != g) throw ValueError("onnx export: the outputs belong to different graphs");
  if (options_.opset != 17)
    throw ValueError("onnx export: opset " + std::to_string(options_.opset) + " is not supported; the lowerings target opset 17");
  if (!options_.output_names.empty() && options_.output_names.size() != outputs_.size())
    throw ValueError("onnx export: " + std::to_string(options_.output_names.size()) + " output names for " +
                     std::to_string(outputs_.size()) + " outputs");
  std::set<const Node*> listed;
  for (const auto& v : options_.inputs) {
    if (!v || &v.graph() != g) throw ValueError("onnx export: an input belongs to another graph");
    if (v->kind() != NodeKind::input)
      throw ValueError("onnx export: '" + v.name() + "' is a " + kind_name(v->kind()) + ", not an input");
    if (!listed.insert(v.node()).second) throw ValueError("onnx export: input '" + v.name() + "' is listed twice");
    if (fixed_.count(v.node())) throw ValueError("onnx export: input '" + v.name() + "' is both fixed and listed");
  }
  inputs_ = options_.inputs;
  for (const Node* n : order) {
    if (n->kind() != NodeKind::input) continue;
    if (options_.inputs.empty()) {
      inputs_.push_back(const_cast<Node*>(n));
    } else if (!listed.count(n)) {
      throw ValueError("onnx export: the outputs depend on input '" + n->name() + "', which is not in inputs");
    }
  }
  if (options_.inputs.empty())
    std::sort(inputs_.begin(), inputs_.end(), [](const Var& a, const Var& b) { return a->id() < b->id(); });
}

// Symbolic dims of inputs get names: the leading one is "batch", others
// "<input>_dim<k>"; outputs leave theirs to shape inference.
void Exporter::add_value_info(onnx::ValueInfoProto* info, const std::string& name, const TensorType& type,
                              bool name_dims) {
  info->set_name(name);
  auto* t = info->mutable_type()->mutable_tensor_type();
  t->set_elem_type(static_cast<int>(onnx_elem_type(type.dtype)));
  auto* shape = t->mutable_shape();
  for (std::size_t k = 0; k < type.shape.size(); ++k) {
    auto* dim = shape->add_dim();
    if (type.shape[k] != kDynamic) dim->set_dim_value(type.shape[k]);
    else if (name_dims) dim->set_dim_param(k == 0 ? "batch" : name + "_dim" + std::to_string(k));
  }
}

// A where() whose condition is a fixed input or a scalar constant stands for
// the branch it takes (when that branch already has the output's type).
const Node* Exporter::resolve(const Node* n) const {
  while (n->kind() == NodeKind::op && n->op()->name() == "where") {
    const Node* cond = n->inputs()[0];
    const Tensor* value = nullptr;
    if (auto it = fixed_.find(cond); it != fixed_.end()) value = &it->second;
    else if (cond->kind() == NodeKind::constant) value = &cond->value();
    if (!value || value->numel() != 1) break;
    const Node* branch = n->inputs()[value->item() != 0 ? 1 : 2];
    if (!(branch->type() == n->type())) break;
    n = branch;
  }
  return n;
}

// Dependencies of the outputs through resolved inputs, inputs first; iterative.
std::vector<const Node*> Exporter::export_order() {
  std::vector<const Node*> order;
  std::set<const Node*> seen;
  std::vector<std::pair<const Node*, std::size_t>> stack;
  for (const auto& v : outputs_) {
    const Node* root = resolve(v.node());
    if (!seen.insert(root).second) continue;
    stack.push_back({root, 0});
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      if (next < node->inputs().size()) {
        const Node* in = resolve(node->inputs()[next++]);
        if (seen.insert(in).second) stack.push_back({in, 0});
        continue;
      }
      order.push_back(node);
      stack.pop_back();
    }
  }
  return order;
}

std::string Exporter::lower(const Node& node) {
  std::vector<std::string> ins;
  for (const Node* in : node.inputs()) ins.push_back(value_of_.at(resolve(in)));
  LowerCtx ctx(*this, node, ins);
  ctx.first_node = graph().node_size();
  std::string result;
  try {
    result = node.op()->lowering()(ctx);
  } catch (const std::exception& e) {
    throw ValueError("onnx export: op '" + node.op()->name() + "' (node '" + node.name() + "', inputs " +
                     [&] {
                       std::string s;
                       for (const Node* in : node.inputs()) s += (s.empty() ? "" : ", ") + to_string(in->type());
                       return s;
                     }() + ") cannot be lowered: " + e.what());
  }
  // The op's value takes the node's name when the lowering produced it;
  // a lowering that forwards an input gets an Identity.
  const std::string name = fresh_name(node.name());
  bool produced = false;
  for (int i = ctx.first_node; i < graph().node_size(); ++i)
    for (const auto& out : graph().node(i).output()) produced = produced || out == result;
  if (produced) {
    for (int i = ctx.first_node; i < graph().node_size(); ++i) {
      onnx::NodeProto* n = graph().mutable_node(i);
      for (auto& in : *n->mutable_input())
        if (in == result) in = name;
      for (auto& out : *n->mutable_output())
        if (out == result) out = name;
    }
  } else {
    add_identity_node(graph(), result, name);
  }
  return name;
}

onnx::ModelProto Exporter::run() {
  for (const auto& [v, value] : options_.fixed) {
    if (!v || v->kind() != NodeKind::input)
      throw ValueError("onnx export: only inputs can be fixed, '" + (v ? v.name() : std::string("?")) + "' is not one");
    if (value.dtype() != v.dtype() || !is_static(v.shape()) || value.shape() != v.shape())
      throw ValueError("onnx export: the value fixed for input '" + v.name() + "' must be " + to_string(v->type()));
    fixed_[v.node()] = value;
  }
  for (const auto& v : outputs_)
    if (!v) throw ValueError("onnx export: an output is an empty node");
  std::vector<Node*> order;
  for (const Node* n : export_order())
    if (!fixed_.count(n)) order.push_back(const_cast<Node*>(n));
  check_arguments(order);

  model_.set_ir_version(kIrVersion);
  model_.set_producer_name("xgrad");
  model_.set_producer_version("0.1.0");
  graph().set_name(options_.graph_name);
  for (const Node* n : order)
    if (n->kind() != NodeKind::op) used_names_.insert(n->name());
  for (const auto& v : inputs_) {
    value_of_[v.node()] = v.name();
    used_names_.insert(v.name());
    add_value_info(graph().add_input(), v.name(), v->type(), true);
  }
  std::set<const Node*> read;
  for (const Node* n : order)
    for (const Node* in : n->inputs()) read.insert(resolve(in));
  for (const auto& [n, value] : fixed_) {
    if (!read.count(n)) continue;
    used_names_.insert(n->name());
    value_of_[n] = n->name();
    add_constant_node(graph(), n->name(), value);
  }
  for (const Node* n : order) {
    switch (n->kind()) {
      case NodeKind::input: break;
      case NodeKind::param:
        value_of_[n] = n->name();
        *graph().add_initializer() = to_proto(n->value().to(Device::cpu), n->name());
        break;
      case NodeKind::constant:
        value_of_[n] = n->name();
        add_constant_node(graph(), n->name(), n->value().to(Device::cpu));
        break;
      case NodeKind::op: value_of_[n] = lower(*n); break;
    }
  }
  std::set<std::string> output_names;
  for (std::size_t i = 0; i < outputs_.size(); ++i) {
    const Node* n = resolve(outputs_[i].node());
    std::string value = value_of_.at(n);
    std::string want = options_.output_names.empty() ? value : options_.output_names[i];
    // A graph output must be a value of its own: not an input or initializer, not another output.
    const bool forwards = n->kind() != NodeKind::op || output_names.count(value) || want != value;
    if (forwards) {
      if (options_.output_names.empty()) want = fresh_name(value + "_output");
      else if (used_names_.count(want) || output_names.count(want))
        throw ValueError("onnx export: output name '" + want + "' is already used in the model");
      else used_names_.insert(want);
      add_identity_node(graph(), value, want);
    }
    output_names.insert(want);
    add_value_info(graph().add_output(), want, n->type(), false);
  }
  auto* opset = model_.add_opset_import();
  opset->set_domain("");
  opset->set_version(options_.opset);
  for (const auto& d : domains_) {
    auto* o = model_.add_opset_import();
    o->set_domain(d);
    o->set_version(1);
  }
  try {
    onnx::checker::check_model(model_);
  } catch (const std::exception& e) {
    throw ValueError(std::string("onnx export: the ONNX checker rejects the model: ") + e.what());
  }
  check_shapes(model_);
  return model_;
}

// ONNX shape inference must agree with xgrad's types on every output: a
// lowering that computes the wrong type or shape fails here, not in serving.
void Exporter::check_shapes(const onnx::ModelProto& model) {
  onnx::ModelProto inferred = model;
  try {
    onnx::ShapeInferenceOptions opts{true, 1, false};
    onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(), opts);
  } catch (const std::exception& e) {
    throw ValueError(std::string("onnx export: ONNX shape inference fails on the model: ") + e.what());
  }
  std::map<std::string, const onnx::TypeProto*> types;
  for (const auto& vi : inferred.graph().value_info()) types[vi.name()] = &vi.type();
  for (const auto& [node, name] : value_of_) {
    auto it = types.find(name);
    if (it == types.end() || !it->second->has_tensor_type()) continue;
    const auto& t = it->second->tensor_type();
    const TensorType& want = node->type();
    if (t.elem_type() != onnx_elem_type(want.dtype))
      throw ValueError("onnx export: node '" + node->name() + "' is " + dtype_name(want.dtype) +
                       " but its lowering gives " + onnx_elem_type_name(t.elem_type()));
    if (!t.has_shape()) continue;
    bool bad = t.shape().dim_size() != static_cast<int>(want.shape.size());
    for (int k = 0; !bad && k < t.shape().dim_size(); ++k) {
      const auto& d = t.shape().dim(k);
      bad = d.has_dim_value() && want.shape[k] != kDynamic && d.dim_value() != want.shape[k];
    }
    if (bad) {
      std::string got = "(";
      for (int k = 0; k < t.shape().dim_size(); ++k)
        got += (k ? ", " : "") + (t.shape().dim(k).has_dim_value() ? std::to_string(t.shape().dim(k).dim_value()) : "?");
      throw ValueError("onnx export: node '" + node->name() + "' has shape " + to_string(want.shape) +
                       " but its lowering gives " + got + ")");
    }
  }
}

}  // namespace

std::string export_onnx_bytes(const std::vector<Var>& outputs, const OnnxExportOptions& options) {
  Exporter ex(outputs, options);
  const onnx::ModelProto model = ex.run();
  std::string bytes;
  if (!model.SerializeToString(&bytes)) throw ValueError("onnx export: the model could not be serialized (over 2 GiB?)");
  return bytes;
}

void export_onnx(const std::vector<Var>& outputs, const std::string& path, const OnnxExportOptions& options) {
  write_file_atomically(path, export_onnx_bytes(outputs, options), "onnx export");
}

}  // namespace xgrad::io
