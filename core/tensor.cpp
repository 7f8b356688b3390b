#include "core/tensor.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>
#include <sstream>

#include "core/op.h"
#include "core/strided_loop.h"

namespace xgrad {

namespace {

std::string shape_str(const Shape& s) { return to_string(s); }

// Floating to int64 as x86 converts (so numpy there too): NaN, the infinities and values out of range give
// INT64_MIN. Defined here, where C++ leaves such a conversion undefined.
template <class To, class From>
To convert(From v) {
  if constexpr (std::is_same_v<To, std::int64_t> && std::is_floating_point_v<From>) {
    const bool fits = v >= From(-9.223372036854775808e18) && v < From(9.223372036854775808e18);
    return fits ? static_cast<To>(v) : std::numeric_limits<std::int64_t>::min();
  } else {
    return static_cast<To>(v);
  }
}

template <class To, class From>
void convert_loop(const Tensor& src, Tensor& dst) {
  const From* s = static_cast<const From*>(src.raw_data());
  To* d = static_cast<To*>(dst.raw_data());
  const Strides dst_strides = dst.strides();
  strided_loop<2>(src.shape(), {&dst_strides, &src.strides()},
                  [&](std::int64_t n, const auto& off, const auto& st) {
                    To* dp = d + off[0];
                    const From* sp = s + off[1];
                    for (std::int64_t i = 0; i < n; ++i) dp[i * st[0]] = convert<To>(sp[i * st[1]]);
                  });
}

template <class F>
void visit_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::float32: f(float{}); break;
    case DType::float64: f(double{}); break;
    case DType::int64: f(std::int64_t{}); break;
    case DType::bool_: f(bool{}); break;
  }
}

}  // namespace

Tensor Tensor::empty(DType dtype, const Shape& shape, Device device) {
  if (!is_static(shape)) throw ValueError("cannot allocate a tensor of symbolic shape " + shape_str(shape));
  std::size_t bytes = 0;
  if (__builtin_mul_overflow(static_cast<std::size_t>(xgrad::numel(shape)), itemsize(dtype), &bytes))
    throw ValueError("cannot allocate a tensor of shape " + shape_str(shape) + ": more bytes than memory addresses");
  Tensor t;
  t.storage_ = Storage::allocate(bytes, device);
  t.dtype_ = dtype;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  return t;
}

Tensor Tensor::from_buffer(void* data, DType dtype, const Shape& shape, std::shared_ptr<void> owner) {
  if (!is_static(shape)) throw ValueError("from_buffer: shape " + shape_str(shape) + " must be static");
  if (!data && xgrad::numel(shape) > 0) throw ValueError("from_buffer: null data for shape " + shape_str(shape));
  const std::size_t nbytes = static_cast<std::size_t>(xgrad::numel(shape)) * itemsize(dtype);
  return view_of(Storage::borrow(data, nbytes, std::move(owner)), dtype, shape, contiguous_strides(shape), 0);
}

Tensor Tensor::zeros(DType dtype, const Shape& shape, Device device) {
  Tensor t = empty(dtype, shape, device);
  t.fill_zero();
  return t;
}

Tensor Tensor::full(DType dtype, const Shape& shape, double value) {
  Tensor t = empty(dtype, shape);
  visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    std::fill_n(static_cast<T*>(t.raw_data()), t.numel(), static_cast<T>(value));
  });
  return t;
}

Tensor Tensor::view_of(std::shared_ptr<Storage> storage, DType dtype, Shape shape, Strides strides,
                       std::int64_t offset) {
  if (shape.size() != strides.size()) throw ValueError("view: shape and strides differ in rank");
  std::int64_t lo = offset, hi = offset;
  bool empty_view = false;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) throw ValueError("view: negative dimension in " + shape_str(shape));
    if (shape[i] == 0) empty_view = true;
    const std::int64_t span = (shape[i] - 1) * strides[i];
    (span < 0 ? lo : hi) += span;
  }
  const auto capacity = static_cast<std::int64_t>(storage->nbytes() / itemsize(dtype));
  if (!empty_view && (lo < 0 || hi >= capacity))
    throw ValueError("view: shape " + shape_str(shape) + " reaches outside its storage");
  Tensor t;
  t.storage_ = std::move(storage);
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.strides_ = std::move(strides);
  t.offset_ = offset;
  return t;
}

std::int64_t Tensor::dim(std::int64_t axis) const { return shape_[normalize_axis(axis, ndim(), "dim")]; }

