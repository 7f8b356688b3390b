// Convolution and pooling in the xgrad module, with PyTorch's argument
// conventions: xg.conv2d(x, w, b, stride=1, padding=0, dilation=1, groups=1).
#include <pybind11/stl.h>

#include "ops/conv.h"
#include "python/convert.h"

namespace xgrad::python {

namespace {

// An int (both dims) or a pair of ints, as PyTorch accepts them.
Pair parse_pair(const py::handle& obj, const std::string& what) {
  if (py::isinstance<py::int_>(obj)) {
    const auto v = obj.cast<std::int64_t>();
    return {v, v};
  }
  if (py::isinstance<py::sequence>(obj) && !py::isinstance<py::str>(obj)) {
    const auto seq = py::reinterpret_borrow<py::sequence>(obj);
    if (seq.size() == 2 && py::isinstance<py::int_>(seq[0]) && py::isinstance<py::int_>(seq[1]))
      return {seq[0].cast<std::int64_t>(), seq[1].cast<std::int64_t>()};
  }
  throw TypeError(what + " must be an int or a pair of ints, got " + py::repr(obj).cast<std::string>());
}

// padding='valid' is no padding; 'same' keeps H and W at stride 1 when the
// dilated kernel extent is odd (symmetric padding cannot do otherwise).
Pair parse_conv_padding(const py::handle& obj, const Var& w, const Pair& stride, const Pair& dilation) {
  if (!py::isinstance<py::str>(obj)) return parse_pair(obj, "conv2d: padding");
  const auto mode = obj.cast<std::string>();
  if (mode == "valid") return {0, 0};
  if (mode != "same") throw ValueError("conv2d: padding must be an int, a pair, 'valid' or 'same', got '" + mode + "'");
  if (stride != Pair{1, 1}) throw ValueError("conv2d: padding='same' needs stride 1");
  Pair pad{};
  for (int d = 0; d < 2; ++d) {
    const std::int64_t k = w.shape().size() == 4 ? w.shape()[2 + d] : kDynamic;
    const std::int64_t extent = dilation[d] * (k - 1);
    if (k == kDynamic || extent % 2 != 0)
      throw ValueError("conv2d: padding='same' needs a static kernel of odd dilated extent, got weight " + to_string(w.shape()));
    pad[d] = extent / 2;
  }
  return pad;
}

Pool2dParams pool_params(const char* name, const py::object& kernel_size, const py::object& stride, const py::object& padding) {
  Pool2dParams p;
  const std::string op(name);
  p.kernel = parse_pair(kernel_size, op + ": kernel_size");
  if (!stride.is_none()) p.stride = parse_pair(stride, op + ": stride");
  p.padding = parse_pair(padding, op + ": padding");
  return p;
}

}  // namespace

void bind_conv(py::module_& m) {
  m.def("conv2d", [](const PyNode& x, const py::object& w, const py::object& b, const py::object& stride,
                     const py::object& padding, const py::object& dilation, std::int64_t groups) {
          Conv2dParams p;
          const Var wv = as_var(w, x);
          p.stride = parse_pair(stride, "conv2d: stride");
          p.dilation = parse_pair(dilation, "conv2d: dilation");
          p.padding = parse_conv_padding(padding, wv, p.stride, p.dilation);
          p.groups = groups;
          return wrap(x.graph, b.is_none() ? conv2d(x.var, wv, p) : conv2d(x.var, wv, as_var(b, x), p));
        }, py::arg("x"), py::arg("w"), py::arg("b") = py::none(), py::arg("stride") = 1, py::arg("padding") = 0,
        py::arg("dilation") = 1, py::arg("groups") = 1,
        "2-D convolution of x (N, C_in, H, W) with w (C_out, C_in / groups, kH, kW), plus an optional bias b (C_out,),\n"
        "as torch.nn.functional.conv2d. stride, padding and dilation take an int or an (h, w) pair; padding also\n"
        "'valid' or 'same' (stride 1).");
  m.def("max_pool2d", [](const PyNode& x, const py::object& kernel_size, const py::object& stride, const py::object& padding) {
          return wrap(x.graph, max_pool2d(x.var, pool_params("max_pool2d", kernel_size, stride, padding)));
        }, py::arg("x"), py::arg("kernel_size"), py::arg("stride") = py::none(), py::arg("padding") = 0,
        "Maximum over each kernel_size window of x (N, C, H, W); stride defaults to kernel_size; padding\n"
        "(at most half the kernel) never wins. The gradient goes to the first maximum of each window.");
  m.def("avg_pool2d", [](const PyNode& x, const py::object& kernel_size, const py::object& stride, const py::object& padding,
                         bool count_include_pad) {
          Pool2dParams p = pool_params("avg_pool2d", kernel_size, stride, padding);
          p.count_include_pad = count_include_pad;
          return wrap(x.graph, avg_pool2d(x.var, p));
        }, py::arg("x"), py::arg("kernel_size"), py::arg("stride") = py::none(), py::arg("padding") = 0,
        py::arg("count_include_pad") = true,
        "Mean over each kernel_size window of x (N, C, H, W); stride defaults to kernel_size. With\n"
        "count_include_pad (the default, as in PyTorch) padded zeros count in the divisor.");
}

}  // namespace xgrad::python
