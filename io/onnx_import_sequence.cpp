// Importers for ONNX's sequence ops. A sequence is a list of tensors the importer keeps while it builds the
// graph: every position must be a constant, and the graph itself only ever sees the tensors.
#include <algorithm>
#include <map>

#include "io/onnx_import.h"

namespace xgrad::io {

namespace {

using Sequence = std::vector<Var>;

Imported sequence_of(Sequence s) {
  Imported r;
  r.sequence = std::move(s);
  return r;
}

// A constant position in [-n, n) (or [-n, n] where inserting at the end is allowed), as an index from the front.
std::size_t position(ImportCtx& c, std::size_t k, std::size_t n, bool may_be_end) {
  const auto values = c.const_ints(k);
  if (values.size() != 1) c.fail("the position must hold one value, got " + std::to_string(values.size()));
  const auto size = static_cast<std::int64_t>(n);
  std::int64_t p = values[0];
  if (p < 0) p += size;
  if (p < 0 || p > size || (p == size && !may_be_end))
    c.fail("position " + std::to_string(values[0]) + " is out of range for a sequence of " + std::to_string(n) +
           " tensors");
  return static_cast<std::size_t>(p);
}

Imported import_sequence_empty(ImportCtx&) { return sequence_of({}); }

Imported import_sequence_construct(ImportCtx& c) {
  Sequence s;
  for (std::size_t k = 0; k < c.n_inputs(); ++k) s.push_back(c.in(k));
  return sequence_of(std::move(s));
}

Imported import_sequence_insert(ImportCtx& c) {
  Sequence s = c.sequence(0);
  const std::size_t at = c.has_input(2) ? position(c, 2, s.size(), true) : s.size();
  s.insert(s.begin() + static_cast<std::ptrdiff_t>(at), c.in(1));
  return sequence_of(std::move(s));
}

Imported import_sequence_erase(ImportCtx& c) {
  Sequence s = c.sequence(0);
  if (s.empty()) c.fail("cannot erase from an empty sequence");
  const std::size_t at = c.has_input(1) ? position(c, 1, s.size(), false) : s.size() - 1;
  s.erase(s.begin() + static_cast<std::ptrdiff_t>(at));
  return sequence_of(std::move(s));
}

Imported import_sequence_at(ImportCtx& c) {
  const Sequence& s = c.sequence(0);
  return {{s.at(position(c, 1, s.size(), false))}, {}};
}

Imported import_sequence_length(ImportCtx& c) {
  return {{c.g.constant(Tensor::full(DType::int64, {}, static_cast<double>(c.sequence(0).size())))}, {}};
}

// Pieces of the given lengths (a scalar: pieces of that length, the last one shorter), or of length 1, which
// keepdims=0 squeezes.
Imported import_split_to_sequence(ImportCtx& c) {
  const Var x = c.in(0);
  const std::int64_t rank = static_cast<std::int64_t>(x.shape().size());
  const std::int64_t axis = normalize_axis(c.attr_int("axis", 0), rank, "SplitToSequence");
  const std::int64_t n = x.shape()[axis];
  std::vector<std::int64_t> sizes;
  const bool given = c.has_input(1), lengths = given && c.constant(1).ndim() == 1;
  if (n == kDynamic && !lengths)
    c.fail("SplitToSequence without a list of lengths needs the split axis static, got " + to_string(x.shape()));
  constexpr std::int64_t kMaxPieces = 4096;  // one graph node each
  if (given) {
    sizes = c.const_ints(1);
    if (!lengths) {
      if (sizes.size() != 1 || sizes[0] < 1) c.fail("split must be one positive length or a list of lengths");
      if (n / sizes[0] + (n % sizes[0] != 0) > kMaxPieces)
        c.fail("splitting " + std::to_string(n) + " into pieces of " + std::to_string(sizes[0]) + " gives more than " +
               std::to_string(kMaxPieces) + " pieces");
      std::vector<std::int64_t> pieces;
      for (std::int64_t left = n; left > 0; left -= sizes[0]) pieces.push_back(std::min(left, sizes[0]));
      sizes = pieces;
    }
  } else {
    if (n > kMaxPieces) c.fail("splitting an axis of " + std::to_string(n) + " into single slices gives more than " +
                               std::to_string(kMaxPieces) + " pieces");
    sizes.assign(static_cast<std::size_t>(n), 1);
  }
  if (static_cast<std::int64_t>(sizes.size()) > kMaxPieces)
    c.fail("split lists " + std::to_string(sizes.size()) + " pieces, more than " + std::to_string(kMaxPieces));
  Sequence pieces = split(x, sizes, axis);
  if (!given && c.attr_int("keepdims", 1) == 0)
    for (auto& p : pieces) p = squeeze(p, {axis});
  return sequence_of(std::move(pieces));
}

// concat along axis, or (new_axis=1) stack along a new axis.
Imported import_concat_from_sequence(ImportCtx& c) {
  const Sequence& s = c.sequence(0);
  if (s.empty()) c.fail("cannot concatenate an empty sequence");
  if (!c.has_attr("axis")) c.fail("the axis attribute is required");
  const std::int64_t axis = c.attr_int("axis", 0);
  return {{c.attr_int("new_axis", 0) ? stack(s, axis) : concat(s, axis)}, {}};
}

// The one list of sequence ops: the importer table and is_sequence_op both read it.
const std::map<std::string, ImportFn>& sequence_importers() {
  static const std::map<std::string, ImportFn> table{
      {"SequenceEmpty", import_sequence_empty},   {"SequenceConstruct", import_sequence_construct},
      {"SequenceInsert", import_sequence_insert}, {"SequenceErase", import_sequence_erase},
      {"SequenceAt", import_sequence_at},         {"SequenceLength", import_sequence_length},
      {"SplitToSequence", import_split_to_sequence}, {"ConcatFromSequence", import_concat_from_sequence}};
  return table;
}

}  // namespace

void add_sequence_importers(ImportTable& t) {
  for (const auto& [name, fn] : sequence_importers()) t[name] = fn;
}

bool is_sequence_op(const std::string& op_type) { return sequence_importers().count(op_type) != 0; }

}  // namespace xgrad::io
