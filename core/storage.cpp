#include "core/storage.h"

#include "core/host_memory.h"


namespace xgrad {

std::shared_ptr<Storage> Storage::allocate(std::size_t nbytes, Device device) {
  if (device != Device::cpu) {
    void* p = require_device(device).allocate(nbytes);
    return std::shared_ptr<Storage>(new Storage(p, nbytes, true, nullptr, device));
  }
  void* p = host_allocate(nbytes);
  return std::shared_ptr<Storage>(new Storage(p, nbytes, true, nullptr));
}

std::shared_ptr<Storage> Storage::borrow(void* data, std::size_t nbytes, std::shared_ptr<void> owner) {
  return std::shared_ptr<Storage>(new Storage(data, nbytes, false, std::move(owner)));
}

Storage::~Storage() {
  if (!owned_) return;
  if (device_ == Device::cpu) host_release(data_, nbytes_);
  else device_backend(device_)->release(data_, nbytes_);
}

}  // namespace xgrad
