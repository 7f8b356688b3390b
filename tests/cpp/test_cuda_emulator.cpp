// The CPU emulator of CUDA (cuda/emulator/) catches what it promises to: barriers and shared memory work,
// and divergent barriers, host pointers in kernels, bad launch configurations, reads past an allocation,
// host reads of device memory and cuBLAS operands outside their allocations are errors. Built only with
// -DXGRAD_CUDA_EMULATOR=ON (make test-cuda-emulator), linked to the library's objects (the emulator's
// symbols are not exported from libxgrad.so).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <cublas_v2.h>

#include "cuda/context.h"

namespace {

// A block-wide tree sum in shared memory, as the reduction kernels do it.
__global__ void block_sum(const float* x, float* out, int n) {
  __shared__ float partial[256];
  float acc = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) acc += x[i];
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < static_cast<unsigned>(half)) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = partial[0];
}

__global__ void divergent_barrier(float* out) {
  if (threadIdx.x % 2 == 0) __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void barrier_only_on_odd_threads(float* out) {
  if (threadIdx.x % 2 == 1) __syncthreads();  // thread 0 never reaches it: the plain-call path must notice
  out[threadIdx.x] = 1;
}

// out[t] = the value thread t - 1 wrote, with the barrier between the write and the read left out.
__global__ void neighbour_read_without_barrier(int* out) {
  __shared__ int written[64];
  written[threadIdx.x] = 0;
  __syncthreads();
  written[threadIdx.x] = static_cast<int>(threadIdx.x) + 1;
  // missing: __syncthreads();
  out[threadIdx.x] = threadIdx.x > 0 ? written[threadIdx.x - 1] : -1;
}

__global__ void fill(float* out, int n, float value) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) out[i] = value;
}

__global__ void write_at(float* out, int index) { out[index] = 1; }

template <class T>
T* device_alloc(std::size_t count) {
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, count * sizeof(T)), cudaSuccess);
  return static_cast<T*>(p);
}

template <class T>
std::vector<T> to_host(const T* device, std::size_t count) {
  std::vector<T> host(count);
  EXPECT_EQ(cudaMemcpyAsync(host.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost, nullptr), cudaSuccess);
  return host;
}

template <class T>
void to_device(T* device, const std::vector<T>& host) {
  ASSERT_EQ(cudaMemcpyAsync(device, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice, nullptr), cudaSuccess);
}

TEST(CudaEmulator, BarriersAndSharedMemoryGiveABlockReduction) {
  std::vector<float> x(1000);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 7);
  float* dx = device_alloc<float>(x.size());
  float* dout = device_alloc<float>(3);
  to_device(dx, x);
  XGRAD_LAUNCH(3, 256, block_sum)(dx, dout, 1000);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  float want = 0;
  for (float v : x) want += v;
  for (float got : to_host(dout, 3)) EXPECT_EQ(got, want);  // every block sums the same array
  cudaFree(dx);
  cudaFree(dout);
}

TEST(CudaEmulator, ADivergentBarrierIsALaunchError) {
  float* out = device_alloc<float>(64);
  XGRAD_LAUNCH(1, 64, divergent_barrier)(out);
  const cudaError_t err = cudaGetLastError();
  EXPECT_EQ(err, cudaErrorLaunchFailure);
  EXPECT_NE(std::string(cudaGetErrorString(err)).find("divergent barrier"), std::string::npos) << cudaGetErrorString(err);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // reading the error clears it
  cudaFree(out);
}

TEST(CudaEmulator, ABarrierThreadZeroNeverReachesIsALaunchErrorToo) {
  float* out = device_alloc<float>(64);
  XGRAD_LAUNCH(1, 64, barrier_only_on_odd_threads)(out);
  const cudaError_t err = cudaGetLastError();
  EXPECT_EQ(err, cudaErrorLaunchFailure);
  EXPECT_NE(std::string(cudaGetErrorString(err)).find("thread 1 reached __syncthreads, but thread 0 returned"),
            std::string::npos) << cudaGetErrorString(err);
  cudaFree(out);
}

TEST(CudaEmulator, AMissingBarrierShowsInTheResults) {
  // Threads run in descending order after the first barrier, so each reads its neighbour's slot before
  // the neighbour writes it: the stale 0, where a barrier would have given t.
  int* out = device_alloc<int>(64);
  XGRAD_LAUNCH(1, 64, neighbour_read_without_barrier)(out);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const std::vector<int> got = to_host(out, 64);
  EXPECT_EQ(got[1], 0);
  EXPECT_EQ(got[63], 0);
  cudaFree(out);
}

TEST(CudaEmulator, AHostPointerArgumentIsRefusedBeforeTheKernelRuns) {
  std::vector<float> host(16, 0.0f);
  XGRAD_LAUNCH(1, 16, fill)(host.data(), 16, 2.0f);
  const cudaError_t err = cudaGetLastError();
  EXPECT_EQ(err, cudaErrorInvalidValue);
  EXPECT_NE(std::string(cudaGetErrorString(err)).find("argument 1 points to host memory"), std::string::npos);
  EXPECT_EQ(host[0], 0.0f);
}

TEST(CudaEmulator, ABadLaunchConfigurationIsRefused) {
  float* out = device_alloc<float>(16);
  XGRAD_LAUNCH(1, 2048, fill)(out, 16, 2.0f);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  XGRAD_LAUNCH(0, 32, fill)(out, 16, 2.0f);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  cudaFree(out);
}

