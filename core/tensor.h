// Tensor: a typed, strided view of a Storage. Every view operation here
// returns a new Tensor over the same Storage; only contiguous() and copy()
// ever move data.
#pragma once
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/shape.h"
#include "core/storage.h"

namespace xgrad {

class Tensor {
 public:
  Tensor() = default;
  // Uninitialized contiguous tensor with freshly allocated storage (host memory, or the device's).
  static Tensor empty(DType dtype, const Shape& shape, Device device = Device::cpu);
  static Tensor zeros(DType dtype, const Shape& shape, Device device = Device::cpu);
  static Tensor full(DType dtype, const Shape& shape, double value);
  // Zero copy: a contiguous row-major view of memory the caller owns (a raw buffer, a std::vector's
  // data(), an xtensor container's data()). `owner`, if given, is kept alive as long as any tensor views
  // the memory; without one the caller keeps the memory alive while xgrad uses it. Programs never write
  // to their feeds, so a const buffer may be fed.
  static Tensor from_buffer(void* data, DType dtype, const Shape& shape, std::shared_ptr<void> owner = nullptr);
  template <class T>
  static Tensor from_buffer(T* data, const Shape& shape, std::shared_ptr<void> owner = nullptr) {
    using Element = std::remove_const_t<T>;
    return from_buffer(const_cast<Element*>(data), dtype_v<Element>, shape, std::move(owner));
  }
  // A view over existing storage; checks that it stays inside the storage.
  static Tensor view_of(std::shared_ptr<Storage> storage, DType dtype, Shape shape, Strides strides,
                        std::int64_t offset);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  const Strides& strides() const { return strides_; }
  std::int64_t offset() const { return offset_; }
  std::int64_t ndim() const { return static_cast<std::int64_t>(shape_.size()); }
  std::int64_t numel() const { return xgrad::numel(shape_); }
  std::int64_t dim(std::int64_t axis) const;
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  Device device() const { return storage_ ? storage_->device() : Device::cpu; }

  void* raw_data() const {
    return static_cast<char*>(storage_->data()) + offset_ * static_cast<std::int64_t>(itemsize(dtype_));
  }
  // Typed host access; a device tensor's memory is not addressable here (RuntimeError).
  template <class T> T* data() const {
    if (device() != Device::cpu) throw_not_on_host("data");
    if (dtype_v<T> != dtype_)
      throw TypeError(std::string("tensor holds ") + dtype_name(dtype_) + ", not " + dtype_name(dtype_v<T>));
    return static_cast<T*>(raw_data());
  }

  // Views (no copy).
  Tensor reshape(const Shape& shape) const;  // one -1 allowed; requires contiguity
  Tensor permute(const std::vector<std::int64_t>& axes) const;
  Tensor transpose() const;  // reverses the axes, like numpy's .T
  Tensor slice(std::int64_t axis, std::int64_t start, std::int64_t stop, std::int64_t step = 1) const;
  Tensor broadcast_to(const Shape& shape) const;
  Tensor squeeze(const std::vector<std::int64_t>& axes) const;  // empty: every size-1 axis
  Tensor unsqueeze(std::int64_t axis) const;

  // Re-points this tensor, layout unchanged, at another storage and offset.
  // For the Program's pooled contexts, whose views keep their planned layout
  // from run to run while the memory under them (a feed) changes; the caller
  // guarantees that the layout fits the new storage.
  void rebind(std::shared_ptr<Storage> storage, std::int64_t offset) noexcept {
    storage_ = std::move(storage);
    offset_ = offset;
  }

  // Copies. `to` returns *this when already there; a device's copy is contiguous. The others work on host
  // tensors, and on device tensors where noted.
  Tensor to(Device device) const;
  Tensor contiguous() const;  // returns *this when already contiguous
  Tensor copy() const;        // always a fresh contiguous tensor
  void copy_from(const Tensor& src);  // same shape and device; any strides; converts the dtype
  Tensor astype(DType dtype) const;
  void fill_zero();  // every element of the view (any strides; on a device: contiguous) set to zero
  void fill(double value);  // every element of the view set to value (any strides, any device)

  double item() const;  // the single element of a one-element tensor, as double
  std::string to_string() const;

 private:
  [[noreturn]] void throw_not_on_host(const char* what) const;
  std::shared_ptr<Storage> storage_;
  DType dtype_ = DType::float32;
  Shape shape_;
  Strides strides_;
  std::int64_t offset_ = 0;
};

// Resolves a reshape target holding at most one -1 against a known element count.
Shape resolve_reshape(const Shape& target, std::int64_t count, const std::string& what);

}  // namespace xgrad