bool Tensor::is_contiguous() const {
  if (xgrad::numel(shape_) == 0) return true;  // no element to be out of place (a broadcast of an empty array too)
  std::int64_t expected = 1;
  for (auto i = shape_.size(); i-- > 0;) {
    if (shape_[i] == 1) continue;
    if (strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

Shape resolve_reshape(const Shape& target, std::int64_t count, const std::string& what) {
  Shape out = target;
  std::int64_t known = 1;
  int infer_at = -1;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      if (infer_at >= 0) throw ValueError(what + ": only one dimension can be -1 in " + shape_str(target));
      infer_at = static_cast<int>(i);
    } else if (out[i] < 0) {
      throw ValueError(what + ": invalid dimension in " + shape_str(target));
    } else if (__builtin_mul_overflow(known, out[i], &known)) {
      throw ValueError(what + ": shape " + shape_str(target) + " has more elements than an int64 counts");
    }
  }
  if (infer_at >= 0) {
    if (known == 0 || count % known != 0)
      throw ValueError(what + ": cannot reshape " + std::to_string(count) + " elements into " +
                       shape_str(target));
    out[infer_at] = count / known;
  } else if (known != count) {
    throw ValueError(what + ": cannot reshape " + std::to_string(count) + " elements into " +
                     shape_str(target));
  }
  return out;
}

Tensor Tensor::reshape(const Shape& shape) const {
  Shape resolved = resolve_reshape(shape, numel(), "reshape");
  if (!is_contiguous())
    throw ValueError("reshape: a non-contiguous view of shape " + shape_str(shape_) +
                     " cannot be reshaped without a copy; call contiguous() first");
  return view_of(storage_, dtype_, resolved, contiguous_strides(resolved), offset_);
}

Tensor Tensor::permute(const std::vector<std::int64_t>& axes) const {
  if (static_cast<std::int64_t>(axes.size()) != ndim())
    throw ValueError("permute: " + std::to_string(axes.size()) + " axes given for a tensor of rank " +
                     std::to_string(ndim()));
  normalize_axes(axes, ndim(), "permute");  // throws unless axes is a permutation
  Shape s(axes.size());
  Strides st(axes.size());
  for (std::size_t i = 0; i < axes.size(); ++i) {
    const auto a = normalize_axis(axes[i], ndim(), "permute");
    s[i] = shape_[a];
    st[i] = strides_[a];
  }
  return view_of(storage_, dtype_, s, st, offset_);
}

Tensor Tensor::transpose() const {
  std::vector<std::int64_t> axes(shape_.size());
  for (std::size_t i = 0; i < axes.size(); ++i) axes[i] = static_cast<std::int64_t>(axes.size() - 1 - i);
  return permute(axes);
}

Tensor Tensor::slice(std::int64_t axis, std::int64_t start, std::int64_t stop, std::int64_t step) const {
  axis = normalize_axis(axis, ndim(), "slice");
  if (step == 0) throw ValueError("slice: step cannot be zero");
  const SliceSpan span = resolve_slice(shape_[axis], start, stop, step);
  const std::int64_t len = span.length;
  start = span.start;
  Shape s = shape_;
  Strides st = strides_;
  s[axis] = len;
  st[axis] = strides_[axis] * step;
  return view_of(storage_, dtype_, s, st, offset_ + (len > 0 ? start * strides_[axis] : 0));
}

Tensor Tensor::broadcast_to(const Shape& shape) const {
  if (shape.size() < shape_.size())
    throw ValueError("broadcast_to: cannot broadcast " + shape_str(shape_) + " to lower rank " +
                     shape_str(shape));
  const std::size_t lead = shape.size() - shape_.size();
  for (std::size_t i = 0; i < shape_.size(); ++i)
    if (shape_[i] != 1 && shape_[i] != shape[lead + i])
      throw ValueError("broadcast_to: cannot broadcast " + shape_str(shape_) + " to " + shape_str(shape));
  Tensor t;
  t.storage_ = storage_;
  t.dtype_ = dtype_;
  t.shape_ = shape;
  t.strides_ = broadcast_strides(shape_, strides_, shape);
  t.offset_ = offset_;
  return t;
}

Tensor Tensor::squeeze(const std::vector<std::int64_t>& axes) const {
  std::vector<bool> drop(shape_.size(), false);
  if (axes.empty()) {
    for (std::size_t i = 0; i < shape_.size(); ++i) drop[i] = shape_[i] == 1;
  } else {
    for (auto a : normalize_axes(axes, ndim(), "squeeze")) {
      if (shape_[a] != 1)
        throw ValueError("squeeze: axis " + std::to_string(a) + " of shape " + shape_str(shape_) +
                         " is not of size 1");
      drop[a] = true;
    }
  }
  Shape s;
  Strides st;
  for (std::size_t i = 0; i < shape_.size(); ++i)
    if (!drop[i]) {
      s.push_back(shape_[i]);
      st.push_back(strides_[i]);
    }
  return view_of(storage_, dtype_, s, st, offset_);
}

Tensor Tensor::unsqueeze(std::int64_t axis) const {
  axis = normalize_axis(axis, ndim() + 1, "unsqueeze");
  Shape s = shape_;
  Strides st = strides_;
  const std::int64_t inner = axis < ndim() ? strides_[axis] * shape_[axis] : 1;
  s.insert(s.begin() + axis, 1);
  st.insert(st.begin() + axis, inner);
  return view_of(storage_, dtype_, s, st, offset_);
}

void Tensor::throw_not_on_host(const char* what) const {
  throw RuntimeError(std::string(what) + ": the tensor " + dtype_name(dtype_) + shape_str(shape_) + " is on " +
                     device_name(device()) + "; copy it to the CPU first (to(Device::cpu), .to(\"cpu\") in Python)");
}

Tensor Tensor::to(Device target) const {
  const Device here = device();
  if (here == target) return *this;
  const std::size_t nbytes = static_cast<std::size_t>(numel()) * itemsize(dtype_);
  if (here == Device::cpu) {
    DeviceBackend& backend = require_device(target);
    const Tensor packed = contiguous();
    Tensor out = empty(dtype_, shape_, target);
    if (nbytes) backend.copy_to_device(out.raw_data(), packed.raw_data(), nbytes);
    return out;
  }
  DeviceBackend& backend = require_device(here);
  if (target != Device::cpu) throw ValueError(std::string("to: cannot copy from ") + device_name(here) + " to " + device_name(target));
  if (!is_contiguous()) return contiguous().to(Device::cpu);  // packed on the device first
  Tensor out = empty(dtype_, shape_);
  if (nbytes) backend.copy_to_host(out.raw_data(), raw_data(), nbytes);
  return out;
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : copy(); }

Tensor Tensor::copy() const {
  Tensor out = empty(dtype_, shape_, device());
  out.copy_from(*this);
  return out;
}

void Tensor::copy_from(const Tensor& src) {
  if (src.shape_ != shape_)
    throw ValueError(std::string("copy_from: cannot copy shape ") + shape_str(src.shape_) + " into " + shape_str(shape_));
  if (device() != Device::cpu || src.device() != Device::cpu) {
    if (device() != src.device())
      throw ValueError(std::string("copy_from: the source is on ") + device_name(src.device()) + ", this tensor on " +
                       device_name(device()) + "; copy across devices with to()");
    const std::size_t nbytes = static_cast<std::size_t>(numel()) * itemsize(dtype_);
    if (src.dtype_ == dtype_ && is_contiguous() && src.is_contiguous()) {
      if (nbytes && raw_data() != src.raw_data()) require_device(device()).copy_on_device(raw_data(), src.raw_data(), nbytes);
      return;
    }
    // Strides or a dtype change: the device's strided conversion kernel (the astype op's).
    const KernelFn convert = device_kernel("astype", device());
    if (!convert) throw RuntimeError(std::string("copy_from: no ") + device_name(device()) + " kernel for strided copies");
    const Tensor* in[] = {&src};
    convert(in, *this, Attrs());
    return;
  }
  if (src.dtype_ == dtype_ && is_contiguous() && src.is_contiguous()) {
    std::memmove(raw_data(), src.raw_data(), static_cast<std::size_t>(numel()) * itemsize(dtype_));
    return;
  }
  visit_dtype(dtype_, [&](auto to) {
    visit_dtype(src.dtype_, [&](auto from) { convert_loop<decltype(to), decltype(from)>(src, *this); });
  });
}

void Tensor::fill_zero() {
  if (device() != Device::cpu) {
    if (!is_contiguous()) throw_not_on_host("fill_zero of a strided view");
    if (numel()) require_device(device()).memset_zero(raw_data(), static_cast<std::size_t>(numel()) * itemsize(dtype_));
    return;
  }
  if (is_contiguous()) {
    std::memset(raw_data(), 0, static_cast<std::size_t>(numel()) * itemsize(dtype_));
    return;
  }
  copy_from(Tensor::zeros(dtype_, {}).broadcast_to(shape_));
}

void Tensor::fill(double value) {
  if (device() != Device::cpu) {  // the device's strided copy from a broadcast scalar
    copy_from(Tensor::full(dtype_, {}, value).to(device()).broadcast_to(shape_));
    return;
  }
  if (!is_contiguous()) {
    copy_from(Tensor::full(dtype_, {}, value).broadcast_to(shape_));
    return;
  }
  visit_dtype(dtype_, [&](auto tag) {
    using T = decltype(tag);
    std::fill_n(static_cast<T*>(raw_data()), numel(), static_cast<T>(value));
  });
}

Tensor Tensor::astype(DType dtype) const {
  Tensor out = empty(dtype, shape_, device());
  out.copy_from(*this);
  return out;
}

double Tensor::item() const {
  if (numel() != 1) throw ValueError("item: tensor of shape " + shape_str(shape_) + " has not one element");
  if (device() != Device::cpu) return to(Device::cpu).item();
  double v = 0;
  visit_dtype(dtype_, [&](auto tag) { v = static_cast<double>(*static_cast<const decltype(tag)*>(raw_data())); });
  return v;
}

std::string Tensor::to_string() const {
  std::ostringstream os;
  os << "Tensor(" << dtype_name(dtype_) << ", shape=" << shape_str(shape_);
  if (device() != Device::cpu) os << ", device=" << device_name(device());
  os << ")";
  return os.str();
}

}  // namespace xgrad
