// compile(outputs) turns the part of a graph that computes `outputs` into a
// Program: a flat tape of prepared kernel calls. Running it with feeds of a
// new shape signature plans once (shapes, views, one arena laid out by
// liveness); later runs of that signature reuse the plan and its arenas.
//
// A Program is immutable and may be run from several threads at once: each
// run takes its own arena from the plan's pool. Parameters are shared: a run
// reads whatever value they hold, and a program with updates writes them at
// its end; concurrent runs of such programs race on those params.
//
// A Program compiled for a device (CUDA) runs every step there: an op with no
// kernel for it is a ValueError at compile time, naming the ops (never a quiet
// fallback to the CPU). Compiling moves the params it reads to the device,
// where they stay (a CPU program reading them then refuses to run, saying
// so); feeds are copied in once per run; outputs stay on the device.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/graph.h"

namespace xgrad {

// How a program is compiled.
struct CompileOptions {
  Device device = Device::cpu;
  // A debugging watch for NaN and Inf: every floating feed and every value a run computes is checked as it is
  // produced, and the first one that is not finite stops the run with a RuntimeError naming its node, op and
  // shapes (and the first bad element); the params are left as they were. It runs each step alone (no tiled
  // groups, no fused kernels, no update computed straight into its param), so it costs time; off, it costs
  // nothing. A reduction over processes is checked once reduced, so every rank stops at the same one; a value
  // that is not finite on one rank only stops that rank alone (as any error in a step does; see distributed.h).
  bool check_finite = false;
};

class Program {
 public:
  using Feeds = std::vector<std::pair<std::string, Tensor>>;
  // (param, new value): after each run the param holds the value computed in
  // that run (all updates read the params as they were before the run).
  using Updates = ParamUpdates;

  explicit Program(const std::vector<Var>& outputs, const Updates& updates = {}, Device device = Device::cpu);
  Program(const std::vector<Var>& outputs, const Updates& updates, const CompileOptions& options);

  // Feeds by input name. Outputs are fresh tensors owned by the caller.
  std::vector<Tensor> run(const Feeds& feeds) const;

  const std::vector<std::string>& input_names() const;
  const std::vector<TensorType>& input_types() const;
  std::vector<TensorType> output_types() const;
  Device device() const;
  std::size_t num_steps() const;
  std::string to_string() const;  // the tape and every cached memory plan

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

Program compile(const std::vector<Var>& outputs, const Program::Updates& updates = {}, Device device = Device::cpu);
Program compile(const std::vector<Var>& outputs, const Program::Updates& updates, const CompileOptions& options);

}  // namespace xgrad
