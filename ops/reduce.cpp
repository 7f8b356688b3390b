// Reductions over axes, and the broadcasting inverse used by gradients.
#include <algorithm>
#include <cstring>
#include <limits>

#include "core/thread_pool.h"
#include "ops/elementwise.h"
#include "ops/reduce_util.h"
#include "core/onnx_lowering.h"
#include "ops/ops.h"

namespace xgrad {

namespace {

using G = std::vector<Var>;

TensorType infer_reduce(const std::vector<TensorType>& in, const Attrs& attrs) {
  infer::require_floating(in[0]);
  const Axes axes = reduce_axes(attrs, static_cast<std::int64_t>(in[0].shape.size()));
  return {in[0].dtype, reduced_shape(in[0].shape, axes, attrs.get_int("keepdims") != 0)};
}

// The sum of n contiguous elements, in double. Blocks of 1024 are summed in T by four SIMD accumulators (each
// lane adds at most 16 values), and the block sums in double: as accurate as numpy's pairwise sum, at memory speed.
template <class T>
double sum_run(const T* x, std::int64_t n) {
  using B = kernels::Batch<T>;
  constexpr std::int64_t lanes = B::size, block = 1024;
  double total = 0;
  std::int64_t i = 0;
  for (; i + block <= n; i += block) {
    B acc[4] = {B(T(0)), B(T(0)), B(T(0)), B(T(0))};
    for (std::int64_t j = 0; j < block; j += 4 * lanes)
      for (int a = 0; a < 4; ++a) acc[a] += B::load_unaligned(x + i + j + a * lanes);
    total += static_cast<double>(xsimd::hadd((acc[0] + acc[1]) + (acc[2] + acc[3])));
  }
  B acc(T(0));
  for (; i + lanes <= n; i += lanes) acc += B::load_unaligned(x + i);
  double rest = static_cast<double>(xsimd::hadd(acc));
  for (; i < n; ++i) rest += x[i];
  return total + rest;
}

// out (contiguous, numel = product of kept dims) = sum of x over the axes where
// `kept` (x's rank, 1 on reduced axes) differs from x's shape. One thread.
template <class T>
void sum_serial(const Tensor& x, const Shape& kept, T* out, double scale) {
  const std::int64_t n_out = numel(kept);
  std::fill(out, out + n_out, T(0));
  const Strides out_strides = broadcast_strides(kept, contiguous_strides(kept), x.shape());
  const T* xp = static_cast<const T*>(x.raw_data());
  strided_loop<2>(x.shape(), {&out_strides, &x.strides()}, [&](std::int64_t cnt, const auto& off, const auto& st) {
    if (st[0] == 0 && st[1] == 1) {  // reducing along a contiguous inner run
      out[off[0]] += static_cast<T>(sum_run(xp + off[1], cnt));
    } else if (st[0] == 0) {  // along a strided one: accumulate in double
      double s = 0;
      for (std::int64_t i = 0; i < cnt; ++i) s += xp[off[1] + i * st[1]];
      out[off[0]] += static_cast<T>(s);
    } else if (st[0] == 1 && st[1] == 1) {  // rows into the output (a column sum): vectorized by the compiler
      T* o = out + off[0];
      const T* v = xp + off[1];
      for (std::int64_t i = 0; i < cnt; ++i) o[i] += v[i];
    } else {
      for (std::int64_t i = 0; i < cnt; ++i) out[off[0] + i * st[0]] += xp[off[1] + i * st[1]];
    }
  });
  if (scale != 1.0)
    for (std::int64_t i = 0; i < n_out; ++i) out[i] = static_cast<T>(out[i] * scale);
}

// sum_serial over the thread pool for large inputs: x is cut along its first axis. Where that axis is kept, each
// part writes its own rows of out; where it is reduced, each part sums into its own copy of out, and the
// copies are added in double.
template <class T>
void sum_into(const Tensor& x, const Shape& kept, T* out, double scale) {
  constexpr std::int64_t kSplitElements = 1 << 18;
  const std::int64_t rows = x.ndim() > 0 ? x.shape()[0] : 0;
  const std::int64_t parts = x.numel() >= kSplitElements && rows >= 2
                                 ? std::min<std::int64_t>(rows, static_cast<std::int64_t>(ThreadPool::instance().workers()) + 1)
                                 : 1;
  if (parts <= 1) return sum_serial(x, kept, out, scale);
  const std::int64_t n_out = numel(kept);
  const bool rows_kept = kept[0] == rows;
  std::vector<T> partial(rows_kept ? 0 : static_cast<std::size_t>(parts * n_out));
  ThreadPool::instance().run(static_cast<std::size_t>(parts), [&](std::size_t p) {
    const auto part = static_cast<std::int64_t>(p);
    const std::int64_t lo = rows * part / parts, hi = rows * (part + 1) / parts;
    Shape kept_part = kept;
    if (rows_kept) kept_part[0] = hi - lo;
    T* dst = rows_kept ? out + lo * (n_out / rows) : partial.data() + part * n_out;
    sum_serial(x.slice(0, lo, hi), kept_part, dst, rows_kept ? scale : 1.0);
  });
  if (rows_kept) return;
  for (std::int64_t i = 0; i < n_out; ++i) {
    double s = 0;
    for (std::int64_t part = 0; part < parts; ++part) s += static_cast<double>(partial[static_cast<std::size_t>(part * n_out + i)]);
    out[i] = static_cast<T>(s * scale);
  }
}

// out = fold of x over the reduced axes with `combine`, starting from `init`.
template <class T, class Combine>
void fold_into(const Tensor& x, const Shape& kept, T* out, T init, Combine combine) {
  std::fill(out, out + numel(kept), init);
  const Strides out_strides = broadcast_strides(kept, contiguous_strides(kept), x.shape());
  const T* xp = static_cast<const T*>(x.raw_data());
  strided_loop<2>(x.shape(), {&out_strides, &x.strides()}, [&](std::int64_t cnt, const auto& off, const auto& st) {
    for (std::int64_t i = 0; i < cnt; ++i) {
      T& o = out[off[0] + i * st[0]];
      o = combine(o, xp[off[1] + i * st[1]]);
    }
  });
}

void sum_kernel(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const Tensor& x = *in[0];
  kernels::dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    sum_into<T>(x, keepdims_shape(x, attrs), static_cast<T*>(out.raw_data()), 1.0);
  });
}

