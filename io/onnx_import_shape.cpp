// Importers for shapes as values: Shape, Size, and the ops that take a shape (Reshape, Expand,
// ConstantOfShape, Tile). PyTorch writes a dynamic batch as Shape -> Gather -> Unsqueeze -> Concat ->
// Reshape. Such a value becomes a graph value over shape_of, which a Program computes while it plans each
// feed-shape signature (ops/shape_values.cpp). Alongside, the importer tracks what it knows of each such
// value's entries (ShapeEntries: numbers, symbolic dims of a tensor): a value whose entries are all numbers
// becomes a constant, and the rest tell reshape / expand the output dims known while building.
#include <algorithm>
#include <limits>

#include "io/onnx_import.h"

namespace xgrad::io {

namespace {

Tensor int_tensor(const Shape& values, bool scalar = false) {
  Tensor t = Tensor::empty(DType::int64, scalar ? Shape{} : Shape{static_cast<std::int64_t>(values.size())});
  std::copy(values.begin(), values.end(), static_cast<std::int64_t*>(t.raw_data()));
  return t;
}

// The output dims of x reshaped to a target whose entries are partly known. A -1 resolves when every symbolic
// dim of x is matched by an entry that copies it (PyTorch's x.view(x.size(0), -1)): those cancel out of the count.
Shape reshape_dims(const Var& x, const ShapeEntries& target, bool copy_zeros) {
  const Shape& in = x.shape();
  Shape out(target.size(), kDynamic);
  std::vector<bool> cancelled(in.size(), false), copied(target.size(), false);
  std::size_t free = target.size();
  bool resolvable = true;
  for (std::size_t i = 0; i < target.size(); ++i) {
    const ShapeEntry& e = target[i];
    std::int64_t from = -1;  // the input dim this entry copies
    if (e.value && *e.value == 0 && copy_zeros && i < in.size()) from = static_cast<std::int64_t>(i);
    else if (!e.value && e.of == x.node() && e.dim < static_cast<std::int64_t>(in.size())) from = e.dim;
    if (from >= 0 && !cancelled[static_cast<std::size_t>(from)]) {
      out[i] = in[static_cast<std::size_t>(from)];
      cancelled[static_cast<std::size_t>(from)] = copied[i] = true;
    } else if (e.value && *e.value == -1) {
      free = i;
    } else if (e.value && *e.value > 0) {
      out[i] = *e.value;
    } else {
      resolvable = false;
    }
  }
  if (free == target.size() || !resolvable) return out;
  std::int64_t in_rest = 1, out_rest = 1;
  for (std::size_t d = 0; d < in.size(); ++d)
    if (!cancelled[d]) {
      if (in[d] == kDynamic || __builtin_mul_overflow(in_rest, in[d], &in_rest)) return out;
    }
  for (std::size_t i = 0; i < target.size(); ++i)
    if (i != free && !copied[i] && __builtin_mul_overflow(out_rest, out[i], &out_rest)) return out;
  if (out_rest > 0 && in_rest % out_rest == 0) out[free] = in_rest / out_rest;
  return out;
}

// The output dims of x broadcast against a target whose entries are partly known.
Shape expand_dims(const Var& x, const ShapeEntries& target) {
  Shape t;
  for (const auto& e : target) t.push_back(e.value && *e.value >= 0 ? *e.value : kDynamic);
  return broadcast_shapes(x.shape(), t);
}

// The Shape node's [start, end) of x's dims.
std::pair<std::int64_t, std::int64_t> shape_range(const onnx::NodeProto& n, std::int64_t rank) {
  std::int64_t start = 0, end = rank;
  for (const auto& a : n.attribute()) {
    if (a.name() == "start") start = a.i();
    if (a.name() == "end") end = a.i();
  }
  start = std::clamp(start < 0 ? start + rank : start, std::int64_t{0}, rank);
  end = std::clamp(end < 0 ? end + rank : end, std::int64_t{0}, rank);
  return {start, std::max(start, end)};
}

// Shape of a static tensor is a constant; of a symbolic one, shape_of (sliced by start / end).
Imported import_shape(ImportCtx& c) {
  const Var x = c.in(0);
  const auto rank = rank_of(x);
  const auto [start, end] = shape_range(c.node, rank);
  const Shape s(x.shape().begin() + start, x.shape().begin() + end);
  if (is_static(s)) return one(c.g.constant(int_tensor(s)));
  const Var all = shape_of(x);
  return one(start == 0 && end == rank ? all : slice(all, {start}, {end}, {1}));
}

Imported import_size(ImportCtx& c) {
  const Var x = c.in(0);
  if (is_static(x.shape())) return one(c.g.constant(Tensor::full(DType::int64, {}, static_cast<double>(numel(x.shape())))));
  return one(astype(prod(astype(shape_of(x), DType::float64), {}, false), DType::int64));
}

// A Reshape target: 0 copies the input's dim unless allowzero is set.
Imported import_reshape(ImportCtx& c) {
  const Var x = c.in(0);
  const bool copy_zeros = !c.attr_int("allowzero", 0);
  if (!c.is_constant(1)) {
    const ShapeEntries* known = c.entries(1);
    return one(reshape(x, c.shape_input(1), copy_zeros, known ? reshape_dims(x, *known, copy_zeros) : Shape{}));
  }
  Shape target = c.const_ints(1);
  if (copy_zeros) {
    // A 0 copies the input's dim; a copied symbolic dim is where the static reshape cannot count.
    std::vector<bool> copied(target.size(), false);
    for (std::size_t i = 0; i < target.size(); ++i) {
      if (target[i] != 0) continue;
      if (i >= x.shape().size()) c.fail("a 0 in the target shape has no input dim to copy");
      target[i] = x.shape()[i];
      copied[i] = true;
    }
    std::int64_t unknown = 0;  // copied symbolic dims and -1s (kDynamic is -1)
    bool copied_symbolic = false;
    for (std::size_t i = 0; i < target.size(); ++i) {
      unknown += target[i] == -1;
      copied_symbolic = copied_symbolic || (copied[i] && target[i] == kDynamic);
    }
    // A copied symbolic dim next to a -1: the target as a value, its dims resolved as far as x's allow.
    if (copied_symbolic && unknown > 1) {
      ShapeEntries entries;
      for (auto v : c.const_ints(1)) entries.push_back({v});
      return one(reshape(x, c.in(1), true, reshape_dims(x, entries, true)));
    }
  }
  return one(reshape(x, target));
}

// Expand broadcasts the input and the shape against each other.
Imported import_expand(ImportCtx& c) {
  const Var x = c.in(0);
  if (!c.is_constant(1)) return one(expand(x, c.shape_input(1), c.entries(1) ? expand_dims(x, *c.entries(1)) : Shape{}));
  Shape out = broadcast_shapes(x.shape(), c.const_ints(1));
  if (out == x.shape()) return one(x);
  // A symbolic dim of x that the target does not fix resolves when the program plans the fed shape.
  return one(is_static(out) ? broadcast_to(x, out) : expand(x, c.in(1)));
}

Imported import_constant_of_shape(ImportCtx& c) {
  Tensor value = Tensor::zeros(DType::float32, {});
  if (const auto* t = c.attr_tensor("value")) value = from_proto(*t, "ConstantOfShape value").reshape({});
  if (!c.is_constant(0)) {
    const Var scalar = c.g.constant(value);
    return one(expand(scalar, c.shape_input(0), c.entries(0) ? expand_dims(scalar, *c.entries(0)) : Shape{}));
  }
  const Shape shape = c.const_ints(0);
  Tensor full = Tensor::empty(value.dtype(), shape);
  full.copy_from(value.broadcast_to(shape));
  return one(c.g.constant(full));
}

// Tile: x as (1, d0, 1, d1, ...) broadcast to (r0, d0, r1, d1, ...) and merged pairwise. A static x with
// constant repeats does this with static shapes; otherwise the two targets are computed from shape_of(x).
Imported import_tile(ImportCtx& c) {
  if (c.opset < 6) c.fail("Tile before opset 6 (tiles and axis inputs) is not supported");
  const Var x = c.in(0);
  const auto rank = rank_of(x);
  Axes odd;  // the unit axes of (1, d0, 1, d1, ...)
  for (std::int64_t d = 0; d < rank; ++d) odd.push_back(2 * d);
  if (c.is_constant(1)) {
    const Axes repeats = c.const_ints(1);
    if (repeats.size() != static_cast<std::size_t>(rank))
      c.fail("repeats has " + std::to_string(repeats.size()) + " values for an input of rank " + std::to_string(rank));
    for (auto r : repeats)
      if (r < 0) c.fail("repeats must be non-negative, got " + to_string(repeats));
    if (is_static(x.shape())) {
      Shape copies, merged;
      for (std::int64_t d = 0; d < rank; ++d) {
        const std::int64_t n = x.shape()[d], r = repeats[d];
        if (n > 0 && r > std::numeric_limits<std::int64_t>::max() / n)
          c.fail("repeats " + to_string(repeats) + " overflow the size of input " + to_string(x.shape()));
        copies.insert(copies.end(), {r, n});
        merged.push_back(n * r);
      }
      return one(reshape(broadcast_to(unsqueeze(x, odd), copies), merged));
    }
  } else if (c.shape_input(1).shape() != Shape{rank}) {
    c.fail("repeats must be int64 of shape (" + std::to_string(rank) + ",), got " + to_string(c.in(1).shape()));
  }
  const Var repeats = astype(c.in(1), DType::int64);
  const Var dims = shape_of(x);
  const Var pairs = reshape(concat({unsqueeze(repeats, {1}), unsqueeze(dims, {1})}, 1), Shape{2 * rank});
  const Var merged = astype(astype(repeats, DType::float64) * astype(dims, DType::float64), DType::int64);
  Shape copies, tiled;  // the two targets' dims, as far as they are known
  Shape known(static_cast<std::size_t>(rank), kDynamic);  // the repeats known now
  if (c.is_constant(1)) known = c.const_ints(1);
  else if (const ShapeEntries* e = c.entries(1))
    for (std::size_t d = 0; d < e->size(); ++d) known[d] = (*e)[d].value.value_or(kDynamic);
  for (std::int64_t d = 0; d < rank; ++d) {
    const std::int64_t r = known[static_cast<std::size_t>(d)], n = x.shape()[d];
    if (r < kDynamic) c.fail("repeats must be non-negative, got " + std::to_string(r));
    copies.insert(copies.end(), {r, n});
    std::int64_t product = kDynamic;
    if (r != kDynamic && n != kDynamic && __builtin_mul_overflow(r, n, &product)) c.fail("repeats overflow the size of input " + to_string(x.shape()));
    tiled.push_back(product);
  }
  return one(reshape(expand(unsqueeze(x, odd), pairs, copies), merged, false, tiled));
}

// Range(start, limit, delta): constants fold while importing; computed from shapes, the plan resolves it.
Imported import_range(ImportCtx& c) { return one(arange(c.shape_input(0), c.shape_input(1), c.shape_input(2))); }

// ---- what is known of shape values' entries ----

using Known = std::optional<ShapeEntries>;

// Entries of a small integer constant.
Known constant_entries(const Var& v) {
  if (!v || v->kind() != NodeKind::constant || is_floating(v.dtype()) || v.shape().size() > 1 || numel(v.shape()) > 64) return {};
  const Tensor t = v->value().to(Device::cpu).astype(DType::int64).contiguous();
  const auto* p = static_cast<const std::int64_t*>(t.raw_data());
  ShapeEntries out;
  for (std::int64_t i = 0; i < t.numel(); ++i) out.push_back({p[i]});
  return out;
}

// Integer arithmetic on two entries: a number when both are.
ShapeEntry combine(const std::string& op, const ShapeEntry& x, const ShapeEntry& y) {
  if (!x.value || !y.value) return {};
  const std::int64_t a = *x.value, b = *y.value;
  std::int64_t r = 0;
  bool ok = true;
  if (op == "Add") ok = !__builtin_add_overflow(a, b, &r);
  else if (op == "Sub") ok = !__builtin_sub_overflow(a, b, &r);
  else if (op == "Mul") ok = !__builtin_mul_overflow(a, b, &r);
  else if (op == "Div") {
    ok = b != 0 && !(a == INT64_MIN && b == -1);
    r = ok ? a / b : 0;  // ONNX's integer Div truncates, as C++ does
  }
  else if (op == "Max") r = std::max(a, b);
  else if (op == "Min") r = std::min(a, b);
  else ok = false;
  return ok ? ShapeEntry{r} : ShapeEntry{};
}


}  // namespace

std::optional<ShapeEntries> propagate_entries(const onnx::NodeProto& n, const std::vector<Var>& ins,
                                              const std::vector<const ShapeEntries*>& in_entries, const Var& out, std::int64_t opset) {
  if (!out || is_floating(out.dtype()) || out.shape().size() > 1 || !is_static(out.shape()) || numel(out.shape()) > 64) return {};
  auto entries = [&](std::size_t k) -> Known {
    if (k < in_entries.size() && in_entries[k]) return *in_entries[k];
    return k < ins.size() ? constant_entries(ins[k]) : Known();
  };
  auto constant = [&](std::size_t k) { return k < ins.size() ? constant_entries(ins[k]) : Known(); };
  const std::string& op = n.op_type();
  Known result;
  if (op == "Shape") {
    const Var& x = ins[0];
    const auto [start, end] = shape_range(n, rank_of(x));
    ShapeEntries s;
    for (std::int64_t d = start; d < end; ++d) {
      const std::int64_t dim = x.shape()[static_cast<std::size_t>(d)];
      s.push_back(dim == kDynamic ? ShapeEntry{std::nullopt, x.node(), d} : ShapeEntry{dim});
    }
    result = s;
  } else if (op == "Identity" || op == "Unsqueeze" || op == "Squeeze" || op == "Reshape") {
    result = entries(0);
  } else if (op == "Cast") {  // to int64 the entries stay what they are; narrower types may wrap them
    for (const auto& a : n.attribute())
      if (a.name() == "to" && a.i() == onnx::TensorProto::INT64) result = entries(0);
  } else if (op == "Concat") {
    ShapeEntries all;
    for (std::size_t k = 0; k < ins.size(); ++k) {
      const Known e = entries(k);
      if (!e) return {};
      all.insert(all.end(), e->begin(), e->end());
    }
    result = all;
  } else if (op == "Gather") {
    const Known data = entries(0), index = constant(1);
    if (!data || !index || ins[0].shape().size() != 1) return {};
    ShapeEntries picked;
    const auto size = static_cast<std::int64_t>(data->size());
    for (const auto& i : *index) {
      if (*i.value < -size || *i.value >= size) return {};
      picked.push_back((*data)[static_cast<std::size_t>(*i.value < 0 ? *i.value + size : *i.value)]);
    }
    result = picked;
  } else if (op == "Slice" && opset >= 10) {
    const Known data = entries(0), starts = constant(1), ends = constant(2);
    const Known steps = ins.size() > 4 && ins[4] ? constant(4) : Known(ShapeEntries{{1}});
    if (!data || !starts || !ends || !steps || starts->size() != 1 || ends->size() != 1 || steps->size() != 1 ||
        ins[0].shape().size() != 1 || *(*steps)[0].value == 0 || (ins.size() > 3 && ins[3] && !constant(3)))
      return {};
    const std::int64_t step = *(*steps)[0].value;
    const SliceSpan span = resolve_slice(static_cast<std::int64_t>(data->size()), *(*starts)[0].value, *(*ends)[0].value, step);
    ShapeEntries picked;
    for (std::int64_t k = 0; k < span.length; ++k) picked.push_back((*data)[static_cast<std::size_t>(span.start + k * step)]);
    result = picked;
  } else if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div" || op == "Max" || op == "Min") {
    if (ins.size() != 2) return {};
    const Known a = entries(0), b = entries(1);
    if (!a || !b || a->empty() || b->empty() || (a->size() != b->size() && a->size() != 1 && b->size() != 1)) return {};
    ShapeEntries r(std::max(a->size(), b->size()));
    for (std::size_t i = 0; i < r.size(); ++i) r[i] = combine(op, (*a)[a->size() == 1 ? 0 : i], (*b)[b->size() == 1 ? 0 : i]);
    result = r;
  }
  if (!result || static_cast<std::int64_t>(result->size()) != numel(out.shape())) return {};
  return result;
}

Var as_constant(Graph& g, const Var& out, const ShapeEntries& entries) {
  Shape values;
  for (const auto& e : entries) {
    if (!e.value) return {};
    values.push_back(*e.value);
  }
  if (out.dtype() != DType::int64) return {};
  return g.constant(int_tensor(values, out.shape().empty()));
}

void add_shape_importers(ImportTable& t) {
  t["Shape"] = import_shape;
  t["Size"] = import_size;
  t["Reshape"] = import_reshape;
  t["Expand"] = import_expand;
  t["ConstantOfShape"] = import_constant_of_shape;
  t["Tile"] = import_tile;
  t["Range"] = import_range;
}

}  // namespace xgrad::io
