// The op functions of the xgrad module: xg.tanh(x), xg.sum(x, axis=1), ...
#include <pybind11/stl.h>

#include <limits>
#include <random>

#include "python/convert.h"

namespace xgrad::python {

namespace {

bool is_number(const py::handle& h) { return py::isinstance<py::float_>(h) || py::isinstance<py::int_>(h); }

const PyNode& anchor_of(std::initializer_list<const py::object*> objs, const char* name) {
  for (const auto* o : objs)
    if (py::isinstance<PyNode>(*o)) return o->cast<const PyNode&>();
  throw TypeError(std::string(name) + ": at least one operand must be an xgrad node");
}

template <class F>
void def_unary(py::module_& m, const char* name, F f, const char* doc) {
  m.def(name, [f](const PyNode& x) { return wrap(x.graph, f(x.var)); }, py::arg("x"), doc);
}

template <class F>
void def_binary(py::module_& m, const char* name, F f, const char* doc) {
  m.def(name, [f, name](const py::object& a, const py::object& b) { return binary(a, b, f, name); }, py::arg("a"),
        py::arg("b"), doc);
}

using ReduceFn = Var (*)(Var, const Axes&, bool);

void def_reduction(py::module_& m, const char* name, ReduceFn f, const char* doc) {
  m.def(name, [f](const PyNode& x, const py::object& axis, bool keepdims) { return wrap(x.graph, f(x.var, parse_axes(axis), keepdims)); },
        py::arg("x"), py::arg("axis") = py::none(), py::arg("keepdims") = false, doc);
}

std::optional<std::int64_t> optional_axis(const py::object& axis) {
  if (axis.is_none()) return std::nullopt;
  return axis.cast<std::int64_t>();
}

// An index argument: a node, or an array-like of integers made an int64 constant.
Var index_var(const py::handle& obj, const PyNode& like) {
  if (py::isinstance<PyNode>(obj)) return as_var(obj, like);
  const auto arr = py::module_::import("numpy").attr("asarray")(obj).cast<py::array>();
  const char kind = arr.dtype().kind();
  if (kind != 'i' && kind != 'u')  // a bool mask converted to 0/1 would silently select the wrong entries
    throw py::index_error("only int64 index arrays are supported, got dtype " + py::str(py::handle(arr.dtype())).cast<std::string>());
  return like.graph->constant(to_tensor(arr, DType::int64, "indices"));
}

// A loss target: integer arrays stay class indices (int64); everything else takes like's dtype.
Var target_var(const py::handle& obj, const PyNode& like) {
  if (py::isinstance<py::array>(obj) && py::reinterpret_borrow<py::array>(obj).dtype().kind() == 'i')
    return index_var(obj, like);
  return as_var(obj, like);
}

using Loss = Var (*)(Var, Var, Reduction);

void def_loss(py::module_& m, const char* name, Loss f, const char* doc) {
  m.def(name, [f](const PyNode& input, const py::object& target, const std::string& reduction) {
          return wrap(input.graph, f(input.var, target_var(target, input), parse_reduction(reduction)));
        }, py::arg("input"), py::arg("target"), py::arg("reduction") = "mean", doc);
}

std::int64_t optional_int(const py::handle& h, std::int64_t if_none) { return h.is_none() ? if_none : h.cast<std::int64_t>(); }

}  // namespace

// numpy basic indexing: ints, slices (any step), Ellipsis and None; an int64
// array or node as the whole key selects along axis 0 (numpy.take).
PyNode getitem(const PyNode& x, const py::object& key) {
  if (py::isinstance<PyNode>(key) || py::isinstance<py::array>(key) || py::isinstance<py::list>(key)) {
    const Var idx = index_var(key, x);
    if (idx.dtype() != DType::int64) throw py::index_error("only int64 index arrays are supported, got " + std::string(dtype_name(idx.dtype())));
    return wrap(x.graph, take(x.var, idx, 0));
  }
  const py::tuple items = py::isinstance<py::tuple>(key) ? py::reinterpret_borrow<py::tuple>(key) : py::make_tuple(key);
  const Shape& shape = x.var.shape();
  const auto rank = static_cast<std::int64_t>(shape.size());
  std::int64_t consuming = 0, ellipses = 0;
  for (const auto& item : items) {
    if (py::isinstance<py::int_>(item) || py::isinstance<py::slice>(item)) ++consuming;
    else if (item.is(py::ellipsis())) ++ellipses;
    else if (!item.is_none()) throw py::index_error("xgrad indexing takes ints, slices, ..., None or one int64 array; got " + py::repr(item).cast<std::string>());
  }
  if (ellipses > 1) throw py::index_error("an index can only have a single ellipsis");
  if (consuming > rank)
    throw py::index_error("too many indices for a node of shape " + to_string(shape) + ": " + std::to_string(consuming) + " given");
  Axes starts(rank, 0), stops(rank, kSliceEnd), steps(rank, 1), int_axes, new_axes;
  std::int64_t d = 0, out_pos = 0;
  bool sliced = false;
  for (const auto& item : items) {
    if (item.is(py::ellipsis())) {
      d += rank - consuming;
      out_pos += rank - consuming;
    } else if (item.is_none()) {
      new_axes.push_back(out_pos++);
    } else if (py::isinstance<py::int_>(item)) {
      const auto i = item.cast<std::int64_t>();
      if (shape[d] != kDynamic && (i >= shape[d] || i < -shape[d]))
        throw py::index_error("index " + std::to_string(i) + " is out of bounds for axis " + std::to_string(d) + " with size " + std::to_string(shape[d]));
      starts[d] = i;
      stops[d] = i == -1 ? kSliceEnd : i + 1;
      int_axes.push_back(d++);
      sliced = true;
    } else {
      const auto sl = py::reinterpret_borrow<py::slice>(item);
      const std::int64_t step = optional_int(sl.attr("step"), 1);
      if (step == 0) throw py::value_error("slice step cannot be zero");
      starts[d] = optional_int(sl.attr("start"), step > 0 ? 0 : kSliceEnd);
      stops[d] = optional_int(sl.attr("stop"), step > 0 ? kSliceEnd : INT64_MIN);
      steps[d] = step;
      sliced = sliced || starts[d] != 0 || stops[d] != kSliceEnd || step != 1;
      ++d;
      ++out_pos;
    }
  }
  Var y = sliced ? slice(x.var, starts, stops, steps) : x.var;
  if (!int_axes.empty()) y = squeeze(y, int_axes);
  if (!new_axes.empty()) y = unsqueeze(y, new_axes);
  return wrap(x.graph, y);
}

PyNode power(const py::object& a, const py::object& b) {
  if (py::isinstance<PyNode>(a) && is_number(b)) {
    const auto& x = a.cast<const PyNode&>();
    return wrap(x.graph, xgrad::pow(x.var, b.cast<double>()));
  }
  return binary(a, b, static_cast<BinaryBuilder>(xgrad::pow), "pow");
}

void bind_ops(py::module_& m) {
  def_unary(m, "neg", xgrad::neg, "-x");
  def_unary(m, "exp", xgrad::exp, "e**x, elementwise");
  def_unary(m, "expm1", xgrad::expm1, "e**x - 1, accurate for small x");
  def_unary(m, "log", xgrad::log, "natural logarithm, elementwise");
  def_unary(m, "log1p", xgrad::log1p, "log(1 + x), accurate for small x");
  def_unary(m, "tanh", xgrad::tanh, "hyperbolic tangent, elementwise");
  def_unary(m, "sigmoid", xgrad::sigmoid, "1 / (1 + exp(-x)), elementwise");
  def_unary(m, "relu", xgrad::relu, "max(x, 0), elementwise");
  def_unary(m, "square", xgrad::square, "x * x, elementwise");
  def_unary(m, "sqrt", xgrad::sqrt, "square root, elementwise");
  def_unary(m, "rsqrt", xgrad::rsqrt, "1 / sqrt(x), elementwise");
  def_unary(m, "abs", xgrad::abs, "|x|, elementwise");
  def_unary(m, "sign", xgrad::sign, "-1, 0 or 1 by the sign of x (zero gradient)");
  def_unary(m, "sin", xgrad::sin, "sine, elementwise");
  def_unary(m, "cos", xgrad::cos, "cosine, elementwise");
  def_unary(m, "erf", xgrad::erf, "the error function, elementwise");
  def_unary(m, "floor", xgrad::floor, "largest integer <= x, elementwise (zero gradient)");
  def_unary(m, "softplus", xgrad::softplus, "log(1 + exp(x)), computed without overflow");
  def_unary(m, "stop_gradient", xgrad::stop_gradient, "x, treated as a constant by grad (like torch's detach)");
  m.def("leaky_relu", [](const PyNode& x, double slope) { return wrap(x.graph, leaky_relu(x.var, slope)); },
        py::arg("x"), py::arg("negative_slope") = 0.01, "x where x > 0, else negative_slope * x");
  m.def("elu", [](const PyNode& x, double alpha) { return wrap(x.graph, elu(x.var, alpha)); }, py::arg("x"),
        py::arg("alpha") = 1.0, "x where x > 0, else alpha * (exp(x) - 1)");
  m.def("gelu", [](const PyNode& x, const std::string& approximate) {
          if (approximate != "none" && approximate != "tanh")
            throw ValueError("gelu: approximate must be 'none' or 'tanh', got '" + approximate + "'");
          return wrap(x.graph, gelu(x.var, approximate == "tanh"));
        }, py::arg("x"), py::arg("approximate") = "none", "x * Phi(x) (erf form), or its tanh approximation");
  m.def("clip", [](const PyNode& x, const py::object& lo, const py::object& hi) {
          const double inf = std::numeric_limits<double>::infinity();
          if (lo.is_none() && hi.is_none()) throw ValueError("clip: give min, max or both");
          return wrap(x.graph, clip(x.var, lo.is_none() ? -inf : lo.cast<double>(), hi.is_none() ? inf : hi.cast<double>()));
        }, py::arg("x"), py::arg("min") = py::none(), py::arg("max") = py::none(), "x limited to [min, max]");
  m.def("astype", [](const PyNode& x, const py::object& dtype) { return wrap(x.graph, astype(x.var, parse_dtype(dtype, "astype"))); },
        py::arg("x"), py::arg("dtype"), "x converted to dtype (float32, float64, int64, bool)");

  def_binary(m, "add", static_cast<BinaryBuilder>(xgrad::add), "a + b, broadcasting");
  def_binary(m, "sub", static_cast<BinaryBuilder>(xgrad::sub), "a - b, broadcasting");
  def_binary(m, "mul", static_cast<BinaryBuilder>(xgrad::mul), "a * b, broadcasting");
  def_binary(m, "div", static_cast<BinaryBuilder>(xgrad::div), "a / b, broadcasting");
  def_binary(m, "maximum", static_cast<BinaryBuilder>(xgrad::maximum), "elementwise larger of a and b; ties split the gradient");
  def_binary(m, "minimum", static_cast<BinaryBuilder>(xgrad::minimum), "elementwise smaller of a and b; ties split the gradient");
  def_binary(m, "matmul", static_cast<BinaryBuilder>(xgrad::matmul), "matrix product");
  m.def("lerp", [](const py::object& a, const py::object& b, double weight) {
          const PyNode& like = py::isinstance<PyNode>(a) ? a.cast<const PyNode&>() : b.cast<const PyNode&>();
          return wrap(like.graph, lerp(as_var(a, like), as_var(b, like), weight));
        }, py::arg("a"), py::arg("b"), py::arg("weight"),
        "a + weight * (b - a), broadcasting (torch.lerp with a number weight): a moving average in one pass");
  m.def("lerp_square", [](const py::object& a, const py::object& b, double weight) {
          const PyNode& like = py::isinstance<PyNode>(a) ? a.cast<const PyNode&>() : b.cast<const PyNode&>();
          return wrap(like.graph, lerp_square(as_var(a, like), as_var(b, like), weight));
        }, py::arg("a"), py::arg("b"), py::arg("weight"), "a + weight * (b**2 - a), broadcasting: a moving average of squares");
  m.def("adam_update", [](const PyNode& w, const py::object& m_, const py::object& v, const py::object& k, const py::object& e) {
          return wrap(w.graph, adam_update(w.var, as_var(m_, w), as_var(v, w), as_var(k, w), as_var(e, w)));
        }, py::arg("w"), py::arg("m"), py::arg("v"), py::arg("k"), py::arg("e"),
        "w - k * m / (sqrt(v) + e) with single values k and e: Adam's parameter step in one pass (xg.optim.Adam uses it)");
  m.def("linear", [](const PyNode& x, const py::object& w, const py::object& b, const py::object& activation) {
          const std::string act = activation.is_none() ? "" : activation.cast<std::string>();
          return wrap(x.graph, linear(x.var, as_var(w, x), as_var(b, x), act));
        }, py::arg("x"), py::arg("w"), py::arg("b"), py::arg("activation") = py::none(),
        "activation(x @ w + b) as one fused kernel: x (m, k), w (k, n), b (n,); activation None, 'relu', 'tanh' or "
        "'sigmoid'. compile() forms it by itself from x @ w + b followed by one of those activations.");
  m.def("log_softmax_take", [](const PyNode& x, const py::object& indices) {
          return wrap(x.graph, log_softmax_take(x.var, index_var(indices, x)));
        }, py::arg("x"), py::arg("indices"),
        "take_along_axis(log_softmax(x, 1), indices, 1) for x (N, C) and int64 indices (N, 1), in one pass per row "
        "(the log-probability of each row's target). compile() forms it by itself from that composite, as "
        "cross_entropy with class indices builds it, and its gradient from the composite's gradient.");
  def_binary(m, "eq", static_cast<BinaryBuilder>(xgrad::eq), "a == b (bool)");
  def_binary(m, "ne", static_cast<BinaryBuilder>(xgrad::ne), "a != b (bool)");
  def_binary(m, "lt", static_cast<BinaryBuilder>(xgrad::lt), "a < b (bool)");
  def_binary(m, "le", static_cast<BinaryBuilder>(xgrad::le), "a <= b (bool)");
  def_binary(m, "gt", static_cast<BinaryBuilder>(xgrad::gt), "a > b (bool)");
  def_binary(m, "ge", static_cast<BinaryBuilder>(xgrad::ge), "a >= b (bool)");
  m.def("pow", &power, py::arg("x"), py::arg("exponent"), "x ** exponent; the exponent is a number or a node");
  m.def("where", [](const py::object& cond, const py::object& a, const py::object& b) {
          const PyNode& anchor = anchor_of({&a, &b, &cond}, "where");
          const PyNode& value_anchor = py::isinstance<PyNode>(a) ? a.cast<const PyNode&>()
                                       : py::isinstance<PyNode>(b) ? b.cast<const PyNode&>() : anchor;
          Var c = py::isinstance<PyNode>(cond) ? as_var(cond, anchor)
                                               : anchor.graph->constant(to_tensor(cond, DType::bool_, "where condition"));
          return wrap(anchor.graph, where(c, as_var(a, value_anchor), as_var(b, value_anchor)));
        }, py::arg("cond"), py::arg("a"), py::arg("b"), "a where cond is true, else b (broadcasting)");

  def_reduction(m, "sum", xgrad::sum, "sum over axis (None: all), like numpy");
  def_reduction(m, "mean", xgrad::mean, "mean over axis (None: all)");
  def_reduction(m, "max", xgrad::max, "maximum over axis (None: all); ties share the gradient");
  def_reduction(m, "min", xgrad::min, "minimum over axis (None: all); ties share the gradient");
  def_reduction(m, "prod", xgrad::prod, "product over axis (None: all)");
  def_reduction(m, "logsumexp", xgrad::logsumexp, "log(sum(exp(x))) over axis, computed without overflow");
  m.def("var", [](const PyNode& x, const py::object& axis, bool keepdims, double ddof) {
          return wrap(x.graph, var(x.var, parse_axes(axis), keepdims, ddof));
        }, py::arg("x"), py::arg("axis") = py::none(), py::arg("keepdims") = false, py::arg("ddof") = 0.0,
        "variance over axis; ddof=1 for the sample variance (numpy's convention)");
  m.def("std", [](const PyNode& x, const py::object& axis, bool keepdims, double ddof) {
          return wrap(x.graph, xgrad::std(x.var, parse_axes(axis), keepdims, ddof));
        }, py::arg("x"), py::arg("axis") = py::none(), py::arg("keepdims") = false, py::arg("ddof") = 0.0,
        "standard deviation over axis; ddof as in var");
  m.def("argmax", [](const PyNode& x, const py::object& axis, bool keepdims) {
          return wrap(x.graph, argmax(x.var, optional_axis(axis), keepdims));
        }, py::arg("x"), py::arg("axis") = py::none(), py::arg("keepdims") = false, "int64 index of the maximum");
  m.def("argmin", [](const PyNode& x, const py::object& axis, bool keepdims) {
          return wrap(x.graph, argmin(x.var, optional_axis(axis), keepdims));
        }, py::arg("x"), py::arg("axis") = py::none(), py::arg("keepdims") = false, "int64 index of the minimum");

  m.def("softmax", [](const PyNode& x, std::int64_t axis) { return wrap(x.graph, softmax(x.var, axis)); }, py::arg("x"),
        py::arg("axis") = -1, "exp(x) / sum(exp(x)) along axis, computed stably");
  m.def("log_softmax", [](const PyNode& x, std::int64_t axis) { return wrap(x.graph, log_softmax(x.var, axis)); },
        py::arg("x"), py::arg("axis") = -1, "x - logsumexp(x) along axis, computed stably");
  m.def("take", [](const PyNode& x, const py::object& idx, std::int64_t axis) {
          return wrap(x.graph, take(x.var, index_var(idx, x), axis));
        }, py::arg("x"), py::arg("indices"), py::arg("axis") = 0, "numpy.take: x indexed along axis by an int64 tensor");
  m.def("take_along_axis", [](const PyNode& x, const py::object& idx, std::int64_t axis) {
          return wrap(x.graph, take_along_axis(x.var, index_var(idx, x), axis));
        }, py::arg("x"), py::arg("indices"), py::arg("axis"), "numpy.take_along_axis (a gather)");
  m.def("index_select", [](const PyNode& x, const py::object& idx, std::int64_t axis) {
          return wrap(x.graph, index_select(x.var, index_var(idx, x), axis));
        }, py::arg("x"), py::arg("indices"), py::arg("axis"), "entries of x along axis at 1-D int64 indices");
  m.def("one_hot", [](const PyNode& labels, std::int64_t classes, const py::object& dtype) {
          return wrap(labels.graph, one_hot(labels.var, classes, parse_dtype(dtype, "one_hot")));
        }, py::arg("labels"), py::arg("num_classes"), py::arg("dtype") = py::none(), "int64 labels as one-hot rows (float32)");
  m.def("embedding", [](const PyNode& weight, const py::object& ids) {
          return wrap(weight.graph, embedding(weight.var, index_var(ids, weight)));
        }, py::arg("weight"), py::arg("ids"), "rows of weight (num_embeddings, dim) selected by int64 ids");
  m.def("flatten", [](const PyNode& x, std::int64_t start, std::int64_t end) { return wrap(x.graph, flatten(x.var, start, end)); },
        py::arg("x"), py::arg("start_axis") = 0, py::arg("end_axis") = -1, "axes start..end merged into one");
  def_loss(m, "cross_entropy", cross_entropy,
           "softmax cross-entropy of logits (N, C, ...) against int64 class indices or class probabilities");
  def_loss(m, "binary_cross_entropy_with_logits", binary_cross_entropy_with_logits,
           "sigmoid cross-entropy of logits against targets in [0, 1], computed stably");
  def_loss(m, "mse_loss", mse_loss, "mean squared error");
  m.def("huber_loss", [](const PyNode& input, const py::object& target, double delta, const std::string& reduction) {
          return wrap(input.graph, huber_loss(input.var, target_var(target, input), delta, parse_reduction(reduction)));
        }, py::arg("input"), py::arg("target"), py::arg("delta") = 1.0, py::arg("reduction") = "mean",
        "quadratic within delta of the target, linear beyond");

  m.def("concat", [](const std::vector<PyNode>& xs, std::int64_t axis) {
          if (xs.empty()) throw ValueError("concat: needs at least one node");
          std::vector<Var> vars;
          for (const auto& x : xs) vars.push_back(as_var(py::cast(x), xs[0]));
          return wrap(xs[0].graph, concat(vars, axis));
        }, py::arg("xs"), py::arg("axis") = 0, "nodes joined along an existing axis");
  m.def("stack", [](const std::vector<PyNode>& xs, std::int64_t axis) {
          if (xs.empty()) throw ValueError("stack: needs at least one node");
          std::vector<Var> vars;
          for (const auto& x : xs) vars.push_back(as_var(py::cast(x), xs[0]));
          return wrap(xs[0].graph, stack(vars, axis));
        }, py::arg("xs"), py::arg("axis") = 0, "nodes of one shape joined along a new axis");
  m.def("split", [](const PyNode& x, const py::object& sections, std::int64_t axis) {
          const auto a = normalize_axis(axis, static_cast<std::int64_t>(x.var.shape().size()), "split");
          std::vector<std::int64_t> sizes;
          if (py::isinstance<py::int_>(sections)) {  // numpy: that many equal parts
            const auto k = sections.cast<std::int64_t>();
            const auto n = x.var.shape()[a];
            if (n == kDynamic) throw ValueError("split: cannot split a symbolic dimension into equal parts");
            if (k <= 0 || n % k != 0)
              throw ValueError("split: axis of size " + std::to_string(n) + " does not divide into " + std::to_string(k) + " equal parts");
            sizes.assign(static_cast<std::size_t>(k), n / k);
          } else {  // numpy: the indices where the parts start
            std::int64_t prev = 0;
            for (auto i : sections.cast<std::vector<std::int64_t>>()) { sizes.push_back(i - prev); prev = i; }
            const auto n = x.var.shape()[a];
            if (n == kDynamic) throw ValueError("split: split points need a static dimension");
            sizes.push_back(n - prev);
          }
          py::list out;
          for (const auto& v : split(x.var, sizes, a)) out.append(wrap(x.graph, v));
          return out;
        }, py::arg("x"), py::arg("indices_or_sections"), py::arg("axis") = 0, "numpy.split: a list of views");
  m.def("pad", [](const PyNode& x, const py::object& pad_width, double value, const std::string& mode) {
          const auto rank = x.var.shape().size();
          std::vector<std::int64_t> pads;
          if (py::isinstance<py::int_>(pad_width)) {
            pads.assign(2 * rank, pad_width.cast<std::int64_t>());
          } else {
            for (const auto& p : pad_width) {
              if (py::isinstance<py::int_>(p)) { pads.push_back(p.cast<std::int64_t>()); pads.push_back(p.cast<std::int64_t>()); }
              else for (const auto& q : p) pads.push_back(q.cast<std::int64_t>());
            }
          }
          return wrap(x.graph, pad(x.var, pads, value, pad_mode(mode)));
        }, py::arg("x"), py::arg("pad_width"), py::arg("constant_values") = 0.0, py::arg("mode") = "constant",
        "numpy.pad: pad_width is an int or one (before, after) per axis (an int: the same both sides).\n"
        "mode 'constant' fills with constant_values; 'reflect' mirrors without repeating the edge (each pad\n"
        "smaller than its axis); 'edge' (or PyTorch's 'replicate') repeats the edge values. reflect and edge\n"
        "need the padded axes' sizes (not None).");

  m.def("dropout", [](const PyNode& x, double p, const py::object& training, const py::object& seed) {
          const std::uint64_t s = seed.is_none() ? std::random_device{}() : seed.cast<std::uint64_t>();
          if (py::isinstance<PyNode>(training)) return wrap(x.graph, dropout(x.var, p, as_var(training, x), s));
          return wrap(x.graph, dropout(x.var, p, training.cast<bool>(), s));
        }, py::arg("x"), py::arg("p") = 0.5, py::arg("training") = true, py::arg("seed") = py::none(),
        "zeroes each element with probability p (a fresh mask every run) and scales the rest by 1/(1-p); "
        "training is a bool or a bool scalar node chosen per run");
  m.def("layer_norm", [](const PyNode& x, const py::object& normalized_shape, const py::object& weight,
                         const py::object& bias, double eps) {
          const auto ndim = py::isinstance<py::int_>(normalized_shape) ? 1 : static_cast<std::int64_t>(py::len(normalized_shape));
          return wrap(x.graph, layer_norm(x.var, ndim, weight.is_none() ? Var() : as_var(weight, x),
                                          bias.is_none() ? Var() : as_var(bias, x), eps));
        }, py::arg("x"), py::arg("normalized_shape"), py::arg("weight") = py::none(), py::arg("bias") = py::none(),
        py::arg("eps") = 1e-5, "normalizes over the trailing axes given by normalized_shape (as torch)");
  m.def("batch_norm", [](const PyNode& x, const py::object& weight, const py::object& bias, const py::object& running_mean,
                         const py::object& running_var, bool training, double momentum, double eps, const py::object& updates) {
          auto opt = [&](const py::object& o) { return o.is_none() ? Var() : as_var(o, x); };
          ParamUpdates ups;
          const Var y = batch_norm(x.var, opt(weight), opt(bias), opt(running_mean), opt(running_var), training, momentum, eps,
                                   updates.is_none() ? nullptr : &ups);
          if (!updates.is_none())
            for (const auto& [target, value] : ups) updates.attr("append")(py::make_tuple(wrap(x.graph, target), wrap(x.graph, value)));
          return wrap(x.graph, y);
        }, py::arg("x"), py::arg("weight") = py::none(), py::arg("bias") = py::none(), py::arg("running_mean") = py::none(),
        py::arg("running_var") = py::none(), py::arg("training") = true, py::arg("momentum") = 0.1, py::arg("eps") = 1e-5,
        py::arg("updates") = py::none(),
        "per-channel normalization of (N, C, ...); in training, pass a list as `updates` to receive the running-statistics "
        "updates for compile(..., updates=...)");

  m.def("squeeze", [](const PyNode& x, const py::object& axis) { return wrap(x.graph, squeeze(x.var, parse_axes(axis))); },
        py::arg("x"), py::arg("axis") = py::none(), "a view without the given size-1 axes (None: all of them)");
  m.def("expand_dims", [](const PyNode& x, const py::object& axis) { return wrap(x.graph, unsqueeze(x.var, parse_axes(axis))); },
        py::arg("x"), py::arg("axis"), "a view with size-1 axes inserted at the given output positions (numpy)");
  m.def("reshape", [](const PyNode& x, const py::object& shape) {
          if (py::isinstance<PyNode>(shape)) return wrap(x.graph, reshape(x.var, shape.cast<PyNode>().var));
          return wrap(x.graph, reshape(x.var, parse_shape(shape, "reshape")));
        },
        py::arg("x"), py::arg("shape"),
        "a view with a new shape (one -1 is inferred); `shape` may be an int64 node computed in the graph (from "
        "shape_of), resolved when the program plans each input shape");
  m.def("shape_of", [](const PyNode& x) { return wrap(x.graph, shape_of(x.var)); }, py::arg("x"),
        "x's shape as an int64 node, (ndim,): known when a program plans its input shapes, so reshape / expand to "
        "targets computed from it work at any batch size");
  m.def("arange", [](const py::object& start, const py::object& limit, const py::object& delta) {
          const py::object args[] = {start, limit, delta};
          const PyNode* like = nullptr;
          for (const auto& a : args)
            if (!like && py::isinstance<PyNode>(a)) like = &a.cast<const PyNode&>();
          if (!like) throw TypeError("arange: start, limit or delta must be a node (for numbers, use numpy.arange)");
          return wrap(like->graph, arange(as_var(start, *like), as_var(limit, *like), as_var(delta, *like)));
        },
        py::arg("start"), py::arg("limit"), py::arg("delta") = 1,
        "start, start + delta, ... below limit, from scalar nodes (numbers take their dtype): ONNX Range. Its length "
        "is known when the program plans, so the scalars must come from shapes (shape_of) or constants");
  m.def("slice", [](const PyNode& x, const py::object& starts, const py::object& stops, const py::object& axes, const py::object& steps) {
          const Axes ax = parse_axes(axes);
          const Axes st = steps.is_none() ? Axes(ax.size(), 1) : parse_axes(steps);
          return wrap(x.graph, slice(x.var, index_var(starts, x), index_var(stops, x), ax, st));
        },
        py::arg("x"), py::arg("starts"), py::arg("stops"), py::arg("axes"), py::arg("steps") = py::none(),
        "x sliced along `axes` by int64 starts / stops that may be nodes computed from shapes (Python slice rules; "
        "static steps, default 1): a gather whose indices the program computes when it plans each input shape");
  m.def("expand", [](const PyNode& x, const PyNode& shape) { return wrap(x.graph, expand(x.var, shape.var)); },
        py::arg("x"), py::arg("shape"),
        "a view of x and the int64 node `shape` broadcast against each other (ONNX Expand); `shape` is computed in "
        "the graph, e.g. from shape_of");
  m.def("broadcast_to", [](const PyNode& x, const py::object& shape) { return wrap(x.graph, broadcast_to(x.var, parse_shape(shape, "broadcast_to"))); },
        py::arg("x"), py::arg("shape"), "a view of x broadcast to `shape` (numpy rules)");
  m.def("transpose", [](const PyNode& x, const py::object& axes) { return wrap(x.graph, transpose(x.var, parse_axes(axes))); },
        py::arg("x"), py::arg("axes") = py::none(), "a view with permuted axes (None: reversed)");
}

}  // namespace xgrad::python
