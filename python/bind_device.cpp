// The xgrad.cuda submodule: whether this build has the CUDA backend and whether a GPU can be used.
#include "core/device.h"
#include "python/convert.h"

namespace xgrad::python {

void bind_device(py::module_& m) {
  py::module_ cuda = m.def_submodule("cuda", "The CUDA backend: is_available(), device_count(), why_unavailable().");
  cuda.def("is_built", [] { return device_backend(Device::cuda) != nullptr; },
           "True when xgrad was built with the CUDA backend (CMake found nvcc).");
  cuda.def("is_available", [] {
        const DeviceBackend* b = device_backend(Device::cuda);
        return b != nullptr && b->available();
      }, "True when the CUDA backend is built and a GPU can be used.");
  cuda.def("device_count", [] {
        const DeviceBackend* b = device_backend(Device::cuda);
        return b ? b->device_count() : 0;
      }, "The number of CUDA devices (0 without a driver or a GPU).");
  cuda.def("why_unavailable", []() -> py::object {
        const DeviceBackend* b = device_backend(Device::cuda);
        if (!b) return py::str("this xgrad was built without CUDA (CMake found no nvcc, or XGRAD_CUDA was OFF)");
        if (!b->available()) return py::str(b->unavailable_reason());
        return py::none();
      }, "Why CUDA cannot be used here, or None when it can.");
}

}  // namespace xgrad::python