void mean_kernel(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const Tensor& x = *in[0];
  const Shape kept = keepdims_shape(x, attrs);
  const std::int64_t count = reduced_count(x.shape(), kept);
  kernels::dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    sum_into<T>(x, kept, static_cast<T*>(out.raw_data()), count == 0 ? std::nan("") : 1.0 / count);
  });
}

template <class Combine, int kInit>  // kInit: -1 lowest, +1 highest, 0 one
void fold_kernel(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const Tensor& x = *in[0];
  const Shape kept = keepdims_shape(x, attrs);
  kernels::dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (kInit != 0 && numel(kept) > 0 && x.numel() == 0)
      throw ValueError("max/min of an empty reduction has no identity");
    const T init = kInit < 0 ? -std::numeric_limits<T>::infinity() : kInit > 0 ? std::numeric_limits<T>::infinity() : T(1);
    fold_into<T>(x, kept, static_cast<T*>(out.raw_data()), init, Combine{});
  });
}

TensorType infer_sum_to_like(const std::vector<TensorType>& in, const Attrs&) {
  infer::require_floating(in[0]);
  const Shape& x = in[0].shape;
  const Shape& target = in[1].shape;
  if (target.size() > x.size() || broadcast_shapes(x, target).size() != x.size())
    throw ValueError("cannot sum " + to_string(x) + " down to " + to_string(target));
  for (std::size_t i = 0; i < target.size(); ++i) {
    const auto t = target[i], d = x[x.size() - target.size() + i];
    if (t != 1 && t != kDynamic && d != kDynamic && t != d)
      throw ValueError("cannot sum " + to_string(x) + " down to " + to_string(target));
  }
  return {in[0].dtype, target};
}

