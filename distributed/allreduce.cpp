// The allreduce op: its inputs, flattened and packed one after another into one buffer (a bucket), summed
// (or averaged) over every process. The kernel packs the bucket and hands it to the communication thread;
// the Program waits for the result only where it is first read (OpDef::completes). Each input's share of
// the result is a view of the bucket (slice + reshape), so nothing is copied back out.
#include <cstring>
#include <functional>

#include "core/error.h"
#include "core/onnx_lowering.h"
#include "core/op.h"
#include "distributed/collectives.h"
#include "distributed/communicator.h"
#include "distributed/distributed.h"
#include "ops/ops.h"

namespace xgrad::distributed {

namespace {

Reduce reduce_of(const Attrs& a) { return parse_reduce(a.get_string("op")); }

TensorType infer_allreduce(const std::vector<TensorType>& in, const Attrs& a) {
  reduce_of(a);
  if (in.empty()) throw ValueError("allreduce needs at least one value");
  std::int64_t total = 0;
  for (const TensorType& t : in) {
    if (t.dtype != in[0].dtype)
      throw TypeError("allreduce: the values of one bucket share a dtype (" + to_string(in[0]) + " and " + to_string(t) + ")");
    if (!is_floating(t.dtype)) throw TypeError("allreduce: needs floating values, got " + to_string(t));
    const std::int64_t n = numel(t.shape);
    if (n == kDynamic || total == kDynamic) total = kDynamic;
    else total += n;
  }
  if (total == kDynamic && in.size() > 1)
    throw ValueError("allreduce: a bucket of several values needs static shapes (a value with a dynamic batch is reduced alone)");
  return TensorType{in[0].dtype, Shape{total}};
}

// What the processes must agree on before reducing: dtype, op and every input's shape.
std::int64_t signature_of(const Tensor* const* in, std::size_t count, const Tensor& out, Reduce op) {
  std::size_t h = std::hash<int>()(static_cast<int>(out.dtype())) * 31 + static_cast<std::size_t>(op);
  for (std::size_t i = 0; i < count; ++i)
    for (std::int64_t d : in[i]->shape()) h = h * 1000003u ^ std::hash<std::int64_t>()(d);
  return static_cast<std::int64_t>(h & 0x3fffffffffffffffULL);  // its negation never overflows
}

// MPI reads and writes host memory: a device program packs the bucket on the device, copies it to a host
// buffer, reduces that, and copies the result back when it is waited for (OpDef::completes).
template <class T>
void scale(T* p, std::int64_t n, double factor) {
  const T f = static_cast<T>(factor);
  for (std::int64_t i = 0; i < n; ++i) p[i] *= f;
}

template <class T>
void copy_scaled(const T* src, T* dst, std::int64_t n, double factor) {
  const T f = static_cast<T>(factor);
  for (std::int64_t i = 0; i < n; ++i) dst[i] = src[i] * f;
}

// Packs x into part (a contiguous slice of the bucket), times `factor`: a host mean divides while it packs,
// which saves a pass over the bucket after the reduction.
void pack(const Tensor& x, Tensor part, double factor) {
  if (factor == 1.0) return part.reshape(x.shape()).copy_from(x);
  if (!x.is_contiguous() || x.dtype() != part.dtype()) {
    part.reshape(x.shape()).copy_from(x);
    if (part.dtype() == DType::float32) scale(part.data<float>(), part.numel(), factor);
    else scale(part.data<double>(), part.numel(), factor);
    return;
  }
  if (part.dtype() == DType::float32) copy_scaled(x.data<float>(), part.data<float>(), x.numel(), factor);
  else copy_scaled(x.data<double>(), part.data<double>(), x.numel(), factor);
}

void allreduce_kernel(const Tensor* const* in, Tensor& out, const Attrs& a) {
  const auto count = static_cast<std::size_t>(a.get_int("count"));
  const Reduce op = reduce_of(a);
  const bool reducing = detail::reducing();  // in a world of one the packed values are the sum and the mean
  const bool on_host = out.device() == Device::cpu;
  // On the host, a mean is a sum of values divided by the process count as they are packed.
  const bool divide_while_packing = reducing && on_host && op == Reduce::mean &&
                                    (out.dtype() == DType::float32 || out.dtype() == DType::float64);
  const double factor = divide_while_packing ? 1.0 / detail::communicator()->size() : 1.0;
  std::int64_t offset = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const Tensor& x = *in[i];
    const std::int64_t n = x.numel();
    if (on_host) pack(x, out.slice(0, offset, offset + n), factor);
    else out.slice(0, offset, offset + n).reshape(x.shape()).copy_from(x);
    offset += n;
  }
  if (!reducing) return;
  std::string description = "allreduce of " + a.get_string("label") + ": ";
  for (std::size_t i = 0; i < count; ++i) description += (i ? ", " : "") + to_string(TensorType{in[i]->dtype(), in[i]->shape()});
  // A mean divided while packing (host) and one divided after the sum (device) must not be mixed across ranks.
  const std::int64_t signature = signature_of(in, count, out, op) ^ (divide_while_packing ? 0x5bd1e995 : 0);
  if (on_host)
    return detail::start_allreduce(out.raw_data(), out.numel(), out.dtype(), divide_while_packing ? Reduce::sum : op,
                                   signature, std::move(description));
  detail::start_allreduce_through_host(out.to(Device::cpu), out, op, signature, std::move(description));
}

void allreduce_complete(Tensor& out) { detail::finish_allreduce(out.raw_data()); }

std::string allreduce_note(const std::vector<TensorType>& in, const TensorType& out, const Attrs& a) {
  const std::int64_t n = numel(out.shape);
  std::string size = n == kDynamic ? "dynamic size" : std::to_string(n * static_cast<std::int64_t>(itemsize(out.dtype)) / 1024) + " KiB";
  return std::string(in.size() > 1 ? "bucket of " : "") + a.get_string("label") + ", " + size + ", " + a.get_string("op") +
         " over processes on the communication thread";
}

// A world of one: each input flattened, concatenated.
std::string lower_allreduce(OnnxLowerCtx& c) {
  std::vector<std::string> flat;
  for (std::size_t i = 0; i < c.ins().size(); ++i) flat.push_back(c.op("Reshape", {c.in(i), c.ints({-1})}));
  return flat.size() == 1 ? flat[0] : c.op("Concat", flat, {{"axis", std::int64_t{0}}});
}

Var apply_allreduce(const std::vector<Var>& values, Reduce op, const std::string& label);

// Each value's share of a bucket: a view.
std::vector<Var> unpack(Var bucket, const std::vector<Var>& values) {
  std::vector<Var> parts;
  if (values.size() == 1) return {reshape_like(bucket, values[0])};
  std::int64_t offset = 0;
  for (const Var& v : values) {
    const std::int64_t n = numel(v.shape());
    parts.push_back(reshape(slice(bucket, {offset}, {offset + n}, {1}), v.shape()));
    offset += n;
  }
  return parts;
}

const OpDef& allreduce_op = register_op(OpDef("allreduce").arity(-1).infer(infer_allreduce).kernel(allreduce_kernel)
    .completes(allreduce_complete).kernel_note(allreduce_note).onnx(lower_allreduce).nondeterministic().any_device()
    .grad([](const GradCtx& c) {
      // The result is the same on every process, and each process's input feeds it once: the gradient of an
      // input is the reduction (same op) of the gradient every process has for the result.
      const Var reduced = apply_allreduce({c.dy}, reduce_of(c.attrs), "gradient of " + c.attrs.get_string("label"));
      return unpack(reduced, c.inputs);
    }));

Var apply_allreduce(const std::vector<Var>& values, Reduce op, const std::string& label) {
  Attrs attrs;
  attrs.set("op", std::string(reduce_name(op)));
  attrs.set("count", static_cast<std::int64_t>(values.size()));
  attrs.set("label", label);
  return values.at(0).graph().apply(allreduce_op, values, std::move(attrs));
}

}  // namespace

