#include "core/device.h"

#include <mutex>

#include "core/error.h"
#include "core/plugin.h"

namespace xgrad {

namespace {

DeviceBackend*& cuda_backend() {
  static DeviceBackend* backend = nullptr;
  return backend;
}

#if defined(XGRAD_CUDA_PLUGIN)
std::string& plugin_error() {
  static std::string error;
  return error;
}

// The CUDA backend lives in libxgrad_cuda.so (core/plugin.h), so that a CPU user never loads the CUDA runtime
// or cuBLAS.
void load_cuda_plugin() {
  plugin_error() = open_plugin("libxgrad_cuda.so", "the CUDA backend", false);
  if (plugin_error().empty() && !cuda_backend()) plugin_error() = "libxgrad_cuda.so loaded but registered no backend";
}
#endif

}  // namespace

const char* device_name(Device device) { return device == Device::cuda ? "cuda" : "cpu"; }

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::cpu;
  if (name == "cuda" || name == "cuda:0") return Device::cuda;
  throw ValueError("unknown device '" + name + "': expected 'cpu' or 'cuda' (one GPU: 'cuda:0')");
}

bool device_backend_built(Device device) {
#if defined(XGRAD_HAVE_CUDA)
  return device == Device::cuda;
#else
  (void)device;
  return false;
#endif
}

DeviceBackend* device_backend(Device device) {
  if (device != Device::cuda) return nullptr;
#if defined(XGRAD_CUDA_PLUGIN)
  static std::once_flag loaded;
  std::call_once(loaded, load_cuda_plugin);
#endif
  return cuda_backend();
}

std::string device_backend_missing_reason(Device device) {
  if (device == Device::cpu) return "the CPU has no device backend";
  if (!device_backend_built(device)) return "this xgrad was built without CUDA (CMake found no nvcc, or XGRAD_CUDA was OFF)";
#if defined(XGRAD_CUDA_PLUGIN)
  if (!device_backend(device)) return plugin_error();
#endif
  return "";
}

DeviceBackend& require_device(Device device) {
  if (device == Device::cpu) throw ValueError("the CPU has no device backend");
  DeviceBackend* backend = device_backend(device);
  if (!backend) throw RuntimeError(device_backend_missing_reason(device));
  if (!backend->available()) throw RuntimeError("CUDA is not available: " + backend->unavailable_reason());
  return *backend;
}

void register_device_backend(Device device, DeviceBackend* backend) {
  if (device == Device::cuda) cuda_backend() = backend;
}

}  // namespace xgrad
