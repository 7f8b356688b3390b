#include "autodiff/gradcheck.h"

#include <cmath>
#include <random>

#include "autodiff/grad.h"
#include "autodiff/program.h"
#include "ops/ops.h"

namespace xgrad {

GradcheckResult gradcheck(const std::function<Var(const std::vector<Var>&)>& fn, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options) {
  Graph g;
  std::vector<Var> nodes;
  std::vector<Tensor> values;  // float64 copies, perturbed in place
  Program::Feeds feeds;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    values.push_back(inputs[i].astype(DType::float64));
    nodes.push_back(g.input("input" + std::to_string(i), values.back().shape(), DType::float64));
    feeds.emplace_back("input" + std::to_string(i), values.back());
  }
  const Var out = fn(nodes);
  if (out.dtype() != DType::float64) throw TypeError("gradcheck: fn must return a float64 node for float64 inputs");
  Var loss = out;
  if (!out.shape().empty()) {
    Tensor r = Tensor::empty(DType::float64, out.shape());
    std::mt19937 rng(options.seed);
    std::normal_distribution<double> normal;
    for (std::int64_t i = 0; i < r.numel(); ++i) r.data<double>()[i] = normal(rng);
    loss = sum(out * g.constant(r));
  }
  const std::vector<Var> grads = grad(loss, nodes, true);
  const Program loss_prog = compile({loss});
  const Program grad_prog = compile(grads);
  const std::vector<Tensor> analytic = grad_prog.run(feeds);
  for (std::size_t i = 0; i < values.size(); ++i) {
    double* x = values[i].data<double>();
    const double* got = analytic[i].data<double>();
    for (std::int64_t j = 0; j < values[i].numel(); ++j) {
      const double orig = x[j];
      x[j] = orig + options.eps;
      const double plus = loss_prog.run(feeds)[0].item();
      x[j] = orig - options.eps;
      const double minus = loss_prog.run(feeds)[0].item();
      x[j] = orig;
      const double numeric = (plus - minus) / (2 * options.eps);
      if (!(std::fabs(got[j] - numeric) <= options.atol + options.rtol * std::fabs(numeric)))
        return {false, "gradient of input " + std::to_string(i) + " differs at flat index " + std::to_string(j) +
                           ": analytic " + std::to_string(got[j]) + ", numeric " + std::to_string(numeric)};
    }
  }
  return {};
}

}  // namespace xgrad
