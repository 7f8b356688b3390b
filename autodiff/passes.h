// Graph passes run before compiling (and before differentiating): they add
// rewritten nodes to the graph and return the roots that use them; the
// original nodes stay valid and unchanged.
#pragma once
#include <vector>

#include "core/graph.h"

namespace xgrad {

// Numerical-stability rewrites:
//   log(softmax(x)) -> log_softmax(x)      log(1 + x) -> log1p(x)
//   exp(x) - 1      -> expm1(x)            log(sigmoid(x)) -> -softplus(-x)
// and common-subexpression elimination: equal ops on equal inputs, and equal
// small constants, become one node (never for nondeterministic ops).
// Nodes in `keep` are neither merged nor rewritten away (grad keeps the nodes
// it differentiates with respect to).
std::vector<Var> simplify(const std::vector<Var>& roots, const std::vector<Var>& keep = {});

}  // namespace xgrad