void sum_to_like_kernel(const Tensor* const* in, Tensor& out, const Attrs&) {
  const Tensor& x = *in[0];
  kernels::dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    sum_into<T>(x, sum_to_kept(x.shape(), out.shape()), static_cast<T*>(out.raw_data()), 1.0);
  });
}

// Number of elements a reduction folds into each output, as a scalar of x's dtype.
void reduction_size_kernel(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const Tensor& x = *in[0];
  const double count = static_cast<double>(reduced_count(x.shape(), keepdims_shape(x, attrs)));
  kernels::dispatch_floating(out.dtype(), [&](auto tag) { *static_cast<decltype(tag)*>(out.raw_data()) = count; });
}

// ReduceSum takes its axes as an input since opset 13; the other reductions
// keep them as an attribute until opset 18.
std::string lower_sum(OnnxLowerCtx& c) {
  const Axes axes = reduce_axes(c.attrs(), static_cast<std::int64_t>(c.in_type().shape.size()));
  if (axes.empty()) return c.op("Identity", {c.in()});
  return c.op("ReduceSum", {c.in(), c.ints(axes)}, {{"keepdims", c.attrs().get_int("keepdims")}});
}

LowerFn lower_reduce(const char* onnx_type) {
  return [onnx_type = std::string(onnx_type)](OnnxLowerCtx& c) {
    const Axes axes = reduce_axes(c.attrs(), static_cast<std::int64_t>(c.in_type().shape.size()));
    if (axes.empty()) return c.op("Identity", {c.in()});
    return c.op(onnx_type, {c.in()}, {{"axes", axes}, {"keepdims", c.attrs().get_int("keepdims")}});
  };
}

// A constant when the reduced dims are static. Otherwise a reduction of ones:
// standard ops that every importer (ours included) reads back.
std::string lower_reduction_size(OnnxLowerCtx& c) {
  const Shape& shape = c.in_type().shape;
  const Axes axes = reduce_axes(c.attrs(), static_cast<std::int64_t>(shape.size()));
  double count = 1;
  bool known = true;
  for (auto a : axes) {
    known = known && shape[a] != kDynamic;
    count *= static_cast<double>(shape[a]);
  }
  if (known) return c.op("Identity", {c.scalar(count)});
  const std::string ones = c.op("Expand", {c.scalar(1), c.op("Shape", {c.in()})});
  const std::string counts = c.op("ReduceSum", {ones, c.ints(axes)}, {{"keepdims", std::int64_t{0}}});
  if (axes.size() == shape.size()) return counts;
  return c.op("ReduceMax", {counts}, {{"keepdims", std::int64_t{0}}});
}

// Leading axes summed away, then the axes where the target has size 1.
std::string lower_sum_to_like(OnnxLowerCtx& c) {
  const Shape& x = c.in_type(0).shape;
  const Shape& target = c.in_type(1).shape;
  const auto lead = static_cast<std::int64_t>(x.size() - target.size());
  std::string y = c.in();
  if (lead > 0) {
    Axes leading;
    for (std::int64_t i = 0; i < lead; ++i) leading.push_back(i);
    y = c.op("ReduceSum", {y, c.ints(leading)}, {{"keepdims", std::int64_t{0}}});
  }
  Axes ones;
  for (std::size_t i = 0; i < target.size(); ++i)
    if (target[i] == 1 && x[lead + i] != 1) ones.push_back(static_cast<std::int64_t>(i));
  if (!ones.empty()) y = c.op("ReduceSum", {y, c.ints(ones)}, {{"keepdims", std::int64_t{1}}});
  return y == c.in() ? c.op("Identity", {y}) : y;
}

Var unsqueeze_reduced(Var dy, const Attrs& attrs, std::int64_t ndim) {
  if (attrs.get_int("keepdims")) return dy;
  return unsqueeze(dy, reduce_axes(attrs, ndim));
}

