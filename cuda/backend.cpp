// The CUDA DeviceBackend: availability, the caching allocator over cudaMalloc,
// copies on the backend's stream. Registered for Device::cuda at load time.
#include <mutex>
#include <string>

#include "core/caching_allocator.h"
#include "core/device.h"
#include "core/error.h"
#include "cuda/context.h"

namespace xgrad::cuda {

void check(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return;
  cudaGetLastError();  // the runtime also keeps it as the thread's last error: the next launch check must not see it
  throw RuntimeError(std::string(what) + ": " + cudaGetErrorString(err));
}

namespace {

class CudaBackend final : public DeviceBackend {
 public:
  CudaBackend()
      : cache_([](std::size_t n) -> void* {
                 void* p = nullptr;
                 const cudaError_t err = cudaMalloc(&p, n);
                 if (err == cudaSuccess) return p;
                 cudaGetLastError();
                 // Only a full device is worth emptying the cache for; anything else (a kernel that
                 // faulted earlier) is reported as itself.
                 if (err == cudaErrorMemoryAllocation) return nullptr;
                 throw RuntimeError(std::string("CUDA error (from this or an earlier GPU operation): ") +
                                    cudaGetErrorString(err));
               },
               [](void* p, std::size_t) { cudaFree(p); },
#if defined(XGRAD_CUDA_EMULATOR)
               // The emulator puts a guard page right after each raw allocation: exact sizes put it right
               // after each tensor's bytes, so a kernel reading one element too far faults.
               CachingAllocator::Buckets::exact
#else
               CachingAllocator::Buckets::rounded
#endif
        ) {}

  bool available() const override { return probe().count > 0; }
  std::string unavailable_reason() const override { return probe().reason; }
  int device_count() const override { return probe().count; }

  void* allocate(std::size_t nbytes) override {
    try {
      void* p = cache_.allocate(nbytes);
#if defined(XGRAD_CUDA_EMULATOR)
      emulator::poison_device(p, nbytes);  // also a reused block: its old contents must not pass for results
#endif
      return p;
    } catch (const std::bad_alloc&) {
      throw RuntimeError("CUDA out of memory allocating " + std::to_string(nbytes) + " bytes");
    }
  }
  void release(void* ptr, std::size_t nbytes) noexcept override { cache_.release(ptr, nbytes); }

  // Host buffers here are pageable (numpy's, ours): CUDA stages a pageable source before the call returns,
  // so the caller may free it at once, and the host need not wait for the queued kernels.
  void copy_to_device(void* dst, const void* src, std::size_t n) override {
    check(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, stream()), "copy to the GPU");
  }
  void copy_to_host(void* dst, const void* src, std::size_t n) override {
    check(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, stream()), "copy to the CPU");
    check(cudaStreamSynchronize(stream()), "copy to the CPU");
  }
  void copy_on_device(void* dst, const void* src, std::size_t n) override {
    check(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, stream()), "copy on the GPU");
  }
  void memset_zero(void* dst, std::size_t n) override { check(cudaMemsetAsync(dst, 0, n, stream()), "memset on the GPU"); }
  void synchronize() override { check(cudaStreamSynchronize(stream()), "synchronize"); }
  MemoryStats memory_stats() const override {
    const CachingAllocator::Stats s = cache_.stats();
    return {s.raw_allocations, s.bytes_in_use, s.bytes_cached};
  }

 private:
  struct Probe {
    int count = 0;
    std::string reason;
  };
  // Asked once: a machine without a driver or a GPU says so, and everything else refuses with that reason.
  static const Probe& probe() {
    static const Probe result = [] {
      Probe p;
      const cudaError_t err = cudaGetDeviceCount(&p.count);
      if (err != cudaSuccess) {
        cudaGetLastError();  // clear it: the runtime keeps the last error per thread
        p.count = 0;
        p.reason = std::string("no usable CUDA device (") + cudaGetErrorString(err) + ")";
      } else if (p.count == 0) {
        p.reason = "no CUDA device found";
      }
      return p;
    }();
    return result;
  }

  CachingAllocator cache_;
};

CudaBackend& backend() {
  static CudaBackend* b = new CudaBackend();  // never destroyed: tensors released at exit may still return memory
  return *b;
}

const bool registered = [] {
  register_device_backend(Device::cuda, &backend());
  return true;
}();

}  // namespace

cudaStream_t stream() {
  static cudaStream_t s = [] {
    require_device(Device::cuda);
    cudaStream_t created = nullptr;
    check(cudaStreamCreateWithFlags(&created, cudaStreamNonBlocking), "creating the CUDA stream");
    return created;
  }();
  return s;
}

}  // namespace xgrad::cuda
