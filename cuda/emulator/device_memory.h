// The emulator's device memory: each allocation in its own mapping, ending
// right before a guard page, and inaccessible to the host except while an
// emulated kernel, copy or cuBLAS call runs (inside a DeviceAccess).
#pragma once
#include <cstddef>
#include <mutex>
#include <string>

#pragma GCC visibility push(hidden)

namespace xgrad::cuda::emulator {

// Fresh memory (from a new mapping, poisoned as by poison_device), or nullptr when the mapping fails.
void* allocate_device(std::size_t bytes);
// Unmaps an allocation once no emulated work runs (as cudaFree waits for the device); false unless ptr is
// an allocation's start.
bool free_device(void* ptr);

// Whether [p, p + bytes) lies inside one allocation (bytes == 0: p is inside or one past its end).
bool is_device_range(const void* p, std::size_t bytes);
// Whether any byte of [p, p + bytes) is device memory.
bool touches_device(const void* p, std::size_t bytes);
// "byte K of a device allocation of N bytes" for device memory, else "host memory".
std::string describe_pointer(const void* p);

// While one exists, device memory is readable and writable; construction takes the emulator's lock
// (the one stream: kernels, copies and cuBLAS calls run one at a time).
class DeviceAccess {
 public:
  explicit DeviceAccess(const char* what);
  ~DeviceAccess();
  DeviceAccess(const DeviceAccess&) = delete;
  DeviceAccess& operator=(const DeviceAccess&) = delete;

 private:
  std::unique_lock<std::mutex> lock_;
};

}  // namespace xgrad::cuda::emulator
#pragma GCC visibility pop
