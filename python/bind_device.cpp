// Devices from Python: xg.Tensor (an array on the CPU or a GPU, with .to()), xg.tensor(), and the
// xgrad.cuda submodule (whether this build has the CUDA backend and whether a GPU can be used).
#include "core/device.h"
#include "core/tensor.h"
#include "python/convert.h"

namespace xgrad::python {

void bind_device(py::module_& m) {
  py::class_<Tensor>(m, "Tensor",
                     "An array in xgrad's memory, on the CPU or a GPU: xg.tensor(array, device='cuda') makes one. Programs "
                     "take it as a feed (no copy when it is already on the program's device); .numpy() brings it to the host.")
      .def_property_readonly("shape", [](const Tensor& t) { return shape_tuple(t.shape()); })
      .def_property_readonly("dtype", [](const Tensor& t) { return to_numpy_dtype(t.dtype()); })
      .def_property_readonly("device", [](const Tensor& t) { return std::string(device_name(t.device())); })
      .def("to", [](const Tensor& t, const std::string& device) {
            const Device target = parse_device(device);
            py::gil_scoped_release nogil;
            return t.to(target);
          }, py::arg("device"), "This tensor on `device` ('cpu' or 'cuda'): itself when already there, else a copy.")
      .def("numpy", [](const Tensor& t) {
            if (t.device() == Device::cpu) return to_numpy(t);  // a view: the array shares this tensor's memory
            Tensor host;
            {
              py::gil_scoped_release nogil;
              host = t.to(Device::cpu);
            }
            return to_numpy(host);
          }, "A numpy array: a view of a CPU tensor, a copy of a GPU one.")
      .def("__array__", [](const Tensor& t, const py::object& dtype) {
            py::object a = py::cast(t).attr("numpy")();
            return dtype.is_none() ? a : a.attr("astype")(dtype);
          }, py::arg("dtype") = py::none())
      .def("__repr__", [](const Tensor& t) {
            return "<xgrad.Tensor " + std::string(dtype_name(t.dtype())) + to_string(t.shape()) + " on " +
                   device_name(t.device()) + ">";
          });
  m.def("tensor", [](const py::object& data, const std::string& device, const py::object& dtype) {
        const Device target = parse_device(device);
        std::optional<DType> want;
        if (!dtype.is_none()) want = parse_dtype(dtype, "tensor");
        const Tensor t = to_tensor(data, want, "tensor");
        py::gil_scoped_release nogil;
        return t.to(target);
      }, py::arg("data"), py::arg("device") = "cpu", py::arg("dtype") = py::none(),
      "An xg.Tensor of `data` (an array-like) on `device`. On the CPU a contiguous numpy array is shared, not "
      "copied; on 'cuda' the data is copied to the GPU once, and Programs compiled for CUDA read it in place.");
  py::module_ cuda = m.def_submodule("cuda", "The CUDA backend: is_available(), device_count(), why_unavailable().");
  cuda.def("is_built", [] { return device_backend_built(Device::cuda); },
           "True when xgrad was built with the CUDA backend (CMake found nvcc). Asking does not load it: import xgrad "
           "never loads the CUDA runtime or cuBLAS; the first device request (is_available(), a CUDA tensor or "
           "program) opens libxgrad_cuda.so.");
  cuda.def("is_emulated", [] {
#if defined(XGRAD_CUDA_EMULATOR)
        return true;
#else
        return false;
#endif
      }, "True in a test build whose CUDA backend runs on the CPU emulator (cuda/emulator/): right results, no speed.");
  cuda.def("is_available", [] {
        const DeviceBackend* b = device_backend(Device::cuda);
        return b != nullptr && b->available();
      }, "True when the CUDA backend is built and a GPU can be used.");
  cuda.def("device_count", [] {
        const DeviceBackend* b = device_backend(Device::cuda);
        return b ? b->device_count() : 0;
      }, "The number of CUDA devices (0 without a driver or a GPU).");
  cuda.def("synchronize", [] {
        py::gil_scoped_release nogil;
        require_device(Device::cuda).synchronize();
      }, "Waits until the GPU work queued so far has finished (for timing: Programs return before their kernels end "
         "unless a result is read).");
  cuda.def("memory_stats", [] {
        const DeviceBackend::MemoryStats st = require_device(Device::cuda).memory_stats();
        py::dict d;
        d["raw_allocations"] = st.raw_allocations;
        d["bytes_in_use"] = st.bytes_in_use;
        d["bytes_cached"] = st.bytes_cached;
        return d;
      }, "The caching allocator's counters: raw_allocations (cudaMalloc calls so far), bytes_in_use, bytes_cached. "
         "A Program running the same shapes again leaves raw_allocations where it was.");
  cuda.def("why_unavailable", []() -> py::object {
        const DeviceBackend* b = device_backend(Device::cuda);
        if (!b) return py::str(device_backend_missing_reason(Device::cuda));
        if (!b->available()) return py::str(b->unavailable_reason());
        return py::none();
      }, "Why CUDA cannot be used here, or None when it can.");
}

}  // namespace xgrad::python
