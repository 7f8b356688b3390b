// Devices: the caching allocator (on the CPU, over counted malloc/free), device
// names, clear errors where no GPU is, and the CUDA kernels against the CPU's
// where one is (those tests skip, saying why, on machines without a GPU).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "autodiff/program.h"
#include "core/caching_allocator.h"
#include "core/device.h"
#include "core/op.h"
#include "core/tensor.h"
#include "autodiff/grad.h"
#include "ops/conv.h"
#include "ops/linalg.h"
#include "ops/ops.h"
#include "ops/reduce_util.h"

using namespace xgrad;

namespace {

struct CountingHeap {
  int allocations = 0, frees = 0;
  bool out_of_memory = false;
  std::vector<std::size_t> sizes;  // asked of the heap
  CachingAllocator make(CachingAllocator::Buckets buckets = CachingAllocator::Buckets::rounded) {
    return CachingAllocator([this](std::size_t n) -> void* {
                              if (out_of_memory) return nullptr;
                              ++allocations;
                              sizes.push_back(n);
                              return std::malloc(n);
                            },
                            [this](void* p, std::size_t) {
                              ++frees;
                              std::free(p);
                            },
                            buckets);
  }
};

// The reason a CUDA test cannot run here, or "" when a GPU is usable.
std::string no_gpu_reason() {
  DeviceBackend* backend = device_backend(Device::cuda);
  if (!backend) return "this build has no CUDA backend";
  if (!backend->available()) return backend->unavailable_reason();
  return "";
}

Tensor arange(DType dtype, const Shape& shape, double scale = 0.25, double shift = -1.0) {
  Tensor t = Tensor::empty(dtype, shape);
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    const double v = shift + scale * static_cast<double>(i);
    if (dtype == DType::float32) t.data<float>()[i] = static_cast<float>(v);
    else t.data<double>()[i] = v;
  }
  return t;
}

}  // namespace

TEST(CachingAllocator, ReusesReleasedBlocksOfTheSameRoundedSize) {
  CountingHeap heap;
  {
    CachingAllocator cache = heap.make();
    EXPECT_EQ(CachingAllocator::rounded(1), 512u);
    EXPECT_EQ(CachingAllocator::rounded(513), 1024u);
    EXPECT_EQ(CachingAllocator::rounded((1u << 20) + 1), 2u << 20);
    void* a = cache.allocate(1000);
    void* b = cache.allocate(1000);
    EXPECT_NE(a, b);
    cache.release(a, 1000);
    EXPECT_EQ(cache.stats().bytes_cached, 1024u);
    // Steady state: the same sizes again come from the cache, not the heap.
    for (int run = 0; run < 10; ++run) {
      void* c = cache.allocate(1010);  // rounds to 1024 too
      EXPECT_EQ(c, a);
      cache.release(c, 1010);
    }
    EXPECT_EQ(heap.allocations, 2);
    EXPECT_EQ(cache.stats().raw_allocations, 2u);
    void* d = cache.allocate(5000);  // another size: a new block
    EXPECT_EQ(heap.allocations, 3);
    cache.release(d, 5000);
    cache.release(b, 1000);
    EXPECT_EQ(cache.stats().bytes_in_use, 0u);
    cache.release_cache();
    EXPECT_EQ(heap.frees, 3);
    EXPECT_EQ(cache.stats().bytes_cached, 0u);
  }
  EXPECT_EQ(heap.frees, heap.allocations);
}

TEST(CachingAllocator, ExactBucketsReuseOnlyBlocksOfTheSameByteCount) {
  CountingHeap heap;
  CachingAllocator cache = heap.make(CachingAllocator::Buckets::exact);
  void* a = cache.allocate(1000);
  cache.release(a, 1000);
  void* b = cache.allocate(1004);  // would share a's rounded bucket; exact sizes keep them apart
  EXPECT_NE(b, a);
  EXPECT_EQ(cache.allocate(1000), a);
  EXPECT_EQ(heap.sizes, (std::vector<std::size_t>{1000, 1004}));
  EXPECT_EQ(cache.stats().bytes_in_use, 2004u);
  cache.release(a, 1000);
  cache.release(b, 1004);
}

