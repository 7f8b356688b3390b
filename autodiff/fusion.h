// Fusion, a compile-time graph pass (after the stability rewrites and CSE, and
// after differentiation): a matrix product whose only reader adds a bias row
// (b of shape (n,)), optionally followed by relu, tanh or sigmoid as the only
// reader of that sum, becomes one linear(x, w, b, activation) node, whose
// kernel applies the epilogue while the GEMM's output is in cache. Like the
// other passes it adds nodes and returns new roots; the originals stay.
#pragma once
#include <vector>

#include "core/graph.h"

namespace xgrad {

std::vector<Var> fuse_gemm_epilogues(const std::vector<Var>& roots);

}  // namespace xgrad
