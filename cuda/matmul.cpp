// matmul on the GPU through cuBLAS: numpy semantics as on the CPU (batched,
// broadcasting batch axes, transposed views as transpose flags, no copies for
// strided matrices cuBLAS can read).
#include <string>

#include "core/op.h"
#include "cuda/blas.h"
#include "cuda/context.h"
#include "ops/gemm.h"

namespace xgrad::cuda {

namespace {

template <class T>
void gemm_call(const blas::GemmCall& g) {
  gemm<T>(g.a.transposed, g.b.transposed, g.m, g.n, g.k, static_cast<const T*>(g.a.data), g.a.ld, g.stride_a,
          static_cast<const T*>(g.b.data), g.b.ld, g.stride_b, static_cast<T*>(g.c), g.n, g.stride_c, g.batches);
}

// The innermost batch axis is one strided-batched cuBLAS call; outer batch axes loop on the host.
void matmul(const Tensor* const* in, Tensor& out, const Attrs&) {
  blas::for_each_gemm(*in[0], *in[1], out, true, [&](const blas::GemmCall& g) {
    if (out.dtype() == DType::float32) gemm_call<float>(g);
    else gemm_call<double>(g);
  });
}

const bool registered = [] {
  register_device_kernel("matmul", Device::cuda, matmul);
  return true;
}();

}  // namespace

}  // namespace xgrad::cuda
