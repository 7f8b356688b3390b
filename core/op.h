// The op contract. An op is one OpDef in the registry and carries
// everything about it: type inference, CPU kernel (or zero-copy view),
// gradient built from other ops' builder functions, and its ONNX lowering.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/attrs.h"
#include "core/tensor.h"

namespace xgrad {

class Node;
class Var;
class OnnxLowerCtx;

struct TensorType {
  DType dtype = DType::float32;
  Shape shape;
  bool operator==(const TensorType& o) const { return dtype == o.dtype && shape == o.shape; }
};
std::string to_string(const TensorType& type);  // "float32(None, 10)"

// Output type from input types. Throws ValueError / TypeError with a message
// about the shapes; the graph adds the op and node names.
using InferFn = std::function<TensorType(const std::vector<TensorType>& inputs, const Attrs& attrs)>;

// Hot path: plain function pointers, called from the Program's tape.
using KernelFn = void (*)(const Tensor* const* inputs, Tensor& out, const Attrs& attrs);
using ViewFn = Tensor (*)(const Tensor* const* inputs, const Shape& out_shape, const Attrs& attrs);
// An elementwise op's math over n contiguous elements of raw memory: in[a] points at operand a's first
// element, or at its single element when scalar[a] (read for every output element); all operands and the
// output have `dtype`. Tiled groups call it once per tile, with no Tensor in between.
using SpanFn = void (*)(const void* const* in, const bool* scalar, void* out, std::int64_t n, DType dtype,
                        const Attrs& attrs);
// What print(program) says about the kernel a step runs (the library behind it, what it fused), or "", from
// the step's static input and output types (a dimension may be dynamic) and attributes.
using KernelNoteFn = std::string (*)(const std::vector<TensorType>& inputs, const TensorType& out, const Attrs& attrs);
// For a kernel that starts work which finishes later (a reduction across processes, on the communication
// thread): waits for it to finish, throwing what it failed with. The Program calls it before the first step
// that reads the output, and before the run returns or rethrows.
using CompleteFn = void (*)(Tensor& out);
// Decides at plan time (given input layouts) whether a view op can alias.
using AliasIfFn = bool (*)(const Tensor* const* inputs, const Shape& out_shape, const Attrs& attrs);
// Output type of an op whose shape depends on the values of some inputs (a shape computed inside the graph).
// values[i] is input i's value (a CPU tensor) where it is known, else null: when a node is made, the values
// of constants; when a Program plans a feed-shape signature, also every value computed only from shapes.
using ValueInferFn = TensorType (*)(const std::vector<TensorType>& inputs, const std::vector<const Tensor*>& values,
                                    const Attrs& attrs);

struct GradCtx {
  const Node& node;
  const std::vector<Var>& inputs;
  const Var& output;
  const Var& dy;  // gradient flowing into the output
  const Attrs& attrs;
  const Var& x(std::size_t i = 0) const;  // the i-th input
};
// One gradient per input; an empty Var means "identically zero" (the output
// does not depend on that input's values).
using GradFn = std::function<std::vector<Var>(const GradCtx&)>;

// Emits the op's ONNX form (core/onnx_lowering.h) and returns the ONNX value
// name that holds the op's output.
using LowerFn = std::function<std::string(OnnxLowerCtx&)>;

class OpDef {
 public:
  explicit OpDef(std::string name) : name_(std::move(name)) {}

