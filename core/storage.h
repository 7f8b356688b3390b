// A reference-counted block of memory that tensors view. Either owned
// (64-byte aligned, freed with the last reference) or borrowed from someone
// else (a numpy array), in which case `owner` keeps the lender alive.
#pragma once
#include <cstddef>
#include <memory>

namespace xgrad {

enum class Device { cpu };

class Storage {
 public:
  static constexpr std::size_t kAlignment = 64;

  static std::shared_ptr<Storage> allocate(std::size_t nbytes);
  static std::shared_ptr<Storage> borrow(void* data, std::size_t nbytes, std::shared_ptr<void> owner);

  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  std::size_t nbytes() const { return nbytes_; }
  Device device() const { return Device::cpu; }

 private:
  Storage(void* data, std::size_t nbytes, bool owned, std::shared_ptr<void> owner)
      : data_(data), nbytes_(nbytes), owned_(owned), owner_(std::move(owner)) {}
  void* data_;
  std::size_t nbytes_;
  bool owned_;                   // we allocated data_ and free it
  std::shared_ptr<void> owner_;  // keeps borrowed memory alive
};

}  // namespace xgrad
