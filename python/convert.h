// Conversions between Python objects and xgrad values, shared by the
// binding files. numpy arrays cross without copies where the dtype allows:
// a wrapped array is kept alive by its Storage, and a Tensor handed to numpy
// is kept alive by the array's base.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <optional>
#include <string>

#include "core/graph.h"
#include "ops/ops.h"

namespace xgrad::python {

namespace py = pybind11;

std::optional<DType> from_numpy_dtype(const py::dtype& dt);  // empty for dtypes xgrad does not hold
DType to_dtype(const py::dtype& dt, const std::string& what);  // TypeError for those
DType parse_dtype(const py::object& obj, const std::string& what);  // anything numpy takes; None: float32
py::dtype to_numpy_dtype(DType dt);
Shape parse_shape(const py::handle& obj, const std::string& what);  // ints and None
py::tuple shape_tuple(const Shape& shape);
Axes parse_axes(const py::object& axis);  // None, an int or a sequence

Tensor wrap_array(const py::array& arr, const std::string& what);  // no copy
// Any array-like as a Tensor of `dtype` (converted once when needed); no dtype: arrays keep theirs.
Tensor to_tensor(const py::handle& obj, std::optional<DType> dtype, const std::string& what);
py::array to_numpy(const Tensor& t);  // no copy

// A Var plus a reference to its Graph, so a Python node keeps its graph alive.
struct PyNode {
  std::shared_ptr<Graph> graph;
  Var var;
};

PyNode wrap(const std::shared_ptr<Graph>& g, Var v);
// A node, a Python number or an array-like as a Var in like's graph; numbers take like's dtype.
Var as_var(const py::handle& obj, const PyNode& like);

using BinaryBuilder = Var (*)(Var, Var);
// Applies a binary builder to any mix of nodes and scalars (at least one node).
PyNode binary(const py::object& a, const py::object& b, BinaryBuilder f, const char* name);

// a ** b: a scalar exponent gives pow_scalar, a node exponent the elementwise pow.
PyNode power(const py::object& a, const py::object& b);

// x[key] with numpy basic indexing, or an int64 array/node key (take along axis 0).
PyNode getitem(const PyNode& x, const py::object& key);

void bind_ops(py::module_& m);
void bind_optim(py::module_& m);  // python/bind_optim.cpp  // python/bind_ops.cpp
void bind_linalg(py::module_& m);  // python/bind_linalg.cpp: the xgrad.linalg submodule
void bind_conv(py::module_& m);  // python/bind_conv.cpp
void bind_onnx(py::module_& m);  // python/bind_onnx.cpp
void bind_device(py::module_& m);  // python/bind_device.cpp: the xgrad.cuda submodule
void bind_distributed(py::module_& m);  // python/bind_distributed.cpp: behind xgrad.distributed

}  // namespace xgrad::python
