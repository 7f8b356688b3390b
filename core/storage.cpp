#include "core/storage.h"

#include <cstdlib>
#include <new>

namespace xgrad {

std::shared_ptr<Storage> Storage::allocate(std::size_t nbytes, Device device) {
  if (device != Device::cpu) {
    void* p = require_device(device).allocate(nbytes);
    return std::shared_ptr<Storage>(new Storage(p, nbytes, true, nullptr, device));
  }
  const std::size_t rounded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
  if (!p) throw std::bad_alloc();
  return std::shared_ptr<Storage>(new Storage(p, nbytes, true, nullptr));
}

std::shared_ptr<Storage> Storage::borrow(void* data, std::size_t nbytes, std::shared_ptr<void> owner) {
  return std::shared_ptr<Storage>(new Storage(data, nbytes, false, std::move(owner)));
}

Storage::~Storage() {
  if (!owned_) return;
  if (device_ == Device::cpu) std::free(data_);
  else device_backend(device_)->release(data_, nbytes_);
}

}  // namespace xgrad
