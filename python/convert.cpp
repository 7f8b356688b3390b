// Conversions between Python objects and xgrad values.
#include "python/convert.h"

#include <pybind11/stl.h>

namespace xgrad::python {

// ---- dtypes, shapes, axes -------------------------------------------------

// The xgrad dtype of a numpy dtype; empty for dtypes xgrad does not hold.
std::optional<DType> from_numpy_dtype(const py::dtype& dt) {
  const char kind = dt.kind();
  const auto size = dt.itemsize();
  if (kind == 'f' && size == 4) return DType::float32;
  if (kind == 'f' && size == 8) return DType::float64;
  if (kind == 'i' && size == 8) return DType::int64;
  if (kind == 'b') return DType::bool_;
  return std::nullopt;
}

DType to_dtype(const py::dtype& dt, const std::string& what) {
  if (auto dtype = from_numpy_dtype(dt)) return *dtype;
  throw TypeError(what + ": numpy dtype " + py::repr(py::handle(dt)).cast<std::string>() +
                  " is not supported (use float32, float64, int64 or bool)");
}

DType parse_dtype(const py::object& obj, const std::string& what) {
  if (obj.is_none()) return DType::float32;
  return to_dtype(py::dtype::from_args(obj), what);
}

py::dtype to_numpy_dtype(DType dt) {
  switch (dt) {
    case DType::float32: return py::dtype::of<float>();
    case DType::float64: return py::dtype::of<double>();
    case DType::int64: return py::dtype::of<std::int64_t>();
    case DType::bool_: return py::dtype::of<bool>();
  }
  throw TypeError("unknown dtype");
}

Shape parse_shape(const py::handle& obj, const std::string& what) {
  Shape shape;
  if (py::isinstance<py::int_>(obj)) return {obj.cast<std::int64_t>()};
  if (!py::isinstance<py::sequence>(obj)) throw TypeError(what + ": a shape must be a tuple of ints or None");
  for (const auto& item : obj) {
    if (item.is_none()) shape.push_back(kDynamic);
    else if (py::isinstance<py::int_>(item)) shape.push_back(item.cast<std::int64_t>());
    else throw TypeError(what + ": a shape must be a tuple of ints or None, got " + py::repr(obj).cast<std::string>());
  }
  return shape;
}

py::tuple shape_tuple(const Shape& shape) {
  py::tuple t(shape.size());
  for (std::size_t i = 0; i < shape.size(); ++i)
    t[i] = shape[i] == kDynamic ? py::object(py::none()) : py::object(py::int_(shape[i]));
  return t;
}

Axes parse_axes(const py::object& axis) {
  if (axis.is_none()) return {};
  if (py::isinstance<py::int_>(axis)) return {axis.cast<std::int64_t>()};
  return axis.cast<Axes>();
}

// ---- numpy <-> Tensor -----------------------------------------------------

// Wraps an array without copying. The Storage holds a reference to the array.
Tensor wrap_array(const py::array& arr, const std::string& what) {
  const DType dtype = to_dtype(arr.dtype(), what);
  const auto item = static_cast<py::ssize_t>(itemsize(dtype));
  Shape shape(arr.shape(), arr.shape() + arr.ndim());
  Strides strides(arr.ndim());
  char* data = static_cast<char*>(const_cast<void*>(arr.data()));
  py::ssize_t lo = 0, hi = 0;
  for (py::ssize_t d = 0; d < arr.ndim(); ++d) {
    if (arr.strides(d) % item != 0) return wrap_array(py::array::ensure(arr, py::array::c_style | py::array::forcecast), what);
    strides[d] = arr.strides(d) / item;
    if (shape[d] > 0) (arr.strides(d) < 0 ? lo : hi) += (shape[d] - 1) * arr.strides(d);
  }
  const bool empty = numel(shape) == 0;
  auto owner = std::shared_ptr<void>(new py::object(arr), [](void* p) {
    py::gil_scoped_acquire gil;
    delete static_cast<py::object*>(p);
  });
  const std::size_t nbytes = empty ? 0 : static_cast<std::size_t>(hi - lo + item);
  auto storage = Storage::borrow(data + lo, nbytes, std::move(owner));
  return Tensor::view_of(std::move(storage), dtype, shape, strides, empty ? 0 : -lo / item);
}

// Any array-like as a Tensor of `dtype`: zero-copy for arrays of that dtype,
// converted once otherwise.
Tensor to_tensor(const py::handle& obj, std::optional<DType> dtype, const std::string& what) {
  if (py::isinstance<Tensor>(obj)) {  // an xg.Tensor, wherever it lives
    const Tensor& t = obj.cast<const Tensor&>();
    return !dtype || t.dtype() == *dtype ? t : t.astype(*dtype);
  }
  py::array arr;
  if (py::isinstance<py::array>(obj) && (!dtype || from_numpy_dtype(py::reinterpret_borrow<py::array>(obj).dtype()) == *dtype)) {
    arr = py::reinterpret_borrow<py::array>(obj);
  } else {
    py::object np = py::module_::import("numpy");
    arr = dtype ? np.attr("asarray")(obj, to_numpy_dtype(*dtype)) : np.attr("asarray")(obj);
    if (!dtype && arr.dtype().kind() == 'f') arr = np.attr("asarray")(obj, py::dtype::of<float>());
  }
  return wrap_array(arr, what);
}

// Hands a Tensor to numpy without copying; the array's base keeps the storage alive.
py::array to_numpy(const Tensor& t) {
  std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
  std::vector<py::ssize_t> strides;
  for (auto s : t.strides()) strides.push_back(s * static_cast<py::ssize_t>(itemsize(t.dtype())));
  auto* keep = new Tensor(t);
  py::capsule base(keep, [](void* p) { delete static_cast<Tensor*>(p); });
  return py::array(to_numpy_dtype(t.dtype()), shape, strides, t.raw_data(), base);
}

// ---- Python-side node handle ------------------------------------------------

// A node, a Python number or an array-like, as a Var in `graph`; scalars take `like`'s dtype.
Var as_var(const py::handle& obj, const PyNode& like) {
  if (py::isinstance<PyNode>(obj)) {
    const auto& n = obj.cast<const PyNode&>();
    if (n.graph != like.graph) throw ValueError("nodes '" + n.var.name() + "' and '" + like.var.name() + "' belong to different graphs");
    return n.var;
  }
  if (py::isinstance<py::float_>(obj) || py::isinstance<py::int_>(obj))
    return like.graph->scalar(obj.cast<double>(), like.var.dtype());
  return like.graph->constant(to_tensor(obj, like.var.dtype(), "constant"));
}

PyNode wrap(const std::shared_ptr<Graph>& g, Var v) { return PyNode{g, v}; }


// Applies a binary builder to any mix of nodes and scalars (at least one node).
PyNode binary(const py::object& a, const py::object& b, BinaryBuilder f, const char* name) {
  const PyNode* anchor = py::isinstance<PyNode>(a) ? &a.cast<const PyNode&>()
                         : py::isinstance<PyNode>(b) ? &b.cast<const PyNode&>() : nullptr;
  if (!anchor) throw TypeError(std::string(name) + ": at least one operand must be an xgrad node");
  return wrap(anchor->graph, f(as_var(a, *anchor), as_var(b, *anchor)));
}

}  // namespace xgrad::python
