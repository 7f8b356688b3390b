// The emulator's device memory: each allocation in its own mapping, ending
// right before a guard page, and inaccessible to the host except while an
// emulated kernel, copy or cuBLAS call runs (inside a DeviceAccess).
#pragma once
#include <cstddef>
#include <mutex>
#include <string>

#pragma GCC visibility push(hidden)

namespace xgrad::cuda::emulator {

// Fresh allocations are filled with this byte: 0xFF...FF is a NaN in float32 and float64, so a kernel
// that reads memory nothing wrote produces NaN instead of the zeros fresh pages would give.
constexpr unsigned char kPoisonByte = 0xFF;

void* allocate_device(std::size_t bytes);  // nullptr when the mapping fails
bool free_device(void* ptr);               // false unless ptr is an allocation's start

// Whether [p, p + bytes) lies inside one allocation (bytes == 0: p is inside or one past its end).
bool is_device_range(const void* p, std::size_t bytes);
// "allocation of N bytes at P" for the allocation holding p, or "host memory".
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