  OpDef& arity(int n) { arity_ = n; return *this; }
  OpDef& infer(InferFn f) { infer_ = std::move(f); return *this; }
  // The output's shape depends on the values of the inputs listed (reshape to a computed target).
  OpDef& infer_from_values(ValueInferFn f, std::vector<int> value_inputs) {
    value_infer_ = f;
    value_inputs_ = std::move(value_inputs);
    return *this;
  }
  // The output's value depends on its inputs' shapes only (shape_of): a Program computes it, and every small
  // value computed from it and from constants, once per feed-shape signature when it plans that signature.
  OpDef& shape_only() { shape_only_ = true; return *this; }
  OpDef& kernel(KernelFn f) { kernel_ = f; return *this; }
  // A view op returns a Tensor over its input's storage. With alias_if, the
  // view is used only when the predicate holds; otherwise the kernel runs.
  OpDef& view(ViewFn f, AliasIfFn alias_if = nullptr) { view_ = f; alias_if_ = alias_if; return *this; }
  OpDef& grad(GradFn f) { grad_ = std::move(f); return *this; }
  OpDef& not_differentiable(std::string why) { non_diff_reason_ = std::move(why); return *this; }
  // ONNX lowering: one node of this type over the op's inputs, or a function.
  OpDef& onnx(const char* op_type);
  OpDef& onnx(LowerFn lower) { lower_ = std::move(lower); return *this; }
  // Ops whose output differs between runs for equal inputs (random masks):
  // never merged with one another by common-subexpression elimination.
  OpDef& nondeterministic() { deterministic_ = false; return *this; }
  // out[i] depends on input[i] only (inputs of the output's shape, or single
  // elements): the kernel may then run on matching slices of its operands,
  // which lets the Program run chains of such ops tile by tile.
  OpDef& elementwise() { elementwise_ = true; return *this; }
  // The same math as the kernel, as a span kernel (implies elementwise; inputs of the output's dtype).
  OpDef& span(SpanFn f) { span_ = f; elementwise_ = true; return *this; }
  // The kernel can reject input values (an index out of range, a singular
  // matrix): a Program never writes a param in place before such a step.
  OpDef& kernel_note(KernelNoteFn f) { kernel_note_ = f; return *this; }
  OpDef& validates_values() { validates_values_ = true; return *this; }
  // The kernel only copies, fills and views through Tensor methods, which work
  // on every device: device Programs run it as it is.
  OpDef& any_device() { any_device_ = true; return *this; }
  OpDef& completes(CompleteFn f) { complete_ = f; return *this; }

  const std::string& name() const { return name_; }
  int arity() const { return arity_; }
  const InferFn& infer() const { return infer_; }
  ValueInferFn value_infer() const { return value_infer_; }  // nullptr for ops whose shape needs no values
  const std::vector<int>& value_inputs() const { return value_inputs_; }
  bool is_shape_only() const { return shape_only_; }
  // Output type from input types, with the listed inputs' values (null where unknown) for value_infer ops.
  TensorType infer_type(const std::vector<TensorType>& inputs, const std::vector<const Tensor*>& values,
                        const Attrs& attrs) const {
    return value_infer_ ? value_infer_(inputs, values, attrs) : infer_(inputs, attrs);
  }
  KernelFn kernel() const { return kernel_; }
  SpanFn span() const { return span_; }
  KernelNoteFn kernel_note() const { return kernel_note_; }
  ViewFn view() const { return view_; }
  AliasIfFn alias_if() const { return alias_if_; }
  const GradFn& grad() const { return grad_; }
  bool differentiable() const { return static_cast<bool>(grad_); }
  const std::string& non_differentiable_reason() const { return non_diff_reason_; }
  const LowerFn& lowering() const { return lower_; }
  bool deterministic() const { return deterministic_; }
  bool is_elementwise() const { return elementwise_; }
  bool can_reject_values() const { return validates_values_; }
  bool runs_on_any_device() const { return any_device_; }
  CompleteFn completion() const { return complete_; }  // nullptr: the kernel is done when it returns

 private:
  std::string name_;
  int arity_ = 1;
  InferFn infer_;
  ValueInferFn value_infer_ = nullptr;
  std::vector<int> value_inputs_;
  bool shape_only_ = false;
  KernelFn kernel_ = nullptr;
  SpanFn span_ = nullptr;
  KernelNoteFn kernel_note_ = nullptr;
  CompleteFn complete_ = nullptr;
  ViewFn view_ = nullptr;
  AliasIfFn alias_if_ = nullptr;
  GradFn grad_;
  std::string non_diff_reason_;
  LowerFn lower_;
  bool deterministic_ = true;
  bool elementwise_ = false;
  bool validates_values_ = false;
  bool any_device_ = false;
};

// The registry. register_op returns a reference that stays valid for the
// life of the process; ops keep it in a static to build nodes without a look-up.
const OpDef& register_op(OpDef def);
const OpDef& find_op(const std::string& name);  // throws ValueError for unknown names
std::vector<const OpDef*> registered_ops();

// Kernels for devices other than the CPU, registered by the backend's files
// (cuda/) at load time under the op's name; the CPU kernel stays the OpDef's.
// A Program compiled for a device looks each op up here, and an op without
// one is a compile-time error naming it: no silent fallback to the CPU.
void register_device_kernel(const std::string& op, Device device, KernelFn kernel);
KernelFn device_kernel(const std::string& op, Device device);  // nullptr when there is none
// What a Program compiled for `device` runs for op: the CPU kernel, the device's registered one, or the
// op's own kernel when it runs on any device; nullptr when there is none.
KernelFn kernel_for(const OpDef& op, Device device);

}  // namespace xgrad
