// Where a Storage's bytes live, and the hooks a device backend plugs in.
// core knows no CUDA: cuda/ (built when CMake finds nvcc) is a plugin,
// libxgrad_cuda.so, opened on the first request for the CUDA backend (a CPU
// user never loads the CUDA runtime or cuBLAS). Its load registers a
// DeviceBackend for Device::cuda and its kernels in the per-device kernel
// table (core/op.h). Without it, asking for a CUDA tensor is a RuntimeError
// that says why.
#pragma once
#include <cstddef>
#include <string>

namespace xgrad {

enum class Device { cpu, cuda };

const char* device_name(Device device);  // "cpu", "cuda"
Device parse_device(const std::string& name);  // "cpu", "cuda", "cuda:0"; ValueError otherwise

class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;
  // Whether a device can be used now, and if not, why (no driver, no GPU).
  virtual bool available() const = 0;
  virtual std::string unavailable_reason() const = 0;
  virtual int device_count() const = 0;
  // Device memory from the backend's caching allocator; release() returns it to the cache.
  virtual void* allocate(std::size_t nbytes) = 0;
  virtual void release(void* ptr, std::size_t nbytes) noexcept = 0;
  // host_src must be pageable memory (not pinned): it may be freed as soon as the call returns.
  virtual void copy_to_device(void* dst, const void* host_src, std::size_t nbytes) = 0;
  virtual void copy_to_host(void* host_dst, const void* src, std::size_t nbytes) = 0;
  virtual void copy_on_device(void* dst, const void* src, std::size_t nbytes) = 0;
  virtual void memset_zero(void* dst, std::size_t nbytes) = 0;
  virtual void synchronize() = 0;  // waits for the work queued on the backend's stream

  struct MemoryStats {
    std::size_t raw_allocations = 0;  // calls that reached the device's allocator (cudaMalloc)
    std::size_t bytes_in_use = 0;     // handed out to tensors now
    std::size_t bytes_cached = 0;     // released by tensors, kept for reuse
  };
  virtual MemoryStats memory_stats() const = 0;
};

// Whether this build has a backend for the device (without loading it).
bool device_backend_built(Device device);
// The backend of a non-CPU device (loading it on the first call), or nullptr when there is none.
DeviceBackend* device_backend(Device device);
// Why device_backend(device) is nullptr (not built, or its plugin failed to load); "" when it is not.
std::string device_backend_missing_reason(Device device);
// The backend, checked to be compiled in and available: RuntimeError with the reason otherwise.
DeviceBackend& require_device(Device device);
// Called once by a backend's translation unit at load time.
void register_device_backend(Device device, DeviceBackend* backend);

}  // namespace xgrad
