// CUDA indexing ops: take, take_along_axis, their scatter-add gradients, and
// one_hot. An index out of range sets a flag that is read back after the
// kernel, so a bad label is a ValueError here as on the CPU, never a wild read.
#include <optional>
#include <string>

#include "core/op.h"
#include "cuda/context.h"
#include "cuda/indexing.cuh"
#include "ops/gather_util.h"

namespace xgrad::cuda {

namespace {

// A device int the kernels raise when they meet a bad index, with the first such index.
class BadIndexFlag {
 public:
  BadIndexFlag() : storage_(Tensor::zeros(DType::int64, {2}, Device::cuda)) {}
  long long* data() const { return static_cast<long long*>(storage_.raw_data()); }
  // The first bad index a kernel met, if any (waits for the kernels queued before).
  std::optional<std::int64_t> first_bad() const {
    const Tensor host = storage_.to(Device::cpu);
    if (host.data<std::int64_t>()[0] == 0) return std::nullopt;
    return host.data<std::int64_t>()[1];
  }

 private:
  Tensor storage_;
};

__device__ void raise(long long* flag, long long index) {
  if (atomicCAS(reinterpret_cast<unsigned long long*>(flag), 0ULL, 1ULL) == 0ULL) flag[1] = index;
}

template <class T, bool kScatter>
__global__ void walk_kernel(T* x, const std::int64_t* idx, T* out, std::int64_t n, StridedIndex<3> ix,
                            std::int64_t axis_stride, std::int64_t axis_size, long long* bad) {
  XGRAD_GRID_STRIDE(i, n) {
    std::int64_t off[3];
    ix.offsets(i, off);
    const std::int64_t raw = idx[off[2]];
    const std::int64_t at = raw < 0 ? raw + axis_size : raw;
    if (at < 0 || at >= axis_size) {
      raise(bad, raw);
      continue;
    }
    T* src = x + off[1] + at * axis_stride;
    if (kScatter) atomicAdd(src, out[off[0]]);
    else out[off[0]] = *src;
  }
}

// Gather (out = x[idx]) or scatter-add (x[idx] += out) over out's index space.
template <bool kScatter>
void walk_run(const GatherWalk& w, const Tensor& x, const Tensor& idx, const Tensor& out) {
  const std::int64_t n = out.numel();
  if (n == 0) return;
  if (out.ndim() > kMaxRank) throw ValueError("the CUDA indexing kernels take up to 8 dimensions");
  StridedIndex<3> ix;
  ix.rank = static_cast<int>(out.ndim());
  for (int d = 0; d < ix.rank; ++d) {
    ix.size[d] = out.shape()[d];
    ix.stride[0][d] = out.strides()[d];
    ix.stride[1][d] = w.x[d];
    ix.stride[2][d] = w.idx[d];
  }
  const BadIndexFlag bad;
  kernels::dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    XGRAD_LAUNCH(blocks_for(n), kThreads, walk_kernel<T, kScatter>)(
        static_cast<T*>(x.raw_data()), static_cast<const std::int64_t*>(idx.raw_data()), static_cast<T*>(out.raw_data()),
        n, ix, w.axis_stride, w.axis_size, bad.data());
  });
  check_launch("indexing kernel");
  if (const auto i = bad.first_bad())  // the CPU kernel's words
    throw ValueError("index " + std::to_string(*i) + " is out of bounds for an axis of size " + std::to_string(w.axis_size));
}

void take(const Tensor* const* in, Tensor& out, const Attrs& a) {
  walk_run<false>(take_walk(*in[0], *in[1], axis_attr(a, in[0]->shape().size())), *in[0], *in[1], out);
}

void take_grad(const Tensor* const* in, Tensor& out, const Attrs& a) {
  out.fill_zero();
  walk_run<true>(take_walk(out, *in[1], axis_attr(a, out.shape().size())), out, *in[1], *in[0]);
}

void take_along_axis(const Tensor* const* in, Tensor& out, const Attrs& a) {
  walk_run<false>(along_axis_walk(*in[0], *in[1], out.shape(), axis_attr(a, in[0]->shape().size())), *in[0], *in[1], out);
}

void take_along_axis_grad(const Tensor* const* in, Tensor& out, const Attrs& a) {
  out.fill_zero();
  walk_run<true>(along_axis_walk(out, *in[1], in[0]->shape(), axis_attr(a, out.shape().size())), out, *in[1], *in[0]);
}

template <class T>
__global__ void one_hot_kernel(const std::int64_t* labels, T* out, std::int64_t n, std::int64_t classes, long long* bad) {
  XGRAD_GRID_STRIDE(i, n) {
    const std::int64_t label = labels[i];
    if (label < 0 || label >= classes) raise(bad, label);
    else out[i * classes + label] = T(1);
  }
}

void one_hot(const Tensor* const* in, Tensor& out, const Attrs& a) {
  const Tensor labels = in[0]->contiguous();
  const std::int64_t classes = a.get_int("num_classes"), n = labels.numel();
  out.fill_zero();
  if (n == 0) return;
  const BadIndexFlag bad;
  kernels::dispatch_floating(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    XGRAD_LAUNCH(blocks_for(n), kThreads, one_hot_kernel)(static_cast<const std::int64_t*>(labels.raw_data()),
                                                             static_cast<T*>(out.raw_data()), n, classes, bad.data());
  });
  check_launch("one_hot kernel");
  if (const auto label = bad.first_bad())
    throw ValueError("label " + std::to_string(*label) + " is outside [0, " + std::to_string(classes) + ")");
}

const bool registered = [] {
  register_device_kernel("take", Device::cuda, take);
  register_device_kernel("take_grad", Device::cuda, take_grad);
  register_device_kernel("take_along_axis", Device::cuda, take_along_axis);
  register_device_kernel("take_along_axis_grad", Device::cuda, take_along_axis_grad);
  register_device_kernel("one_hot", Device::cuda, one_hot);
  return true;
}();

}  // namespace

}  // namespace xgrad::cuda