Var allreduce(Var x, Reduce op) { return unpack(apply_allreduce({x}, op, "'" + x.name() + "'"), {x})[0]; }

std::vector<Var> allreduce_buckets(const std::vector<Var>& values, Reduce op, std::size_t bucket_bytes,
                                   const std::vector<std::string>& names) {
  std::vector<Var> out;
  std::size_t first = 0;
  while (first < values.size()) {
    std::size_t end = first, bytes = 0;
    while (end < values.size()) {
      const std::int64_t n = numel(values[end].shape());
      const std::size_t b = n == kDynamic ? bucket_bytes : static_cast<std::size_t>(n) * itemsize(values[end].dtype());
      const bool fits = end == first || (bytes + b <= bucket_bytes && values[end].dtype() == values[first].dtype() && n != kDynamic);
      if (!fits) break;
      bytes += b;
      ++end;
      if (n == kDynamic) break;
    }
    std::vector<Var> members(values.begin() + static_cast<std::ptrdiff_t>(first), values.begin() + static_cast<std::ptrdiff_t>(end));
    std::string label;
    for (std::size_t i = first; i < end; ++i)
      label += (i > first ? ", " : "") + (i < names.size() ? names[i] : "'" + values[i].name() + "'");
    for (const Var& part : unpack(apply_allreduce(members, op, label), members)) out.push_back(part);
    first = end;
  }
  return out;
}

}  // namespace xgrad::distributed
