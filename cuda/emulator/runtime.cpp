// The emulated CUDA runtime calls: one device, memory from device_memory.cpp,
// copies checked against the direction they claim, streams that are already
// synchronous, and the last-error state.
#include <cstring>
#include <map>
#include <string>

#include "cuda/emulator/include/cuda_runtime.h"
#include "cuda/emulator/device_memory.h"
#include "cuda/emulator/errors.h"

namespace xgrad::cuda::emulator {

namespace {

thread_local int last_error = 0;
thread_local std::map<int, std::string> messages, blas_messages;

const char* runtime_name(int code) {
  switch (code) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    default: return "unrecognized error code";
  }
}

cudaError_t fail(cudaError_t code, const std::string& message) {
  set_error(code, message);
  return code;
}

// Checks one side of a copy: device memory for a device side, anything else for a host side.
bool side_ok(const void* p, std::size_t bytes, bool device, const char* what, const char* side, std::string& problem) {
  if (device ? is_device_range(p, bytes) : !touches_device(p, bytes)) return true;
  problem = std::string(what) + ": the " + side + " should be " + (device ? "device" : "host") + " memory for " +
            std::to_string(bytes) + " bytes, but it is " + describe_pointer(p);
  return false;
}

}  // namespace

void set_error(int code, std::string message) {
  last_error = code;
  messages[code] = std::move(message);
}

int take_error() {
  const int code = last_error;
  last_error = 0;
  return code;
}

const char* error_message(int code) {
  const auto it = messages.find(code);
  return it != messages.end() ? it->second.c_str() : runtime_name(code);
}

void set_blas_message(int status, std::string message) { blas_messages[status] = std::move(message); }

const char* blas_message(int status) {
  const auto it = blas_messages.find(status);
  if (it != blas_messages.end()) return it->second.c_str();
  return status == 0 ? "the operation completed successfully" : "cuBLAS error";
}

}  // namespace xgrad::cuda::emulator

using namespace xgrad::cuda::emulator;

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** ptr, std::size_t bytes) {
  *ptr = allocate_device(bytes);
  if (*ptr) return cudaSuccess;
  return fail(cudaErrorMemoryAllocation, "out of memory: could not map " + std::to_string(bytes) + " bytes");
}

cudaError_t cudaFree(void* ptr) {
  if (!ptr || free_device(ptr)) return cudaSuccess;
  return fail(cudaErrorInvalidDevicePointer, "cudaFree: " + describe_pointer(ptr) + " is not an allocation's start");
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  if (bytes == 0) return cudaSuccess;
  const bool dst_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  std::string problem;
  if (!side_ok(dst, bytes, dst_device, "cudaMemcpyAsync", "destination", problem) ||
      !side_ok(src, bytes, src_device, "cudaMemcpyAsync", "source", problem))
    return fail(cudaErrorInvalidValue, problem);
  const auto d = static_cast<const char*>(dst), s = static_cast<const char*>(src);
  if (d < s + bytes && s < d + bytes)  // memcpy's contract, and cudaMemcpy's: the ranges may not overlap
    return fail(cudaErrorInvalidValue, "cudaMemcpyAsync: the source and destination of " + std::to_string(bytes) +
                                           " bytes overlap");
  const DeviceAccess access("cudaMemcpyAsync");
  std::memcpy(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* dst, int value, std::size_t bytes, cudaStream_t) {
  if (bytes == 0) return cudaSuccess;
  std::string problem;
  if (!side_ok(dst, bytes, true, "cudaMemsetAsync", "destination", problem)) return fail(cudaErrorInvalidValue, problem);
  const DeviceAccess access("cudaMemsetAsync");
  std::memset(dst, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned) {
  static char the_stream;  // work runs when it is queued: there is nothing to wait for
  *stream = reinterpret_cast<cudaStream_t>(&the_stream);
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

cudaError_t cudaGetLastError() { return static_cast<cudaError_t>(take_error()); }

const char* cudaGetErrorString(cudaError_t error) { return error_message(error); }