const OpDef& sum_op = register_op(OpDef("sum").infer(infer_reduce).kernel(sum_kernel).onnx(lower_sum).grad(
    [](const GradCtx& c) { return G{broadcast_like(unsqueeze_reduced(c.dy, c.attrs, c.x().node()->shape().size()), c.x())}; }));

const OpDef& reduction_size_op = register_op(
    OpDef("reduction_size")
        .infer([](const std::vector<TensorType>& in, const Attrs&) { return TensorType{in[0].dtype, {}}; })
        .kernel(reduction_size_kernel)
        .onnx(lower_reduction_size)
        .grad([](const GradCtx&) { return G{Var()}; }));  // depends on x's shape only

// The mean of nothing is NaN (numpy, PyTorch, xgrad), where ONNX Runtime's ReduceMean gives 0: a mean whose
// reduced extent may be 0 (a symbolic axis, or a static 0) is exported as a sum divided by the count.
std::string lower_mean(OnnxLowerCtx& c) {
  const Shape& shape = c.in_type().shape;
  bool may_be_empty = false;
  for (auto a : reduce_axes(c.attrs(), static_cast<std::int64_t>(shape.size()))) may_be_empty |= shape[a] == kDynamic || shape[a] == 0;
  if (!may_be_empty) return lower_reduce("ReduceMean")(c);
  return c.op("Div", {lower_sum(c), lower_reduction_size(c)});
}

const OpDef& mean_op = register_op(OpDef("mean").infer(infer_reduce).kernel(mean_kernel).onnx(lower_mean).grad(
    [](const GradCtx& c) {
      const Var& x = c.x();
      const Var spread = broadcast_like(unsqueeze_reduced(c.dy, c.attrs, x.shape().size()), x);
      return G{spread / count_reduced(x, c.attrs.get_ints("axes"))};
    }));

const OpDef& sum_to_like_op = register_op(
    OpDef("sum_to_like")
        .arity(2)
        .infer(infer_sum_to_like)
        .kernel(sum_to_like_kernel)
        .view([](const Tensor* const* in, const Shape&, const Attrs&) { return *in[0]; },
              [](const Tensor* const* in, const Shape& out_shape, const Attrs&) { return in[0]->shape() == out_shape; })
        .onnx(lower_sum_to_like)
        .grad([](const GradCtx& c) { return G{broadcast_like(c.dy, c.x(0)), Var()}; }));

// Gradient of max / min: dy goes to the elements equal to the result, split evenly among ties.
std::vector<Var> extremum_grad(const GradCtx& c) {
  const Var& x = c.x();
  const std::int64_t ndim = static_cast<std::int64_t>(x.shape().size());
  const Var hit = eq(x, broadcast_like(unsqueeze_reduced(c.output, c.attrs, ndim), x));
  const Var ties = sum(astype(hit, x.dtype()), reduce_axes(c.attrs, ndim), true);
  const Var share = broadcast_like(unsqueeze_reduced(c.dy, c.attrs, ndim) / ties, x);
  return G{where(hit, share, 0.0)};
}

// max and min have no identity: an empty reduction is refused when the plan knows the shapes.
TensorType infer_extremum(const std::vector<TensorType>& in, const Attrs& attrs) {
  const TensorType out = infer_reduce(in, attrs);
  for (auto a : reduce_axes(attrs, static_cast<std::int64_t>(in[0].shape.size())))
    if (in[0].shape[static_cast<std::size_t>(a)] == 0) throw ValueError("max/min over an empty axis has no value");
  return out;
}

const OpDef& max_op = register_op(OpDef("max").infer(infer_extremum).kernel(fold_kernel<ew::MaxCombine, -1>).onnx(lower_reduce("ReduceMax"))
    .grad(extremum_grad));
const OpDef& min_op = register_op(OpDef("min").infer(infer_extremum).kernel(fold_kernel<ew::MinCombine, 1>).onnx(lower_reduce("ReduceMin"))
    .grad(extremum_grad));

