// Importers for ONNX's indexing, convolution, pooling, normalization and
// linear-algebra ops.
#include <algorithm>

#include "io/onnx_import.h"
#include "ops/conv.h"
#include "ops/linalg.h"

namespace xgrad::io {

namespace {

Imported import_gather(ImportCtx& c) { return one(take(c.in(0), c.in(1), c.attr_int("axis", 0))); }

Imported import_gather_elements(ImportCtx& c) {
  return one(take_along_axis(c.in(0), c.in(1), c.attr_int("axis", 0)));
}

// data with updates written (reduction none) or added (add) at the indices:
// both are a scatter-add of the updates into zeros, which
// take_along_axis's gradient is.
Var scatter_into(ImportCtx& c, Var data, Var scattered_updates, Var scattered_ones) {
  const std::string reduction = c.attr_string("reduction", "none");
  if (reduction == "add") return data + scattered_updates;
  const Var hit = gt(scattered_ones, 0.0);
  if (reduction == "mul") return where(hit, data * scattered_updates, data);  // indices are unique
  if (reduction != "none") c.fail("reduction '" + reduction + "' is not supported");
  return where(hit, scattered_updates, data);
}

Imported import_scatter_elements(ImportCtx& c) {
  const Var data = c.in(0), idx = c.in(1), updates = c.in(2);
  const std::int64_t axis = c.attr_int("axis", 0);
  const OpDef& scatter_add = find_op("take_along_axis_grad");  // the adjoint of take_along_axis
  const Var spread = c.g.apply(scatter_add, {updates, idx, data}, {{"axis", axis}});
  const Var ones = c.g.apply(scatter_add, {zeros_like(updates) + 1.0, idx, data}, {{"axis", axis}});
  return one(scatter_into(c, data, spread, ones));
}

// ScatterND with constant indices: each index row becomes one position in
// the flattened leading dims, then a take_grad along that axis.
Imported import_scatter_nd(ImportCtx& c) {
  const Var data = c.in(0), updates = c.in(2);
  const Tensor idx = c.constant(1).astype(DType::int64).contiguous();
  const Shape& ds = data.shape();
  const auto k = idx.shape().back();
  if (!is_static(ds)) c.fail("ScatterND needs the data's shape static");
  const std::int64_t rows = idx.numel() / std::max<std::int64_t>(k, 1);
  std::int64_t lead = 1;
  for (std::int64_t d = 0; d < k; ++d) lead *= ds[d];
  Tensor flat = Tensor::empty(DType::int64, {rows});
  const auto* ip = static_cast<const std::int64_t*>(idx.raw_data());
  auto* fp = static_cast<std::int64_t*>(flat.raw_data());
  for (std::int64_t r = 0; r < rows; ++r) {
    std::int64_t pos = 0;
    for (std::int64_t d = 0; d < k; ++d) {
      std::int64_t i = ip[r * k + d];
      if (i < 0) i += ds[d];
      if (i < 0 || i >= ds[d]) c.fail("index " + std::to_string(ip[r * k + d]) + " is out of range");
      pos = pos * ds[d] + i;
    }
    fp[r] = pos;
  }
  if (c.attr_string("reduction", "none") != "add") {
    std::vector<std::int64_t> sorted(fp, fp + rows);
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
      c.fail("repeated indices are supported only with reduction='add'");
  }
  Shape data_flat{lead}, upd_flat{rows};
  for (std::size_t d = static_cast<std::size_t>(k); d < ds.size(); ++d) data_flat.push_back(ds[d]), upd_flat.push_back(ds[d]);
  const Var d2 = reshape(data, data_flat);
  const Var u2 = reshape(updates, upd_flat);
  const Var positions = c.g.constant(flat);
  const OpDef& take_grad = find_op("take_grad");
  const Var spread = c.g.apply(take_grad, {u2, positions, d2}, {{"axis", std::int64_t{0}}});
  const Var ones = c.g.apply(take_grad, {zeros_like(u2) + 1.0, positions, d2}, {{"axis", std::int64_t{0}}});
  return one(reshape(scatter_into(c, d2, spread, ones), ds));
}

Imported import_one_hot(ImportCtx& c) {
  const Var idx = c.in(0);
  const auto depth = static_cast<std::int64_t>(c.const_scalar(1));
  const Tensor values = c.constant(2).contiguous();
  if (values.numel() != 2) c.fail("values must hold [off, on]");
  const std::int64_t rank = rank_of(idx);
  std::int64_t axis = c.attr_int("axis", -1);
  if (axis < 0) axis += rank + 1;
  const DType dtype = is_floating(values.dtype()) ? values.dtype() : DType::float32;
  // Negative indices count from the end, as ONNX says.
  const Var wrapped = idx.dtype() == DType::int64 ? idx : astype(idx, DType::int64);
  Var hot = one_hot(where(lt(astype(wrapped, DType::float64), 0.0),
                          astype(astype(wrapped, DType::float64) + static_cast<double>(depth), DType::int64), wrapped),
                    depth, dtype);
  const double off = values.slice(0, 0, 1).item(), on = values.slice(0, 1, 2).item();
  if (off != 0.0 || on != 1.0) hot = hot * (on - off) + off;
  if (axis != rank) {
    Axes perm;
    for (std::int64_t d = 0; d < rank; ++d) perm.push_back(d);
    perm.insert(perm.begin() + axis, rank);
    hot = transpose(hot, perm);
  }
  if (!is_floating(values.dtype())) hot = astype(hot, values.dtype());
  return one(hot);
}

// Inference: Dropout is the identity; the mask output is not produced.
Imported import_dropout(ImportCtx& c) {
  if (c.has_input(2) && (!c.is_constant(2) || c.const_scalar(2) != 0.0))
    c.fail("training_mode Dropout is not supported; import the inference graph");
  return one(c.in(0));
}

Imported import_trilu(ImportCtx& c) {
  const std::int64_t k = c.has_input(1) ? static_cast<std::int64_t>(c.const_scalar(1)) : 0;
  return one(c.attr_int("upper", 1) ? triu(c.in(0), k) : tril(c.in(0), k));
}

Imported import_det(ImportCtx& c) { return one(det(c.in(0))); }
Imported import_inverse(ImportCtx& c) { return one(inv(c.in(0))); }

// ---- convolution and pooling (2-D, NCHW) ----

// The window attributes shared by Conv and the pools, with auto_pad resolved (which needs static spatial
// dims). Pools whose window the 2-D kernels do not cover go to the engine's windows' fold (ops/conv.h).
PoolWindow pool_spec(ImportCtx& c, const Var& x, const Shape& default_kernel = {}) {
  const std::int64_t s = rank_of(x) - 2;
  if (s < 1) c.fail("needs an (N, C, spatial...) input, got shape " + to_string(x.shape()));
  PoolWindow p;
  p.kernel = c.attr_ints("kernel_shape", default_kernel);
  p.stride = c.attr_ints("strides", Shape(s, 1));
  p.dilation = c.attr_ints("dilations", Shape(s, 1));
  if (static_cast<std::int64_t>(p.kernel.size()) != s || static_cast<std::int64_t>(p.stride.size()) != s ||
      static_cast<std::int64_t>(p.dilation.size()) != s)
    c.fail("kernel_shape, strides and dilations need one value per spatial dim");
  for (std::int64_t d = 0; d < s; ++d)
    if (p.kernel[d] < 1 || p.stride[d] < 1 || p.dilation[d] < 1 || p.kernel[d] > kMaxWindowExtent || p.stride[d] > kMaxWindowExtent ||
        p.dilation[d] > kMaxWindowExtent)
      c.fail("kernel_shape, strides and dilations must be between 1 and 2^31, got " + to_string(p.kernel) + ", " + to_string(p.stride) +
             ", " + to_string(p.dilation));
  const std::string auto_pad = c.attr_string("auto_pad", "NOTSET");
  Shape pads = c.attr_ints("pads", Shape(2 * s, 0));
  if (static_cast<std::int64_t>(pads.size()) != 2 * s) c.fail("pads need 2 values per spatial dim");
  for (auto v : pads)
    if (v < 0 || v > kMaxWindowExtent) c.fail("pads must be between 0 and 2^31, got " + to_string(pads));
  for (std::int64_t d = 0; d < s; ++d) {
    const std::int64_t n = x.shape()[2 + d];
    const std::int64_t span = (p.kernel[d] - 1) * p.dilation[d] + 1;
    std::int64_t b = pads[d], e = pads[s + d];
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      if (n == kDynamic) c.fail("auto_pad needs static spatial dims");
      const std::int64_t out = (n + p.stride[d] - 1) / p.stride[d];
      const std::int64_t total = std::max<std::int64_t>((out - 1) * p.stride[d] + span - n, 0);
      b = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      e = total - b;
    } else if (auto_pad == "VALID") {
      b = e = 0;
    } else if (auto_pad != "NOTSET") {
      c.fail("auto_pad '" + auto_pad + "' is not supported");
    }
    p.begin.push_back(b);
    p.end.push_back(e);
  }
  p.ceil_mode = c.attr_int("ceil_mode", 0) != 0;
  if (p.ceil_mode)
    for (std::int64_t d = 0; d < s; ++d)
      if (x.shape()[2 + d] == kDynamic) c.fail("ceil_mode needs static spatial dims");
  return p;
}

// The 2-D pooling kernels take symmetric padding of at most half the kernel, no dilation, no ceil_mode window.
bool plain_2d(const Var& x, const PoolWindow& p) {
  if (rank_of(x) != 4 || ceil_mode_extra(x, p) != Shape(2, 0)) return false;
  for (int d = 0; d < 2; ++d)
    if (p.dilation[d] != 1 || p.begin[d] != p.end[d] || 2 * p.begin[d] > p.kernel[d]) return false;
  return true;
}

Imported import_max_pool(ImportCtx& c) {
  if (c.node.output_size() > 1 && !c.node.output(1).empty()) c.fail("the Indices output is not supported");
  const Var x = c.in(0);
  const PoolWindow p = pool_spec(c, x);
  if (plain_2d(x, p))
    return one(max_pool2d(x, {{p.kernel[0], p.kernel[1]}, Pair{p.stride[0], p.stride[1]}, {p.begin[0], p.begin[1]}, true}));
  return one(max_pool_windows(x, p));
}

Imported import_average_pool(ImportCtx& c) {
  const Var x = c.in(0);
  const PoolWindow p = pool_spec(c, x);
  const bool include_pad = c.attr_int("count_include_pad", 0) != 0;
  if (plain_2d(x, p))
    return one(avg_pool2d(x, {{p.kernel[0], p.kernel[1]}, Pair{p.stride[0], p.stride[1]}, {p.begin[0], p.begin[1]},
                              include_pad}));
  return one(avg_pool_windows(x, p, include_pad));
}

Imported import_conv(ImportCtx& c) {
  Var x = c.in(0);
  const Var w = c.in(1);
  const std::int64_t rank = rank_of(x);
  if (rank != rank_of(w) || rank < 3 || rank > 5)
    c.fail("convolutions of 1, 2 or 3 spatial dims are supported, got input " + to_string(x.shape()) + " and weight " +
           to_string(w.shape()));
  const PoolWindow s = pool_spec(c, x, Shape(w.shape().begin() + 2, w.shape().end()));
  Shape padding = s.begin;
  if (s.begin != s.end) {  // asymmetric: zeros added first
    x = pad_spatial(x, s.begin, s.end, 0.0);
    padding.assign(padding.size(), 0);
  }
  const std::int64_t groups = c.attr_int("group", 1);
  const Var bias = c.has_input(2) ? c.in(2) : Var();
  if (rank == 3) return one(conv1d(x, w, bias, {s.stride[0], padding[0], s.dilation[0], groups}));
  if (rank == 5)
    return one(conv3d(x, w, bias, {{s.stride[0], s.stride[1], s.stride[2]}, {padding[0], padding[1], padding[2]},
                                   {s.dilation[0], s.dilation[1], s.dilation[2]}, groups}));
  Conv2dParams p{{s.stride[0], s.stride[1]}, {padding[0], padding[1]}, {s.dilation[0], s.dilation[1]}, groups};
  return one(conv2d(x, w, bias, p));
}

// The adjoint of a convolution in its input (conv2d_grad_input), of 1 or 2 spatial dims, static shapes: each
// dim's full result stride * (in - 1) + output_padding + dilated kernel, then cut by the pads (or to output_shape).
Imported import_conv_transpose(ImportCtx& c) {
  const Var x = c.in(0), w = c.in(1);
  const std::int64_t rank = rank_of(x);
  if ((rank != 3 && rank != 4) || rank_of(w) != rank)
    c.fail("ConvTranspose of 1 or 2 spatial dims is supported, got input " + to_string(x.shape()) + " and weight " +
           to_string(w.shape()));
  if (!is_static(x.shape()) || !is_static(w.shape()))
    c.fail("ConvTranspose needs static shapes, got input " + to_string(x.shape()) + " and weight " + to_string(w.shape()));
  const std::size_t s = static_cast<std::size_t>(rank - 2);
  const Shape kernel = c.attr_ints("kernel_shape", Shape(w.shape().begin() + 2, w.shape().end()));
  const Shape stride = c.attr_ints("strides", Shape(s, 1)), dilation = c.attr_ints("dilations", Shape(s, 1));
  const Shape pads = c.attr_ints("pads", Shape(2 * s, 0)), extra = c.attr_ints("output_padding", Shape(s, 0));
  const Shape output_shape = c.attr_ints("output_shape", {});
  const std::string auto_pad = c.attr_string("auto_pad", "NOTSET");
  if (kernel.size() != s || stride.size() != s || dilation.size() != s || pads.size() != 2 * s || extra.size() != s ||
      (!output_shape.empty() && output_shape.size() != s))
    c.fail("kernel_shape, strides, dilations, output_padding and output_shape need one value per spatial dim, pads two");
  for (std::size_t d = 0; d < s; ++d) {
    const std::int64_t in = x.shape()[2 + d];
    if (kernel[d] < 1 || stride[d] < 1 || dilation[d] < 1 || kernel[d] > kMaxWindowExtent || stride[d] > kMaxWindowExtent ||
        dilation[d] > kMaxWindowExtent || extra[d] < 0 || extra[d] > kMaxWindowExtent || in > kMaxWindowExtent ||
        pads[d] < 0 || pads[s + d] < 0 || pads[d] > kMaxWindowExtent || pads[s + d] > kMaxWindowExtent ||
        (!output_shape.empty() && (output_shape[d] < 1 || output_shape[d] > kMaxWindowExtent)))
      c.fail("kernel_shape, strides, dilations, pads, output_padding, output_shape and the input's spatial sizes must be "
             "within 2^31 (kernel, strides and dilations at least 1)");
  }
  const std::int64_t groups = c.attr_int("group", 1);
  // In 2-D form: a 1-D transpose is a 2-D one of unit height.
  Shape full{x.shape()[0], w.shape()[1] * groups}, begin, end;
  if (s == 1) full.push_back(1), begin.push_back(0), end.push_back(0);
  for (std::size_t d = 0; d < s; ++d) {
    std::int64_t n = stride[d] * (x.shape()[2 + d] - 1) + extra[d] + (kernel[d] - 1) * dilation[d] + 1;
    std::int64_t b = pads[d], e = pads[s + d];
    if (!output_shape.empty() || auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      const std::int64_t out = output_shape.empty() ? x.shape()[2 + d] * stride[d] : output_shape[d];
      // A longer output than the windows reach ends in zeros (as output_padding does): fewer than a stride.
      if (out > n && out - n < stride[d]) n = out;
      const std::int64_t total = n - out;
      b = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      e = total - b;
    } else if (auto_pad != "NOTSET" && auto_pad != "VALID") {
      c.fail("auto_pad '" + auto_pad + "' is not supported");
    }
    if (b < 0 || e < 0 || b + e >= n) c.fail("pads " + to_string(pads) + " do not fit the result's " + std::to_string(n));
    full.push_back(n);
    begin.push_back(b), end.push_back(e);
  }
  Tensor zero = Tensor::empty(x.dtype(), {});
  zero.fill(0.0);
  const Var like = broadcast_to(c.g.constant(zero), full);  // only its shape is read
  const Var dy = s == 1 ? unsqueeze(x, {2}) : x, w2 = s == 1 ? unsqueeze(w, {2}) : w;
  const Conv2dParams p{{s == 1 ? 1 : stride[0], stride[s - 1]}, {0, 0}, {s == 1 ? 1 : dilation[0], dilation[s - 1]}, groups};
  Var y = conv2d_grad_input(dy, w2, like, p);
  if (c.has_input(2)) y = y + reshape(c.in(2), {1, -1, 1, 1});
  Axes starts{0, 0}, stops{kSliceEnd, kSliceEnd}, steps{1, 1, 1, 1};
  for (std::size_t d = 0; d < 2; ++d) starts.push_back(begin[d]), stops.push_back(end[d] ? -end[d] : kSliceEnd);
  y = slice(y, starts, stops, steps);
  return one(s == 1 ? squeeze(y, {2}) : y);
}

Axes spatial_axes(const Var& x) {
  Axes axes;
  for (std::int64_t d = 2; d < rank_of(x); ++d) axes.push_back(d);
  return axes;
}
Imported import_global_average_pool(ImportCtx& c) { return one(mean(c.in(0), spatial_axes(c.in(0)), true)); }
Imported import_global_max_pool(ImportCtx& c) { return one(max(c.in(0), spatial_axes(c.in(0)), true)); }

Imported import_batch_norm(ImportCtx& c) {
  if (c.attr_int("training_mode", 0)) c.fail("training_mode BatchNormalization is not supported");
  const Var x = c.in(0);
  Shape channel(static_cast<std::size_t>(rank_of(x)), 1);
  channel.at(1) = -1;
  auto per_channel = [&](std::size_t k) { return reshape(c.in(k), channel); };
  const Var inv_std = rsqrt(per_channel(4) + c.attr_float("epsilon", 1e-5));
  return one((x - per_channel(3)) * inv_std * per_channel(1) + per_channel(2));
}

// A per-channel vector (C,) shaped (C, 1, ...) to broadcast over (N, C, d1, ...) of the given rank.
Var along_channels(const Var& v, std::int64_t rank) {
  Shape channel(static_cast<std::size_t>(rank - 1), 1);
  channel[0] = -1;
  return reshape(v, channel);
}

// x where x >= 0, slope * x below. Opsets 1-6 apply a slope of one value per channel along axis 1; from
// opset 7 it broadcasts as numpy's (unidirectionally, onto x).
Imported import_prelu(ImportCtx& c) {
  const Var x = c.in(0);
  Var slope = c.in(1);
  if (c.opset < 7 && rank_of(slope) == 1 && rank_of(x) > 2 && slope.shape()[0] != 1) slope = along_channels(slope, rank_of(x));
  return one(where(lt(x, 0.0), x * slope, x));
}

// The negative log-likelihood of int64 targets in (N, C, d1, ...) scores: -x[n, t, d...] * weight[t], zero where
// t is ignore_index; reduction "mean" divides by the weights' sum over the counted targets, as ONNX (and PyTorch) do.
Var nll(ImportCtx& c, const Var& x, const Var& target, const Var& weight) {
  if (target.dtype() != DType::int64) c.fail("the target must be int64, got " + std::string(dtype_name(target.dtype())));
  if (rank_of(x) < 2 || rank_of(target) != rank_of(x) - 1)
    c.fail("expects scores (N, C, d1, ...) and targets (N, d1, ...), got " + to_string(x.shape()) + " and " +
           to_string(target.shape()));
  const bool ignoring = c.has_attr("ignore_index");
  Var index = target, counted;
  if (ignoring) {
    // Ignored targets read class 0, then weigh nothing (their index may be outside [0, C)).
    const Var hit = eq(astype(target, DType::float64), static_cast<double>(c.attr_int("ignore_index", 0)));
    index = astype(where(hit, 0.0, astype(target, DType::float64)), DType::int64);
    counted = 1.0 - astype(hit, x.dtype());
  }
  Var w = weight ? take(weight, index, 0) : Var();
  if (counted) w = w ? w * counted : counted;
  const Var picked = squeeze(take_along_axis(x, unsqueeze(index, {1}), 1), {1});
  const Var loss = w ? neg(picked) * w : neg(picked);
  const std::string reduction = c.attr_string("reduction", "mean");
  if (reduction == "none") return loss;
  if (reduction == "sum") return sum(loss);
  if (reduction != "mean") c.fail("reduction '" + reduction + "' is not supported (none, sum, mean are)");
  return w ? sum(loss) / sum(w) : mean(loss);
}

Imported import_nll_loss(ImportCtx& c) {
  return one(nll(c, c.in(0), c.in(1), c.has_input(2) ? c.in(2) : Var()));
}

// NLL of the log-softmax over the class axis; the optional second output is that log-softmax.
Imported import_softmax_cross_entropy(ImportCtx& c) {
  const Var log_prob = log_softmax(c.in(0), 1);
  return {{nll(c, log_prob, c.in(1), c.has_input(2) ? c.in(2) : Var()), log_prob}, {}};
}

// The engine's layer_norm over the axes from `axis` on; the optional outputs are the mean and the inverse
// standard deviation (keeping the reduced axes), as ONNX gives them (computed only when a graph reads them).
Imported import_layer_norm(ImportCtx& c) {
  const Var x = c.in(0);
  const std::int64_t rank = rank_of(x);
  const std::int64_t axis = normalize_axis(c.attr_int("axis", -1), rank, "LayerNormalization");
  const double eps = c.attr_float("epsilon", 1e-5);
  Axes axes;
  for (std::int64_t d = axis; d < rank; ++d) axes.push_back(d);
  const Var y = layer_norm(x, rank - axis, c.in(1), c.has_input(2) ? c.in(2) : Var(), eps);
  return {{y, mean(x, axes, true), rsqrt(var(x, axes, true) + eps)}, {}};
}

// layer_norm over the spatial axes of each (sample, channel), then scaled and shifted per channel.
Imported import_instance_norm(ImportCtx& c) {
  const Var x = c.in(0);
  const std::int64_t rank = rank_of(x);
  if (rank < 3) c.fail("InstanceNormalization needs (N, C, D1, ...) input, got " + to_string(x.shape()));
  const Var y = layer_norm(x, rank - 2, Var(), Var(), c.attr_float("epsilon", 1e-5));
  return one(y * along_channels(c.in(1), rank) + along_channels(c.in(2), rank));
}

}  // namespace

void add_nn_importers(ImportTable& t) {
  t["PRelu"] = import_prelu;
  t["InstanceNormalization"] = import_instance_norm;
  t["LayerNormalization"] = import_layer_norm;
  t["NegativeLogLikelihoodLoss"] = import_nll_loss;
  t["SoftmaxCrossEntropyLoss"] = import_softmax_cross_entropy;
  t["Gather"] = import_gather;
  t["GatherElements"] = import_gather_elements;
  t["ScatterElements"] = import_scatter_elements;
  t["ScatterND"] = import_scatter_nd;
  t["OneHot"] = import_one_hot;
  t["Dropout"] = import_dropout;
  t["Trilu"] = import_trilu;
  t["Det"] = import_det;
  t["com.microsoft.Inverse"] = import_inverse;
  t["Conv"] = import_conv;
  t["ConvTranspose"] = import_conv_transpose;
  t["MaxPool"] = import_max_pool;
  t["AveragePool"] = import_average_pool;
  t["GlobalAveragePool"] = import_global_average_pool;
  t["GlobalMaxPool"] = import_global_max_pool;
  t["BatchNormalization"] = import_batch_norm;
}

}  // namespace xgrad::io
