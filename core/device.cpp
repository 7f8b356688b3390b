#include "core/device.h"

#include "core/error.h"

namespace xgrad {

namespace {
DeviceBackend*& cuda_backend() {
  static DeviceBackend* backend = nullptr;
  return backend;
}
}  // namespace

const char* device_name(Device device) { return device == Device::cuda ? "cuda" : "cpu"; }

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::cpu;
  if (name == "cuda" || name == "cuda:0") return Device::cuda;
  throw ValueError("unknown device '" + name + "': expected 'cpu' or 'cuda' (one GPU: 'cuda:0')");
}

DeviceBackend* device_backend(Device device) { return device == Device::cuda ? cuda_backend() : nullptr; }

DeviceBackend& require_device(Device device) {
  if (device == Device::cpu) throw ValueError("the CPU has no device backend");
  DeviceBackend* backend = device_backend(device);
  if (!backend)
    throw RuntimeError("this xgrad was built without CUDA (CMake found no nvcc, or XGRAD_CUDA was OFF)");
  if (!backend->available()) throw RuntimeError("CUDA is not available: " + backend->unavailable_reason());
  return *backend;
}

void register_device_backend(Device device, DeviceBackend* backend) {
  if (device == Device::cuda) cuda_backend() = backend;
}

}  // namespace xgrad
