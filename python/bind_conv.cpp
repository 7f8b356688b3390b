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

// An int (every dim) or a tuple of N ints.
template <std::size_t N>
std::array<std::int64_t, N> parse_ints(const py::handle& obj, const std::string& what) {
  std::array<std::int64_t, N> out{};
  if (py::isinstance<py::int_>(obj)) {
    out.fill(obj.cast<std::int64_t>());
    return out;
  }
  if (py::isinstance<py::sequence>(obj) && !py::isinstance<py::str>(obj)) {
    const auto seq = py::reinterpret_borrow<py::sequence>(obj);
    bool ints = seq.size() == N;
    for (std::size_t i = 0; ints && i < N; ++i) ints = py::isinstance<py::int_>(seq[i]);
    if (ints) {
      for (std::size_t i = 0; i < N; ++i) out[i] = seq[i].cast<std::int64_t>();
      return out;
    }
  }
  throw TypeError(what + " must be an int or " + std::to_string(N) + " ints, got " + py::repr(obj).cast<std::string>());
}

std::int64_t parse_int(const py::handle& obj, const std::string& what) { return parse_ints<1>(obj, what)[0]; }

// An int or N ints (N = 1: the int).
template <std::size_t N>
auto spatial(const py::handle& obj, const std::string& what) {
  if constexpr (N == 1) return parse_int(obj, what);
  else return parse_ints<N>(obj, what);
}

// Pooling parameters over N spatial dims from Python's arguments, torch.nn.functional's names.
template <std::size_t N, class Params>
Params pool_args(const std::string& op, const py::object& kernel_size, const py::object& stride, const py::object& padding,
                 const py::object& dilation, bool ceil_mode, bool count_include_pad) {
  Params p;
  p.kernel = spatial<N>(kernel_size, op + ": kernel_size");
  if (!stride.is_none()) p.stride = spatial<N>(stride, op + ": stride");
  p.padding = spatial<N>(padding, op + ": padding");
  p.dilation = spatial<N>(dilation, op + ": dilation");
  p.ceil_mode = ceil_mode;
  p.count_include_pad = count_include_pad;
  return p;
}

// max_poolNd(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False) and
// avg_poolNd(x, kernel_size, stride=None, padding=0, count_include_pad=True, ceil_mode=False).
template <std::size_t N, class Params>
void bind_pools(py::module_& m, const char* max_name, Var (*max_fn)(Var, const Params&), const char* max_doc,
                const char* avg_name, Var (*avg_fn)(Var, const Params&), const char* avg_doc) {
  m.def(max_name, [max_name, max_fn](const PyNode& x, const py::object& kernel_size, const py::object& stride, const py::object& padding,
                                     const py::object& dilation, bool ceil_mode) {
          return wrap(x.graph, max_fn(x.var, pool_args<N, Params>(max_name, kernel_size, stride, padding, dilation, ceil_mode, true)));
        }, py::arg("x"), py::arg("kernel_size"), py::arg("stride") = py::none(), py::arg("padding") = 0, py::arg("dilation") = 1,
        py::arg("ceil_mode") = false, max_doc);
  m.def(avg_name, [avg_name, avg_fn](const PyNode& x, const py::object& kernel_size, const py::object& stride, const py::object& padding,
                                     bool count_include_pad, bool ceil_mode) {
          return wrap(x.graph, avg_fn(x.var, pool_args<N, Params>(avg_name, kernel_size, stride, padding, py::int_(1), ceil_mode,
                                                                  count_include_pad)));
        }, py::arg("x"), py::arg("kernel_size"), py::arg("stride") = py::none(), py::arg("padding") = 0,
        py::arg("count_include_pad") = true, py::arg("ceil_mode") = false, avg_doc);
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
  bind_pools<2, Pool2dParams>(m, "max_pool2d", max_pool2d,
      "Maximum over each kernel_size window of x (N, C, H, W), as torch.nn.functional.max_pool2d: stride defaults to\n"
      "kernel_size; padding (at most half the kernel) never wins; dilation spaces the window's taps; ceil_mode keeps\n"
      "the last partial window. The gradient goes to the first maximum of each window.",
      "avg_pool2d", avg_pool2d,
      "Mean over each kernel_size window of x (N, C, H, W); stride defaults to kernel_size. With\n"
      "count_include_pad (the default, as in PyTorch) padded zeros count in the divisor; ceil_mode keeps the last\n"
      "partial window, whose positions past the padding never count.");

  // 1 and 3 spatial dims: the same arguments, an int or one value per spatial dim.
  m.def("conv1d", [](const PyNode& x, const py::object& w, const py::object& b, const py::object& stride,
                     const py::object& padding, const py::object& dilation, std::int64_t groups) {
          const Var wv = as_var(w, x);
          const Conv1dParams p{parse_int(stride, "conv1d: stride"), parse_int(padding, "conv1d: padding"),
                               parse_int(dilation, "conv1d: dilation"), groups};
          return wrap(x.graph, b.is_none() ? conv1d(x.var, wv, p) : conv1d(x.var, wv, as_var(b, x), p));
        }, py::arg("x"), py::arg("w"), py::arg("b") = py::none(), py::arg("stride") = 1, py::arg("padding") = 0,
        py::arg("dilation") = 1, py::arg("groups") = 1,
        "1-D convolution of x (N, C_in, L) with w (C_out, C_in / groups, k), plus an optional bias (C_out,), as\n"
        "torch.nn.functional.conv1d (computed as a 2-D convolution of unit height).");
  m.def("conv3d", [](const PyNode& x, const py::object& w, const py::object& b, const py::object& stride,
                     const py::object& padding, const py::object& dilation, std::int64_t groups) {
          const Var wv = as_var(w, x);
          const Conv3dParams p{parse_ints<3>(stride, "conv3d: stride"), parse_ints<3>(padding, "conv3d: padding"),
                               parse_ints<3>(dilation, "conv3d: dilation"), groups};
          return wrap(x.graph, b.is_none() ? conv3d(x.var, wv, p) : conv3d(x.var, wv, as_var(b, x), p));
        }, py::arg("x"), py::arg("w"), py::arg("b") = py::none(), py::arg("stride") = 1, py::arg("padding") = 0,
        py::arg("dilation") = 1, py::arg("groups") = 1,
        "3-D convolution of x (N, C_in, D, H, W) with w (C_out, C_in / groups, kD, kH, kW), plus an optional bias,\n"
        "as torch.nn.functional.conv3d; stride, padding and dilation an int or a (d, h, w) triple. C, D, H and W\n"
        "must be static. Computed as one 2-D convolution per depth tap (depth folded into the batch), summed.");
  bind_pools<1, Pool1dParams>(m, "max_pool1d", max_pool1d, "Maximum over each window of x (N, C, L), as torch.nn.functional.max_pool1d.",
                              "avg_pool1d", avg_pool1d, "Mean over each window of x (N, C, L), as torch.nn.functional.avg_pool1d.");
  bind_pools<3, Pool3dParams>(m, "max_pool3d", max_pool3d,
      "Maximum over each window of x (N, C, D, H, W), as torch.nn.functional.max_pool3d (C, D, H, W static).\n"
      "The gradient goes to the first maximum within a depth slice; a tie across depth slices shares it.",
      "avg_pool3d", avg_pool3d, "Mean over each window of x (N, C, D, H, W), as torch.nn.functional.avg_pool3d (C, D, H, W static).");
}

}  // namespace xgrad::python