TEST(CudaEmulator, FreshDeviceMemoryIsNaNOrAnImpossibleIndexUntilWritten) {
  float* out = device_alloc<float>(301);
  XGRAD_LAUNCH(2, 32, fill)(out, 100, 3.0f);  // the first 100 only
  const std::vector<float> got = to_host(out, 301);
  EXPECT_EQ(got[99], 3.0f);
  EXPECT_TRUE(std::isnan(got[100]));
  EXPECT_TRUE(std::isnan(got[101]));
  EXPECT_TRUE(std::isnan(got[300]));
  double* d = device_alloc<double>(3);
  for (double v : to_host(d, 3)) EXPECT_TRUE(std::isnan(v));
  long long* i = device_alloc<long long>(3);
  for (long long v : to_host(i, 3)) EXPECT_GT(v, 1LL << 62);
  int* i32 = device_alloc<int>(3);
  for (int v : to_host(i32, 3)) EXPECT_GT(v, 1 << 30);
  for (void* p : {static_cast<void*>(out), static_cast<void*>(d), static_cast<void*>(i), static_cast<void*>(i32)}) cudaFree(p);
}

TEST(CudaEmulator, CopiesCheckTheDirectionTheyClaim) {
  float* device = device_alloc<float>(4);
  std::vector<float> host(4, 1.0f);
  EXPECT_EQ(cudaMemcpyAsync(host.data(), device, 16, cudaMemcpyHostToDevice, nullptr), cudaErrorInvalidValue);
  EXPECT_NE(std::string(cudaGetErrorString(cudaErrorInvalidValue)).find("destination should be device memory"),
            std::string::npos);
  EXPECT_EQ(cudaMemcpyAsync(device, host.data(), 32, cudaMemcpyHostToDevice, nullptr), cudaErrorInvalidValue)
      << "32 bytes do not fit a 16-byte allocation";
  EXPECT_EQ(cudaMemcpyAsync(device, device + 1, 8, cudaMemcpyDeviceToDevice, nullptr), cudaErrorInvalidValue)
      << "overlapping ranges";
  EXPECT_NE(std::string(cudaGetErrorString(cudaErrorInvalidValue)).find("overlap"), std::string::npos);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);  // failed calls are the thread's last error too
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  cudaFree(device);
}

TEST(CudaEmulatorDeathTest, AKernelWritingPastAnAllocationFaultsAndSaysSo) {
  testing::FLAGS_gtest_death_test_style = "threadsafe";  // OpenBLAS has started threads
  float* out = device_alloc<float>(10);
  XGRAD_LAUNCH(1, 1, write_at)(out, 9);  // the last element: fine
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  EXPECT_DEATH(XGRAD_LAUNCH(1, 1, write_at)(out, 10),
               "write_at accessed past the end of a device allocation of 40 bytes \\(its byte 40\\)");
  cudaFree(out);
}

TEST(CudaEmulatorDeathTest, HostCodeReadingDeviceMemoryFaultsAndSaysSo) {
  testing::FLAGS_gtest_death_test_style = "threadsafe";
  float* out = device_alloc<float>(10);
  volatile float* p = out;
  EXPECT_DEATH((void)p[3], "host code touched device memory \\(byte 12 of an allocation of 40 bytes\\)");
  cudaFree(out);
}

TEST(CudaEmulator, CublasChecksItsArgumentsAndComputesColumnMajorProducts) {
  cublasHandle_t handle = nullptr;
  ASSERT_EQ(cublasCreate(&handle), CUBLAS_STATUS_SUCCESS);
  // Column-major A (2x3), B (3x2): C = A B (2x2).
  const std::vector<double> a = {1, 2, 3, 4, 5, 6}, b = {1, 0, 2, 0, 1, 1};
  double* da = device_alloc<double>(6);
  double* db = device_alloc<double>(6);
  double* dc = device_alloc<double>(4);  // NaN: beta 0 must not read it
  to_device(da, a);
  to_device(db, b);
  const double one = 1, zero = 0;
  ASSERT_EQ(cublasDgemmStridedBatched(handle, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, da, 2, 0, db, 3, 0, &zero, dc, 2, 0, 1),
            CUBLAS_STATUS_SUCCESS);
  const std::vector<double> c = to_host(dc, 4);
  // C[:,0] = 1*A[:,0] + 2*A[:,2] = (11, 14); C[:,1] = A[:,1] + A[:,2] = (8, 10)
  EXPECT_EQ(c, (std::vector<double>{11, 14, 8, 10}));

  EXPECT_EQ(cublasDgemmStridedBatched(handle, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, da, 1, 0, db, 3, 0, &zero, dc, 2, 0, 1),
            CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_NE(std::string(cublasGetStatusString(CUBLAS_STATUS_INVALID_VALUE)).find("leading dimension"), std::string::npos);
  // A second batch of A at stride 6 lies outside its 6-element allocation.
  EXPECT_EQ(cublasDgemmStridedBatched(handle, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, da, 2, 6, db, 3, 0, &zero, dc, 2, 0, 2),
            CUBLAS_STATUS_EXECUTION_FAILED);
  EXPECT_NE(std::string(cublasGetStatusString(CUBLAS_STATUS_EXECUTION_FAILED)).find("batch 1's A"), std::string::npos)
      << cublasGetStatusString(CUBLAS_STATUS_EXECUTION_FAILED);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess) << "cuBLAS reports by status alone, as the real one";
  cublasDestroy(handle);
  for (void* p : {static_cast<void*>(da), static_cast<void*>(db), static_cast<void*>(dc)}) cudaFree(p);
}

}  // namespace