TEST(CachingAllocator, OutOfMemoryEmptiesTheCacheAndRetriesOnce) {
  CountingHeap heap;
  CachingAllocator cache = heap.make();
  void* a = cache.allocate(4096);
  cache.release(a, 4096);
  heap.out_of_memory = true;
  EXPECT_THROW(cache.allocate(8192), std::bad_alloc);
  EXPECT_EQ(heap.frees, 1);  // the cached block went back before the retry
  EXPECT_EQ(cache.stats().bytes_cached, 0u);
}

TEST(Device, NamesParseAndUnknownOnesAreValueErrors) {
  EXPECT_EQ(parse_device("cpu"), Device::cpu);
  EXPECT_EQ(parse_device("cuda"), Device::cuda);
  EXPECT_EQ(parse_device("cuda:0"), Device::cuda);
  EXPECT_STREQ(device_name(Device::cuda), "cuda");
  EXPECT_THROW(parse_device("gpu"), ValueError);
  EXPECT_EQ(Tensor::zeros(DType::float32, {2}).device(), Device::cpu);
}

TEST(Device, WithoutAGpuCudaTensorsAreARuntimeErrorSayingWhy) {
  const std::string reason = no_gpu_reason();
  if (reason.empty()) GTEST_SKIP() << "a GPU is present: this test checks the refusal on machines without one";
  try {
    Tensor::empty(DType::float32, {4}, Device::cuda);
    FAIL() << "allocating on a missing GPU must throw";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("CUDA"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Tensor::zeros(DType::float32, {4}).to(Device::cuda), RuntimeError);
}

TEST(Device, EveryElementwiseOpHasACudaKernel) {
  if (!device_backend(Device::cuda)) GTEST_SKIP() << "this build has no CUDA backend (CMake found no nvcc)";
  std::set<std::string> missing;
  for (const OpDef* op : registered_ops())
    if (op->is_elementwise() && !kernel_for(*op, Device::cuda)) missing.insert(op->name());
  EXPECT_TRUE(missing.empty()) << "no CUDA kernel for " << ::testing::PrintToString(missing);
  EXPECT_EQ(device_kernel("no_such_op", Device::cuda), nullptr);
}

TEST(CudaDevice, TensorsRoundTripThroughTheGpu) {
  if (const std::string reason = no_gpu_reason(); !reason.empty()) GTEST_SKIP() << "no GPU: " << reason;
  const Tensor host = arange(DType::float64, {3, 4});
  const Tensor dev = host.to(Device::cuda);
  EXPECT_EQ(dev.device(), Device::cuda);
  EXPECT_THROW(dev.data<double>(), RuntimeError);  // device memory is not addressable on the host
  const Tensor back = dev.to(Device::cpu);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(back.data<double>()[i], host.data<double>()[i]);
  // A strided device view comes back as its elements, in order.
  const Tensor col = dev.slice(1, 1, 2).to(Device::cpu);
  for (int r = 0; r < 3; ++r) EXPECT_EQ(col.data<double>()[r], host.data<double>()[r * 4 + 1]);
  EXPECT_DOUBLE_EQ(dev.slice(0, 2, 3).slice(1, 3, 4).item(), host.data<double>()[11]);
}

TEST(CudaDevice, ElementwiseKernelsMatchTheCpu) {
  if (const std::string reason = no_gpu_reason(); !reason.empty()) GTEST_SKIP() << "no GPU: " << reason;
  for (DType dtype : {DType::float32, DType::float64}) {
    const Tensor a = arange(dtype, {4, 5}, 0.2, -2.0);
    const Tensor b = arange(dtype, {5}, 0.3, 0.5);  // broadcast along rows
    const Tensor da = a.to(Device::cuda), db = b.to(Device::cuda);
    for (const char* name : {"tanh", "sigmoid", "relu", "exp", "abs", "sign", "softplus", "erf"}) {
      Tensor cpu = Tensor::empty(dtype, a.shape()), gpu = Tensor::empty(dtype, a.shape(), Device::cuda);
      const Tensor* in_cpu[] = {&a};
      const Tensor* in_gpu[] = {&da};
      find_op(name).kernel()(in_cpu, cpu, {});
      device_kernel(name, Device::cuda)(in_gpu, gpu, {});
      const Tensor got = gpu.to(Device::cpu);
      for (std::int64_t i = 0; i < a.numel(); ++i) {
        const double want = cpu.astype(DType::float64).data<double>()[i];
        EXPECT_NEAR(got.astype(DType::float64).data<double>()[i], want, 1e-6 * (1 + std::abs(want))) << name;
      }
    }
    for (const char* name : {"add", "sub", "mul", "div", "pow", "maximum"}) {
      Tensor cpu = Tensor::empty(dtype, a.shape()), gpu = Tensor::empty(dtype, a.shape(), Device::cuda);
      const Tensor* in_cpu[] = {&a, &b};
      const Tensor* in_gpu[] = {&da, &db};
      find_op(name).kernel()(in_cpu, cpu, {});
      device_kernel(name, Device::cuda)(in_gpu, gpu, {});
      const Tensor want = cpu.astype(DType::float64), got = gpu.to(Device::cpu).astype(DType::float64);
      for (std::int64_t i = 0; i < a.numel(); ++i) {
        const double w = want.data<double>()[i];
        if (std::isnan(w)) EXPECT_TRUE(std::isnan(got.data<double>()[i])) << name;
        else EXPECT_NEAR(got.data<double>()[i], w, 1e-6 * (1 + std::abs(w))) << name;
      }
    }
  }
}

namespace {
// y = tanh(x * w + b), and an update w <- w - 0.1 * y: elementwise ops only (the ones with CUDA kernels today).
struct ElementwiseModel {
  Graph g;
  Var x = g.input("x", {4}, DType::float64);
  Var w = g.param("w", Tensor::full(DType::float64, {4}, 0.5));
  Var b = g.param("b", Tensor::full(DType::float64, {4}, -0.25));
  Var y = tanh(x * w + b);
};
}  // namespace

TEST(Device, CompileForCudaNamesTheOpsWithoutKernels) {
  ElementwiseModel m;
  const Var a = reshape(m.y, {2, 2});
  const std::vector<Var> outputs{det(a), cholesky(a)};  // linear algebra has no CUDA kernels
  if (!device_backend(Device::cuda)) {
    EXPECT_THROW(compile(outputs, {}, Device::cuda), RuntimeError);
    return;
  }
  try {
    compile(outputs, {}, Device::cuda);
    FAIL() << "det and cholesky have no CUDA kernels: compiling for cuda must refuse";
  } catch (const ValueError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'det'"), std::string::npos) << msg;  // every missing op, in one message
    EXPECT_NE(msg.find("'cholesky'"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("'tanh'"), std::string::npos) << msg;  // tanh has one
  }
  EXPECT_EQ(m.w->value().device(), Device::cpu);  // a refused compile moves nothing
}

TEST(Device, CompileForCudaWithoutAGpuSaysWhyAndMovesNothing) {
  if (no_gpu_reason().empty()) GTEST_SKIP() << "a GPU is present: this test checks the refusal on machines without one";
  ElementwiseModel m;
  EXPECT_THROW(compile({m.y}, {{m.w, m.w - m.y * 0.1}}, Device::cuda), RuntimeError);
  EXPECT_EQ(m.w->value().device(), Device::cpu);
}

TEST(CudaDevice, ElementwiseProgramWithUpdatesMatchesTheCpu) {
  if (const std::string reason = no_gpu_reason(); !reason.empty()) GTEST_SKIP() << "no GPU: " << reason;
  ElementwiseModel cpu, gpu;
  Program on_cpu = compile({cpu.y}, {{cpu.w, cpu.w - cpu.y * 0.1}});
  Program stale = compile({gpu.y});  // compiled for the CPU before the params move
  Program on_gpu = compile({gpu.y}, {{gpu.w, gpu.w - gpu.y * 0.1}}, Device::cuda);
  EXPECT_EQ(gpu.w->value().device(), Device::cuda);
  const Tensor x = arange(DType::float64, {4});
  for (int run = 0; run < 3; ++run) {
    const Tensor want = on_cpu.run({{"x", x}})[0];
    const Tensor got = on_gpu.run({{"x", x}})[0];
    EXPECT_EQ(got.device(), Device::cuda);
    const Tensor host = got.to(Device::cpu);
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(host.data<double>()[i], want.data<double>()[i], 1e-12);
  }
  const Tensor w = gpu.w->value().to(Device::cpu);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(w.data<double>()[i], cpu.w->value().data<double>()[i], 1e-12);
  // Steady state: later runs of the same shapes take all their memory from the cache.
  const std::size_t settled = device_backend(Device::cuda)->memory_stats().raw_allocations;
  for (int run = 0; run < 10; ++run) on_gpu.run({{"x", x}});
  EXPECT_EQ(device_backend(Device::cuda)->memory_stats().raw_allocations, settled);
  EXPECT_THROW(stale.run({{"x", x}}), RuntimeError);  // its params now live on the GPU
}

TEST(CudaDevice, MatmulThroughCublasMatchesTheCpu) {
  if (const std::string reason = no_gpu_reason(); !reason.empty()) GTEST_SKIP() << "no GPU: " << reason;
  const KernelFn gpu_matmul = device_kernel("matmul", Device::cuda);
  ASSERT_NE(gpu_matmul, nullptr);
  for (DType dtype : {DType::float32, DType::float64}) {
    // Views are taken after the upload, so the GPU sees the same strides as the CPU (the T flag, stride-0 batches).
    const Tensor a3 = arange(dtype, {2, 3, 4}, 0.1, -1.0), b2 = arange(dtype, {4, 5}, 0.05, -0.5);
    const Tensor b2t = arange(dtype, {5, 4}, 0.05, -0.5);
    using View = Tensor (*)(const Tensor&);
    struct Case { const Tensor* a; const Tensor* b; View va; View vb; };
    const View first = [](const Tensor& t) { return t.slice(0, 0, 1).squeeze({0}); };
    const View same = [](const Tensor& t) { return t; };
    const View transposed = [](const Tensor& t) { return t.transpose(); };
    const View batched = [](const Tensor& t) { return t.broadcast_to({2, 4, 5}); };
    const Case cases[] = {
        {&a3, &b2, first, same},        // 2-D
        {&a3, &b2t, first, transposed}, // a transposed view: the T flag
        {&a3, &b2, same, same},         // batch 2, b broadcast (stride 0)
        {&a3, &b2, same, batched},
    };
    for (const Case& c : cases) {
      const Tensor ha = c.va(*c.a), hb = c.vb(*c.b);
      const Tensor ga_base = c.a->to(Device::cuda), gb_base = c.b->to(Device::cuda);
      const Tensor da = c.va(ga_base), db = c.vb(gb_base);
      Shape out_shape = ha.shape().size() >= hb.shape().size() ? ha.shape() : hb.shape();
      out_shape[out_shape.size() - 2] = ha.shape()[ha.ndim() - 2];
      out_shape.back() = hb.shape().back();
      Tensor want = Tensor::empty(dtype, out_shape), got = Tensor::empty(dtype, out_shape, Device::cuda);
      const Tensor* cpu_in[] = {&ha, &hb};
      find_op("matmul").kernel()(cpu_in, want, {});
      const Tensor* gpu_in[] = {&da, &db};
      gpu_matmul(gpu_in, got, {});
      const Tensor w = want.astype(DType::float64), g = got.to(Device::cpu).astype(DType::float64);
      for (std::int64_t i = 0; i < w.numel(); ++i) EXPECT_NEAR(g.data<double>()[i], w.data<double>()[i], 1e-5);
    }
  }
}

TEST(CudaDevice, ReductionsMatchTheCpu) {
  if (const std::string reason = no_gpu_reason(); !reason.empty()) GTEST_SKIP() << "no GPU: " << reason;
  const Tensor x = arange(DType::float32, {3, 4, 5}, 0.07, -2.0);
  const Tensor dx = x.to(Device::cuda);
  const Tensor views[][2] = {{x, dx}, {x.permute({2, 0, 1}), dx.permute({2, 0, 1})}};  // strided input too
  for (const auto& pair : views) {
    for (const char* name : {"sum", "mean", "max", "min", "prod"})
      for (const Axes& axes : {Axes{}, Axes{0}, Axes{1, 2}, Axes{-1}})
        for (std::int64_t keepdims : {0, 1}) {
          Attrs attrs{{"axes", axes}, {"keepdims", keepdims}};
          const Shape shape = reduced_shape(pair[0].shape(), reduce_axes(attrs, pair[0].ndim()), keepdims != 0);
          Tensor want = Tensor::empty(DType::float32, shape), got = Tensor::empty(DType::float32, shape, Device::cuda);
          const Tensor* cpu_in[] = {&pair[0]};
          const Tensor* gpu_in[] = {&pair[1]};
          find_op(name).kernel()(cpu_in, want, attrs);
          device_kernel(name, Device::cuda)(gpu_in, got, attrs);
          const Tensor g = got.to(Device::cpu);
          for (std::int64_t i = 0; i < want.numel(); ++i)
            EXPECT_NEAR(g.data<float>()[i], want.data<float>()[i], 1e-4 * (1 + std::abs(want.data<float>()[i]))) << name;
        }
  }
  // sum_to_like: the gradient of broadcasting (3, 4, 5) from (4, 1).
  Tensor want = Tensor::empty(DType::float32, {4, 1}), got = Tensor::empty(DType::float32, {4, 1}, Device::cuda);
  const Tensor like = Tensor::zeros(DType::float32, {4, 1}), dlike = like.to(Device::cuda);
  const Tensor* cpu_in[] = {&x, &like};
  const Tensor* gpu_in[] = {&dx, &dlike};
  find_op("sum_to_like").kernel()(cpu_in, want, {});
  device_kernel("sum_to_like", Device::cuda)(gpu_in, got, {});
  const Tensor g = got.to(Device::cpu);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(g.data<float>()[i], want.data<float>()[i], 1e-4);
}

TEST(CudaDevice, ConvolutionAndItsAdjointsMatchTheCpu) {
  if (const std::string reason = no_gpu_reason(); !reason.empty()) GTEST_SKIP() << "no GPU: " << reason;
  struct Case { Shape x, w; Conv2dParams p; };
  const Case cases[] = {
      {{2, 3, 7, 6}, {4, 3, 3, 3}, {}},
      {{2, 4, 8, 8}, {6, 2, 3, 2}, {.stride = {2, 1}, .padding = {1, 2}, .dilation = {1, 2}, .groups = 2}},
      {{3, 5, 4, 4}, {2, 5, 1, 1}, {}},  // 1x1: read in place
  };
  for (const Case& c : cases) {
    Graph g;
    Var x = g.input("x", c.x), w = g.param("w", arange(DType::float32, c.w, 0.01, -0.3));
    Var y = conv2d(x, w, c.p);
    Var loss = sum(y * y);
    const std::vector<Var> grads = grad(loss, {x, w});
    Graph g2;
    Var x2 = g2.input("x", c.x), w2 = g2.param("w", arange(DType::float32, c.w, 0.01, -0.3));
    Var y2 = conv2d(x2, w2, c.p);
    Var loss2 = sum(y2 * y2);
    const std::vector<Var> grads2 = grad(loss2, {x2, w2});
    Program cpu = compile({y, grads[0], grads[1]});
    Program gpu = compile({y2, grads2[0], grads2[1]}, {}, Device::cuda);
    const Tensor feed = arange(DType::float32, c.x, 0.003, -0.5);
    const auto want = cpu.run({{"x", feed}});
    const auto got = gpu.run({{"x", feed}});
    for (std::size_t k = 0; k < want.size(); ++k) {
      const Tensor h = got[k].to(Device::cpu);
      for (std::int64_t i = 0; i < want[k].numel(); ++i)
        EXPECT_NEAR(h.data<float>()[i], want[k].data<float>()[i], 1e-4 * (1 + std::abs(want[k].data<float>()[i])))
            << "output " << k;
    }
  }
}
