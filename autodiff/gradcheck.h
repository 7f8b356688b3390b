// Finite-difference gradient checking (the C++ counterpart of xg.gradcheck).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/graph.h"

namespace xgrad {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
  unsigned seed = 0;  // for the random weights that reduce a non-scalar output
};

struct GradcheckResult {
  bool ok = true;
  std::string message;  // which input and element disagree, when !ok
};

// Builds fn(inputs as float64 graph inputs), differentiates sum(out * R) and
// compares every gradient element with central differences.
GradcheckResult gradcheck(const std::function<Var(const std::vector<Var>&)>& fn, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});

}  // namespace xgrad
