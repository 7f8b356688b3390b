// Reverse-mode differentiation as a graph transformation: grad() adds the
// gradient nodes to y's graph and returns them. Because gradients are
// ordinary nodes, they can be compiled, exported and differentiated again.
#pragma once
#include <vector>

#include "core/graph.h"

namespace xgrad {

// Gradients of the scalar y with respect to each of xs. A node y does not
// depend on is an error naming it, unless allow_unused (then: zeros). A node
// y depends on only through exactly-zero gradients (sign, a where condition)
// gets zeros.
std::vector<Var> grad(Var y, const std::vector<Var>& xs, bool allow_unused = false);

}  // namespace xgrad
