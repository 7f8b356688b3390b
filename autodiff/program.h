// compile(outputs) turns the part of a graph that computes `outputs` into a
// Program: a flat tape of prepared kernel calls. Running it with feeds of a
// new shape signature plans once (shapes, views, one arena laid out by
// liveness); later runs of that signature reuse the plan and its arenas.
//
// A Program is immutable and may be run from several threads at once: each
// run takes its own arena from the plan's pool. Parameters are shared: a run
// reads whatever value they hold when it starts.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/graph.h"

namespace xgrad {

class Program {
 public:
  using Feeds = std::vector<std::pair<std::string, Tensor>>;

  explicit Program(const std::vector<Var>& outputs);

  // Feeds by input name. Outputs are fresh tensors owned by the caller.
  std::vector<Tensor> run(const Feeds& feeds) const;

  const std::vector<std::string>& input_names() const;
  const std::vector<TensorType>& input_types() const;
  std::vector<TensorType> output_types() const;
  std::size_t num_steps() const;
  std::string to_string() const;  // the tape and every cached memory plan

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

Program compile(const std::vector<Var>& outputs);

}  // namespace xgrad
