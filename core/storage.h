// A reference-counted block of memory that tensors view. Either owned
// (64-byte aligned host memory, or device memory from the device backend's
// caching allocator; released with the last reference) or borrowed from
// someone else (a numpy array), in which case `owner` keeps the lender alive.
#pragma once
#include <cstddef>
#include <memory>

#include "core/device.h"
#include "core/host_memory.h"

namespace xgrad {

class Storage {
 public:
  static constexpr std::size_t kAlignment = kHostAlignment;

  static std::shared_ptr<Storage> allocate(std::size_t nbytes, Device device = Device::cpu);
  static std::shared_ptr<Storage> borrow(void* data, std::size_t nbytes, std::shared_ptr<void> owner);

  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  std::size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  Storage(void* data, std::size_t nbytes, bool owned, std::shared_ptr<void> owner, Device device = Device::cpu)
      : data_(data), nbytes_(nbytes), owned_(owned), owner_(std::move(owner)), device_(device) {}
  void* data_;
  std::size_t nbytes_;
  bool owned_;                   // we allocated data_ and free it
  std::shared_ptr<void> owner_;  // keeps borrowed memory alive
  Device device_;
};

}  // namespace xgrad
