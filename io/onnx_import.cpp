// ONNX import: checks the file, then maps each node onto builder functions
// through the table in io/onnx_import_ops.cpp.
#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <unordered_map>

#include "autodiff/program.h"
#include "autodiff/shape_folding.h"
#include "io/onnx.h"
#include "io/onnx_import.h"

namespace xgrad::io {

namespace {

constexpr std::int64_t kMinOpset = 1;
constexpr std::int64_t kMaxOpset = 17;

Shape shape_of_value_info(const onnx::ValueInfoProto& vi) {
  if (!vi.type().has_tensor_type())
    throw TypeError("onnx import: input '" + vi.name() + "' is a " +
                    (vi.type().has_sequence_type() ? "sequence" : vi.type().has_optional_type() ? "optional" : "non-tensor") +
                    " value; xgrad imports tensors only");
  Shape shape;
  for (const auto& d : vi.type().tensor_type().shape().dim())
    shape.push_back(d.has_dim_value() && d.dim_value() >= 0 ? d.dim_value() : kDynamic);
  return shape;
}

std::string node_label(const onnx::NodeProto& n) {
  return n.op_type() + (n.name().empty() ? "" : " '" + n.name() + "'");
}

}  // namespace

Var ImportCtx::in(std::size_t k) const {
  if (!has_input(k)) fail("input " + std::to_string(k) + " is required");
  return in_[k];
}

const std::vector<Var>& ImportCtx::sequence(std::size_t k) const {
  if (k >= sequences_.size() || !sequences_[k])
    fail("input " + std::to_string(k) + (k < n_inputs() ? " ('" + node.input(static_cast<int>(k)) + "')" : std::string()) +
         " must be a sequence");
  return *sequences_[k];
}

bool ImportCtx::is_constant(std::size_t k) const {
  if (!has_input(k)) return false;
  const NodeKind kind = in_[k]->kind();
  return kind == NodeKind::constant || kind == NodeKind::param;
}

const Tensor& ImportCtx::constant(std::size_t k) const {
  if (!has_input(k)) fail("input " + std::to_string(k) + " is required");
  if (!is_constant(k))
    fail("input " + std::to_string(k) + " ('" + node.input(static_cast<int>(k)) +
         "') must be a constant or an initializer for xgrad to import it");
  return in_[k]->value();
}

std::vector<std::int64_t> ImportCtx::const_ints(std::size_t k) const {
  const Tensor t = constant(k).astype(DType::int64).contiguous();
  const auto* p = static_cast<const std::int64_t*>(t.raw_data());
  return std::vector<std::int64_t>(p, p + t.numel());
}

Var ImportCtx::shape_input(std::size_t k) const {
  const Var v = in(k);
  if (!known_before_run(v))
    fail("input " + std::to_string(k) + " ('" + node.input(static_cast<int>(k)) + "') must be a constant or computed from " +
         "shapes (Shape, Size) and constants for xgrad to import it: it sets the output's shape");
  return v;
}

double ImportCtx::const_scalar(std::size_t k) const {
  const Tensor& t = constant(k);
  if (t.numel() != 1) fail("input " + std::to_string(k) + " must hold one value, has shape " + to_string(t.shape()));
  return t.item();
}

const onnx::AttributeProto* ImportCtx::attr(const std::string& name) const {
  for (const auto& a : node.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

std::int64_t ImportCtx::attr_int(const std::string& name, std::int64_t fallback) const {
  const auto* a = attr(name);
  return a ? a->i() : fallback;
}
double ImportCtx::attr_float(const std::string& name, double fallback) const {
  const auto* a = attr(name);
  return a ? a->f() : fallback;
}
std::vector<std::int64_t> ImportCtx::attr_ints(const std::string& name, std::vector<std::int64_t> fallback) const {
  const auto* a = attr(name);
  return a ? std::vector<std::int64_t>(a->ints().begin(), a->ints().end()) : fallback;
}
std::string ImportCtx::attr_string(const std::string& name, const std::string& fallback) const {
  const auto* a = attr(name);
  return a ? a->s() : fallback;
}
const onnx::TensorProto* ImportCtx::attr_tensor(const std::string& name) const {
  const auto* a = attr(name);
  return a && a->has_t() ? &a->t() : nullptr;
}

void ImportCtx::fail(const std::string& message) const {
  throw ValueError("onnx import: node " + node_label(node) + ": " + message);
}

std::vector<std::string> onnx_importable_ops() {
  std::vector<std::string> names;
  for (const auto& [name, fn] : import_table()) names.push_back(name);
  return names;
}

namespace {

// Names in a corrupt file may hold any bytes: errors show them escaped (and
// stay valid UTF-8 for Python).
std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char ch : s) {
    if (ch >= 0x20 && ch < 0x7f) {
      out += static_cast<char>(ch);
    } else {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[ch >> 4];
      out += hex[ch & 15];
    }
  }
  return out;
}

OnnxModel load_model(const std::string& bytes, const std::string& what, const OnnxConstants& constants);

// Inputs that stay int64 when a node is folded in float64: they are indices.
bool index_input(const std::string& op_type, std::size_t k) {
  if (op_type == "OneHot") return k == 0;
  return k == 1 && (op_type == "Gather" || op_type == "GatherElements" || op_type == "ScatterElements" ||
                    op_type == "ScatterND");
}

// Our arithmetic is float-only: a node that rejects int64 values runs on them
// as float64 (exact below 2^53), its float outputs cast back to int64 when
// the input that sets ONNX's output type was int64.
Imported import_node(const ImportFn& fn, const onnx::NodeProto& n, const std::vector<Var>& ins,
                     const std::vector<const ShapeEntries*>& entries, std::int64_t opset, Graph& g) {
  ImportCtx ctx(g, n, ins, entries, opset);
  if (n.output_size() == 0) ctx.fail("the node has no outputs");
  try {
    return fn(ctx);
  } catch (const TypeError&) {
    std::vector<Var> as_float = ins;
    bool any = false;
    for (std::size_t k = 0; k < ins.size(); ++k) {
      if (!ins[k] || ins[k].dtype() != DType::int64 || index_input(n.op_type(), k)) continue;
      as_float[k] = ins[k]->kind() == NodeKind::constant ? g.constant(ins[k]->value().astype(DType::float64))
                                                          : astype(ins[k], DType::float64);
      any = true;
    }
    if (!any) throw;
    const std::size_t typed = n.op_type() == "Where" ? 1 : 0;
    const bool back = typed < ins.size() && ins[typed] && ins[typed].dtype() == DType::int64;
    ImportCtx retry(g, n, as_float, entries, opset);
    Imported r = fn(retry);
    for (auto& v : r.outputs)
      if (v && back && v.dtype() == DType::float64) v = astype(v, DType::int64);
    return r;
  }
}

// A node whose inputs are all constants (shape arithmetic in models that
// other exporters wrote) is computed now, in a scratch graph.
Imported fold_constants(const ImportFn& fn, const onnx::NodeProto& n, const std::vector<Var>& ins,
                        std::int64_t opset, Graph& g) {
  Graph scratch;
  std::vector<Var> local;
  for (const auto& v : ins) local.push_back(v ? scratch.constant(v->value()) : Var());
  const Imported r = import_node(fn, n, local, std::vector<const ShapeEntries*>(ins.size()), opset, scratch);
  std::vector<Var> outs;
  for (const auto& v : r.outputs)
    if (v) outs.push_back(v);
  const std::vector<Tensor> values = compile(outs).run({});
  Imported folded;
  std::size_t next = 0;
  for (const auto& v : r.outputs) folded.outputs.push_back(v ? g.constant(values[next++]) : Var());
  return folded;
}

}  // namespace

OnnxModel load_onnx_bytes(const std::string& bytes, const std::string& what, const OnnxConstants& constants) {
  try {
    return load_model(bytes, what, constants);
  } catch (const TypeError& e) {
    throw TypeError(printable(e.what()));
  } catch (const ValueError& e) {
    throw ValueError(printable(e.what()));
  } catch (const std::exception& e) {  // anything else a malformed model trips over
    throw ValueError("onnx import: " + printable(what) + " cannot be imported: " + printable(e.what()));
  }
}

namespace {

OnnxModel load_model(const std::string& bytes, const std::string& what, const OnnxConstants& constants) {
  onnx::ModelProto model;
  if (bytes.empty()) throw ValueError("onnx import: " + what + " is empty");
  if (!model.ParseFromString(bytes))
    throw ValueError("onnx import: " + what + " is not a valid ONNX model (truncated or corrupt protobuf)");
  if (!model.has_graph()) throw ValueError("onnx import: " + what + " holds no graph (not an ONNX model?)");

  const onnx::GraphProto& graph = model.graph();
  const auto& table = import_table();
  std::set<std::string> unsupported;
  for (const auto& n : graph.node()) {
    const bool standard = n.domain().empty() || n.domain() == "ai.onnx";
    const std::string key = standard ? n.op_type() : n.domain() + "." + n.op_type();
    if (!table.count(key)) unsupported.insert(key);
  }
  if (!unsupported.empty()) {
    std::string list;
    for (const auto& u : unsupported) list += (list.empty() ? "" : ", ") + u;
    throw ValueError("onnx import: " + what + " uses ops xgrad cannot import: " + list);
  }

  OnnxModel out;
  out.opset = -1;
  for (const auto& o : model.opset_import()) {
    if (o.domain().empty() || o.domain() == "ai.onnx") out.opset = o.version();
  }
  if (out.opset < 0) throw ValueError("onnx import: " + what + " imports no opset of the default ONNX domain");
  if (out.opset < kMinOpset || out.opset > kMaxOpset)
    throw ValueError("onnx import: " + what + " uses opset " + std::to_string(out.opset) + "; xgrad imports opsets " +
                     std::to_string(kMinOpset) + " to " + std::to_string(kMaxOpset));

  out.graph = std::make_unique<Graph>();
  Graph& g = *out.graph;
  std::unordered_map<std::string, Var> values;
  std::unordered_map<std::string, ShapeEntries> entries;  // what is known of shape values computed in the graph
  std::set<std::string> initializer_names;
  for (const auto& init : graph.initializer()) {
    if (init.name().empty()) throw ValueError("onnx import: an initializer has no name");
    const Tensor value = from_proto(init, "initializer '" + init.name() + "'");
    // Floating initializers are the model's weights; integer ones are shapes and indices.
    values[init.name()] = is_floating(value.dtype()) ? g.param(init.name(), value) : g.constant(value, init.name());
    initializer_names.insert(init.name());
  }
  for (const auto& vi : graph.input()) {
    if (initializer_names.count(vi.name())) continue;  // an input with a default value: the initializer
    const Shape shape = shape_of_value_info(vi);
    const DType dtype = dtype_from_onnx(vi.type().tensor_type().elem_type(), "input '" + vi.name() + "'");
    auto given = std::find_if(constants.begin(), constants.end(), [&](const auto& c) { return c.first == vi.name(); });
    if (given != constants.end()) {
      const Tensor& t = given->second;
      bool fits = t.dtype() == dtype && t.shape().size() == shape.size();
      for (std::size_t d = 0; fits && d < shape.size(); ++d) fits = shape[d] == kDynamic || shape[d] == t.shape()[d];
      if (!fits)
        throw ValueError("onnx import: the constant given for input '" + vi.name() + "' is " + dtype_name(t.dtype()) +
                         to_string(t.shape()) + ", the input is " + dtype_name(dtype) + to_string(shape));
      values[vi.name()] = g.constant(t, vi.name());
      continue;
    }
    const Var v = g.input(vi.name(), shape, dtype);
    values[vi.name()] = v;
    out.inputs.push_back(v);
  }
  std::unordered_map<std::string, std::vector<Var>> sequences;
  for (const auto& n : graph.node()) {
    std::vector<Var> ins;
    std::vector<const ShapeEntries*> known;
    std::vector<const std::vector<Var>*> seqs;
    for (const auto& name : n.input()) {
      seqs.push_back(nullptr);
      ins.emplace_back();
      known.push_back(nullptr);
      if (name.empty()) continue;
      if (auto seq = sequences.find(name); seq != sequences.end()) {
        seqs.back() = &seq->second;
        continue;
      }
      auto it = values.find(name);
      if (it == values.end())
        throw ValueError("onnx import: node " + node_label(n) + " reads '" + name +
                         "', which no earlier node, input or initializer defines");
      ins.back() = it->second;
      if (auto e = entries.find(name); e != entries.end()) known.back() = &e->second;
    }
    const bool standard = n.domain().empty() || n.domain() == "ai.onnx";
    const ImportFn& fn = table.at(standard ? n.op_type() : n.domain() + "." + n.op_type());
    bool all_constant = n.op_type() != "Constant" && !ins.empty();
    for (std::size_t k = 0; k < ins.size(); ++k) all_constant = all_constant && (!ins[k] || ins[k]->kind() == NodeKind::constant);
    const bool sequence_op = is_sequence_op(n.op_type()) && standard;
    ImportCtx ctx(g, n, ins, known, out.opset, seqs);
    for (std::size_t k = 0; k < seqs.size() && !sequence_op; ++k)
      if (seqs[k]) ctx.fail("input '" + n.input(static_cast<int>(k)) + "' is a sequence, and " + n.op_type() + " takes tensors");
    Imported result;
    try {
      if (sequence_op) {
        if (n.output_size() != 1) ctx.fail("expects one output");
        result = fn(ctx);
      } else {
        result = all_constant ? fold_constants(fn, n, ins, out.opset, g) : import_node(fn, n, ins, known, out.opset, g);
      }
    } catch (const ValueError& e) {
      const std::string msg = e.what();
      if (msg.rfind("onnx import:", 0) == 0) throw;
      throw ValueError("onnx import: node " + node_label(n) + ": " + msg);
    } catch (const TypeError& e) {
      throw TypeError("onnx import: node " + node_label(n) + ": " + e.what());
    }
    if (result.sequence) {
      sequences[n.output(0)] = std::move(*result.sequence);
      continue;
    }
    for (int k = 0; k < n.output_size(); ++k) {
      if (n.output(k).empty()) continue;
      if (k >= static_cast<int>(result.outputs.size()) || !result.outputs[k]) {
        if (k == 0) ctx.fail("produced no value");
        continue;  // an optional output we do not compute (e.g. Dropout's mask)
      }
      Var value = result.outputs[k];
      entries.erase(n.output(k));  // a name defined again (an invalid model) keeps nothing of its earlier value
      // A shape value: what is known of its entries; all of them known, it is a constant from here on.
      if (standard && value->kind() != NodeKind::constant)
        if (std::optional<ShapeEntries> e = propagate_entries(n, ins, known, value, out.opset)) {
          if (Var c = as_constant(g, value, *e)) value = c;
          else entries[n.output(k)] = std::move(*e);
        }
      values[n.output(k)] = value;
    }
  }
  for (const auto& o : graph.output()) {
    auto it = values.find(o.name());
    if (sequences.count(o.name()))
      throw TypeError("onnx import: output '" + o.name() + "' is a sequence; xgrad's graphs return tensors");
    if (it == values.end()) throw ValueError("onnx import: output '" + o.name() + "' is never computed");
    out.outputs.push_back(it->second);
    out.output_names.push_back(o.name());
  }
  return out;
}

}  // namespace

OnnxModel load_onnx(const std::string& path, const OnnxConstants& constants) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw ValueError("onnx import: cannot open '" + path + "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  return load_onnx_bytes(ss.str(), "'" + path + "'", constants);
}

}  // namespace xgrad::io