// d prod / d x_i = product of the other elements. Where x_i == 0 that is the product of the
// non-zero elements if x_i is the only zero, else 0; elsewhere it is y / x_i.
// Known limit: differentiating this again is exact unless a slice holds two or more zeros.
const OpDef& prod_op = register_op(OpDef("prod").infer(infer_reduce).kernel(fold_kernel<ew::ProdCombine, 0>).onnx(lower_reduce("ReduceProd"))
    .grad([](const GradCtx& c) {
      const Var& x = c.x();
      const std::int64_t ndim = static_cast<std::int64_t>(x.shape().size());
      const Axes axes = reduce_axes(c.attrs, ndim);
      const Var is_zero = eq(x, 0.0);
      const Var nonzero_prod = prod(where(is_zero, 1.0, x), axes, true);
      const Var zeros = sum(astype(is_zero, x.dtype()), axes, true);
      const Var at_zero = broadcast_like(where(eq(zeros, 1.0), nonzero_prod, 0.0), x);
      const Var y = broadcast_like(unsqueeze_reduced(c.output, c.attrs, ndim), x);
      const Var others = where(is_zero, at_zero, y / where(is_zero, 1.0, x));
      return G{broadcast_like(unsqueeze_reduced(c.dy, c.attrs, ndim), x) * others};
    }));

}  // namespace

Var max(Var x, const Axes& axes, bool keepdims) {
  return x.graph().apply(max_op, {x}, {{"axes", axes}, {"keepdims", std::int64_t{keepdims}}});
}

Var min(Var x, const Axes& axes, bool keepdims) {
  return x.graph().apply(min_op, {x}, {{"axes", axes}, {"keepdims", std::int64_t{keepdims}}});
}

Var prod(Var x, const Axes& axes, bool keepdims) {
  return x.graph().apply(prod_op, {x}, {{"axes", axes}, {"keepdims", std::int64_t{keepdims}}});
}

Var count_reduced(Var x, const Axes& axes) {
  Shape reduced_dims;
  const auto ndim = static_cast<std::int64_t>(x.shape().size());
  if (axes.empty()) reduced_dims = x.shape();
  for (auto a : axes) reduced_dims.push_back(x.shape()[normalize_axis(a, ndim, "count_reduced")]);
  if (is_static(reduced_dims)) return x.graph().scalar(static_cast<double>(numel(reduced_dims)), x.dtype());
  return x.graph().apply(reduction_size_op, {x}, {{"axes", axes}, {"keepdims", std::int64_t{0}}});
}

Var sum(Var x, const Axes& axes, bool keepdims) {
  return x.graph().apply(sum_op, {x}, {{"axes", axes}, {"keepdims", std::int64_t{keepdims}}});
}

Var mean(Var x, const Axes& axes, bool keepdims) {
  return x.graph().apply(mean_op, {x}, {{"axes", axes}, {"keepdims", std::int64_t{keepdims}}});
}

// With `like`'s shape known statically, the reduction needs only x: the
// program need not keep (or even compute) `like` just for its shape.
Var sum_to_like(Var x, Var like) {
  const Shape& target = like.shape();
  if (x.shape() == target && is_static(x.shape())) return x;
  if (!is_static(target) || target.size() > x.shape().size()) return x.graph().apply(sum_to_like_op, {x, like});
  const std::size_t lead = x.shape().size() - target.size();
  Axes axes;
  for (std::size_t d = 0; d < x.shape().size(); ++d)
    if (d < lead || (target[d - lead] == 1 && x.shape()[d] != 1)) axes.push_back(static_cast<std::int64_t>(d));
  for (std::size_t d = lead; d < x.shape().size(); ++d)
    if (target[d - lead] != 1 && x.shape()[d] != kDynamic && x.shape()[d] != target[d - lead])
      return x.graph().apply(sum_to_like_op, {x, like});  // let infer report the mismatch
  const Var summed = axes.empty() ? x : sum(x, axes, true);
  return summed.shape() == target ? summed : reshape(summed, target);
}

}  // namespace xgrad
