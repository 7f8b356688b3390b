// Fusion, a compile-time graph pass (after the stability rewrites and CSE, and
// after differentiation): a matrix product whose only reader adds a bias row
// (b of shape (n,)), optionally followed by relu, tanh or sigmoid as the only
// reader of that sum, becomes one linear(x, w, b, activation) node, whose
// kernel applies the epilogue while the GEMM's output is in cache. Likewise
// take_along_axis(log_softmax(x, 1), idx, 1) (cross_entropy's core) becomes
// log_softmax_take(x, idx), and log_softmax's gradient of the scattered
// take_along_axis gradient becomes log_softmax_take_grad(x, idx, d): one pass
// over the logits each way. Like the other passes it adds nodes and returns new
// roots; the originals stay.
#pragma once
#include <vector>

#include "core/graph.h"

namespace xgrad {

std::vector<Var> fuse_cpu_kernels(const std::vector<Var>& roots);

}  // namespace xgrad
