// Program: compiling a graph into a tape of steps, running a plan (autodiff/plan.cpp makes it), printing it.
#include "autodiff/program.h"

#include <algorithm>
#include <cmath>
#include <atomic>
#include <sstream>
#include <unordered_map>

#include "autodiff/fusion.h"
#include "autodiff/passes.h"
#include "autodiff/program_impl.h"

namespace xgrad {

namespace {
void check_feed(const std::string& name, const Tensor& tensor, const TensorType& want) {
  if (!tensor.defined()) throw ValueError("feed '" + name + "' is empty");
  if (tensor.dtype() != want.dtype)
    throw TypeError("feed '" + name + "' is " + dtype_name(tensor.dtype()) + ", but input '" + name + "' is " +
                    dtype_name(want.dtype));
  bool ok = tensor.shape().size() == want.shape.size();
  for (std::size_t d = 0; ok && d < want.shape.size(); ++d) ok = want.shape[d] == kDynamic || want.shape[d] == tensor.shape()[d];
  if (!ok)
    throw ValueError("feed '" + name + "' has shape " + xgrad::to_string(tensor.shape()) + ", but input '" + name +
                     "' expects " + xgrad::to_string(want.shape));
}

template <class T>
std::int64_t first_non_finite(const T* data, std::int64_t n, std::int64_t& count) {
  std::int64_t first = -1;
  for (std::int64_t i = 0; i < n; ++i)
    if (!std::isfinite(data[i])) {
      if (first < 0) first = i;
      ++count;
    }
  return first;
}

// For the finite-value watch: "nan at [0, 2] (3 of 12 values are not finite)", or empty when every value is.
std::string non_finite(const Tensor& t) {
  if ((t.dtype() != DType::float32 && t.dtype() != DType::float64) || t.numel() == 0) return {};
  const Tensor host = t.device() == Device::cpu ? t.contiguous() : t.to(Device::cpu);
  std::int64_t count = 0;
  const std::int64_t at = host.dtype() == DType::float32 ? first_non_finite(host.data<float>(), host.numel(), count)
                                                         : first_non_finite(host.data<double>(), host.numel(), count);
  if (at < 0) return {};
  const double v = host.dtype() == DType::float32 ? host.data<float>()[at] : host.data<double>()[at];
  std::string index;
  for (std::int64_t d = host.ndim() - 1, rest = at; d >= 0; --d) {
    const std::int64_t extent = host.shape()[static_cast<std::size_t>(d)];
    index = std::to_string(rest % extent) + (index.empty() ? "" : ", ") + index;
    rest /= extent;
  }
  return std::string(std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf") + " at [" + index + "] (" + std::to_string(count) + " of " +
         std::to_string(host.numel()) + " values are not finite)";
}
}  // namespace

// Every program input must be fed. A feed for another input of the graph is
// checked like any feed and then ignored (a gradient program may not read x,
// yet callers naturally pass it); a name that is no input of the graph is an error.
std::vector<Tensor> Program::Impl::check_feeds(const Feeds& feeds) const {
  std::vector<Tensor> fed(input_names.size());
  for (const auto& [name, tensor] : feeds) {
    std::size_t k = 0;
    while (k < input_names.size() && input_names[k] != name) ++k;
    if (k == input_names.size()) {
      std::size_t j = 0;
      while (j < graph_input_names.size() && graph_input_names[j] != name) ++j;
      if (j == graph_input_names.size()) {
        std::string uses;
        for (const auto& in : graph_input_names) uses += (uses.empty() ? "" : ", ") + in;
        throw ValueError("feed '" + name + "': the graph has no input of that name (its inputs: " + uses + ")");
      }
      check_feed(name, tensor, graph_input_types[j]);
      continue;
    }
    if (fed[k].defined()) throw ValueError("feed '" + name + "' is given twice");
    check_feed(name, tensor, values[feed_values[k]].type);
    fed[k] = tensor.device() == device ? tensor.contiguous() : tensor.to(device);  // once per run, packed
  }
  for (std::size_t k = 0; k < fed.size(); ++k)
    if (!fed[k].defined())
      throw ValueError("missing feed for input '" + input_names[k] + "' (" + xgrad::to_string(values[feed_values[k]].type) + ")");
  return fed;
}

Program::Program(const std::vector<Var>& outputs, const Updates& updates, Device device)
    : Program(outputs, updates, CompileOptions{device, false}) {}

Program::Program(const std::vector<Var>& outputs, const Updates& updates, const CompileOptions& options)
    : impl_(std::make_shared<Impl>()) {
  const Device device = options.device;
  impl_->check_finite = options.check_finite;
  if (outputs.empty() && updates.empty()) throw ValueError("compile: no outputs or updates given");
  Graph* graph = nullptr;
  std::vector<Node*> roots;
  auto add_root = [&](const Var& v, const char* what) {
    if (!v) throw ValueError(std::string("compile: an ") + what + " is an empty node");
    if (graph && &v.graph() != graph) throw ValueError(std::string("compile: ") + what + "s come from different graphs");
    graph = &v.graph();
    roots.push_back(v.node());
  };
  for (const auto& o : outputs) add_root(o, "output");
  for (const auto& u : updates) add_root(u.second, "update");
  for (std::size_t i = 0; i < updates.size(); ++i) {
    const auto& [target, value] = updates[i];
    if (!target || target->kind() != NodeKind::param)
      throw ValueError("compile: update targets must be params, got " + (target ? "'" + target.name() + "'" : std::string("an empty node")));
    if (&target.graph() != graph) throw ValueError("compile: update target '" + target.name() + "' belongs to another graph");
    if (value->type() != target->type())
      throw ValueError("compile: update of param '" + target.name() + "' " + xgrad::to_string(target->type()) +
                       " has type " + xgrad::to_string(value->type()));
    for (std::size_t j = 0; j < i; ++j)
      if (updates[j].first == target) throw ValueError("compile: param '" + target.name() + "' is updated twice");
  }
  // Stability rewrites and CSE on everything the program computes.
  std::vector<Var> simplified = simplify(std::vector<Var>(roots.begin(), roots.end()));
  // CPU-only fused kernels: GEMM epilogues (bias, activation) and softmax-cross-entropy; CUDA runs them unfused.
  // Not under the finite-value watch: a fused kernel's intermediate values (a pre-activation) are never stored.
  if (device == Device::cpu && !options.check_finite) simplified = fuse_cpu_kernels(simplified);
  for (std::size_t i = 0; i < roots.size(); ++i) roots[i] = simplified[i].node();
  Impl& p = *impl_;
  p.device = device;
  for (const auto& in : graph->inputs()) {
    p.graph_input_names.push_back(in.name());
    p.graph_input_types.push_back(in->type());
  }
  std::unordered_map<const Node*, int> index;
  std::vector<int> node_id;  // per value: its graph node's number (nodes are numbered as they are made)
  for (Node* node : topological_order(roots)) {
    const int v = static_cast<int>(p.values.size());
    index[node] = v;
    node_id.push_back(node->id());
    Value value{node->kind(), node->name(), node->type(), {}};
    if (node->kind() == NodeKind::param) {
      value.param = node;
      p.param_values.push_back(v);
    }
    // A CPU program copies a GPU constant to the host; a device program's constants move in place_on.
    if (node->kind() == NodeKind::constant)
      value.held = device == Device::cpu ? node->value().to(Device::cpu) : node->value();
    if (node->kind() == NodeKind::input) {
      p.input_names.push_back(node->name());
      p.input_types.push_back(node->type());
      p.feed_values.push_back(v);
    }
    if (node->kind() == NodeKind::op) {
      Step step{node->op(), {}, v, node->attrs(), kernel_for(*node->op(), Device::cpu), node->op()->span()};
      for (const Node* in : node->inputs()) step.inputs.push_back(index.at(in));
      p.steps.push_back(std::move(step));
    }
    p.values.push_back(std::move(value));
  }
  // Steps that finish later (cross-process reductions) start as soon as their inputs exist.
  if (std::any_of(p.steps.begin(), p.steps.end(), [](const Step& s) { return s.op->completion() != nullptr; })) {
    std::vector<TapeStep> tape;
    for (const Step& step : p.steps)
      tape.push_back({step.inputs, step.out, step.op->completion() != nullptr, false, node_id[static_cast<std::size_t>(step.out)]});
    std::vector<Step> reordered;
    for (std::size_t s : start_async_early(tape)) reordered.push_back(std::move(p.steps[s]));
    p.steps = std::move(reordered);
  }
  // Update values are computed like outputs (into buffers of their own, so no
  // update can clobber another's input) and copied into the params at the end.
  for (Node* root : roots) {
    const int v = index.at(root);
    p.repeated_output.push_back(std::find(p.outputs.begin(), p.outputs.end(), v) != p.outputs.end());
    p.outputs.push_back(v);
  }
  p.num_user_outputs = outputs.size();
  for (const auto& u : updates) {
    const auto found = index.find(u.first.node());
    p.update_params.push_back(found == index.end() ? -1 : found->second);
    p.update_targets.push_back(u.first.node());
    p.update_names.push_back(u.first.name());
  }
  if (device != Device::cpu) p.place_on(device);
}

// Every step gets the device's kernel (all missing ones are reported at once); then the params
// the program reads or writes move to the device, and constants get device copies.
void Program::Impl::place_on(Device target) {
  std::string missing;
  for (Step& step : steps) {
    const bool always_a_view = step.op->view() && !step.op->alias_if();
    step.kernel = kernel_for(*step.op, target);
    step.span = target == Device::cpu ? step.op->span() : nullptr;
    if (!step.kernel && !always_a_view && missing.find("'" + step.op->name() + "'") == std::string::npos)
      missing += (missing.empty() ? "" : ", ") + ("'" + step.op->name() + "' (node '" + values[step.out].name + "')");
  }
  if (!device_backend(target))
    throw RuntimeError(std::string("compile for ") + device_name(target) + ": " + device_backend_missing_reason(target));
  if (!missing.empty())
    throw ValueError(std::string("compile for ") + device_name(target) + ": no " + device_name(target) +
                     " kernel for op " + missing + "; nothing runs on the CPU behind your back, so compile for "
                     "the CPU or leave these ops out");
  require_device(target);
  auto move_param = [&](Node* param) {
    if (param->value().device() != target) param->move_to(target);
  };
  for (Value& value : values) {
    if (value.param) move_param(value.param);
    if (value.held.defined()) value.held = value.held.to(target);
  }
  for (Node* param : update_targets) move_param(param);
}

std::vector<Tensor> Program::run(const Feeds& feeds) const {
  const Impl& p = *impl_;
  std::vector<Tensor> fed = p.check_feeds(feeds);
  if (p.check_finite)
    for (std::size_t k = 0; k < fed.size(); ++k)
      if (const std::string bad = non_finite(fed[k]); !bad.empty())
        throw RuntimeError("check_finite: feed '" + p.input_names[k] + "' " + dtype_name(fed[k].dtype()) + xgrad::to_string(fed[k].shape()) +
                           " holds " + bad + "; nothing ran");
  std::vector<Shape> signature;
  for (const auto& t : fed) signature.push_back(t.shape());
  const std::shared_ptr<Plan> plan = p.plan_for(signature);

  std::unique_ptr<Context> ctx;
  {
    std::lock_guard<std::mutex> lock(plan->pool_mutex);
    if (!plan->idle.empty()) {
      ctx = std::move(plan->idle.back());
      plan->idle.pop_back();
    }
  }
  if (!ctx) ctx = p.make_context(*plan);
  // Drops per-run references (feeds, outputs, views) and returns the context to the pool.
  struct Release {
    const Impl& p;
    Plan& plan;
    std::unique_ptr<Context>& ctx;
    ~Release() {
      for (std::size_t v = 0; v < p.values.size(); ++v) {
        const Place place = plan.places[v];
        if (place == Place::feed || place == Place::fresh) ctx->values[v] = Tensor();
        if (place == Place::view) ctx->values[v].rebind(nullptr, 0);
      }
      for (auto& lane : ctx->tiles)  // tile views must not keep the caller's arrays alive in the pool
        for (auto& group : lane)
        for (auto& m : group)
          for (int k = 0; k < 2; ++k) {
            for (std::size_t a = 0; a < m.inputs[k].size(); ++a)
              if (!m.input_is_scalar[a] && !m.input_in_scratch[a]) m.inputs[k][a].rebind(nullptr, 0);
            if (!m.out_in_scratch) m.out[k].rebind(nullptr, 0);
          }
      std::lock_guard<std::mutex> lock(plan.pool_mutex);
      plan.idle.push_back(std::move(ctx));
    }
  } release{p, *plan, ctx};

  std::vector<Tensor>& vals = ctx->values;
  for (std::size_t k = 0; k < fed.size(); ++k) vals[p.feed_values[k]] = std::move(fed[k]);
  // Params as they are now: moving one to a device replaces its storage.
  auto bind_param = [&](Tensor& slot, const Node& param) {
    const Tensor& now = p.param_value(param);
    if (slot.storage() != now.storage()) slot = now;
  };
  for (int v : p.param_values) bind_param(vals[static_cast<std::size_t>(v)], *p.values[static_cast<std::size_t>(v)].param);
  for (std::size_t u = 0; u < p.update_targets.size(); ++u)
    if (plan->in_place[u]) bind_param(vals[static_cast<std::size_t>(p.outputs[p.num_user_outputs + u])], *p.update_targets[u]);
  for (int o : p.outputs)
    if (plan->places[o] == Place::fresh && !vals[o].defined())
      vals[o] = Tensor::empty(p.values[o].type.dtype, plan->shapes[o], p.device);

  auto run_step = [&](std::size_t s) {
    const Step& step = p.steps[s];
    const Tensor* const* ins = ctx->step_inputs[s].data();
    if (plan->places[step.out] == Place::view) {  // an alias: only the memory under it changes per run
      const Tensor& base = *ins[0];
      vals[step.out].rebind(base.storage(), base.offset() + plan->view_offsets[step.out]);
    } else {
      step.kernel(ins, vals[step.out], step.attrs);
    }
  };
  // Each tile of a group goes through every member before the next tile starts.
  // Large groups split their tiles across lanes; each lane has its own views and scratch.
  auto run_tiles = [&](std::size_t g, std::size_t lane, std::int64_t first, std::int64_t end, std::size_t& current) {
    const std::vector<int>& group = plan->exec.groups[g];
    std::vector<TileMember>& members = ctx->tiles[lane][g];
    const std::int64_t total = numel(plan->shapes[p.steps[static_cast<std::size_t>(group[0])].out]);
    for (std::int64_t t = first * kTile; t < std::min(end * kTile, total); t += kTile) {
      const int k = t + kTile <= total ? 0 : 1;
      for (std::size_t j = 0; j < group.size(); ++j) {
        current = static_cast<std::size_t>(group[j]);
        const Step& step = p.steps[current];
        TileMember& m = members[j];
        if (step.span) {  // raw pointers into the operands: no Tensor re-pointed per tile
          const void* in[kMaxSpanInputs];  // the plan tiles only steps with at most this many inputs
          bool scalar[kMaxSpanInputs];
          for (std::size_t a = 0; a < step.inputs.size(); ++a) {
            scalar[a] = m.input_is_scalar[a];
            const Tensor& whole = vals[step.inputs[a]];
            in[a] = scalar[a] ? whole.raw_data()
                    : m.input_in_scratch[a] ? m.inputs[k][a].raw_data()
                                            : static_cast<const char*>(whole.raw_data()) + t * m.in_itemsize[a];
          }
          void* out = m.out_in_scratch ? m.out[k].raw_data()
                                       : static_cast<char*>(vals[step.out].raw_data()) + t * m.out_itemsize;
          step.span(in, scalar, out, std::min(kTile, total - t), p.values[step.out].type.dtype, step.attrs);
          continue;
        }
        for (std::size_t a = 0; a < step.inputs.size(); ++a)
          if (!m.input_is_scalar[a] && !m.input_in_scratch[a]) {
            const Tensor& whole = vals[step.inputs[a]];
            m.inputs[k][a].rebind(whole.storage(), whole.offset() + t);
          }
        if (!m.out_in_scratch) {
          const Tensor& whole_out = vals[step.out];
          m.out[k].rebind(whole_out.storage(), whole_out.offset() + t);
        }
        step.kernel(m.in_ptrs[k].data(), m.out[k], step.attrs);
      }
    }
  };
  // Large groups split their tiles across threads in chunks claimed from a shared counter: each thread that joins
  // takes a lane (its own tile views and scratch) and claims chunks until none are left. A worker that wakes late
  // finds the chunks taken, so the caller never waits for a thread's wake-up (tens of microseconds on a VM).
  auto run_group = [&](std::size_t g, std::size_t& current) {
    const std::int64_t total = numel(plan->shapes[p.steps[static_cast<std::size_t>(plan->exec.groups[g][0])].out]);
    const std::int64_t tiles = (total + kTile - 1) / kTile;
    const std::int64_t work = tiles * static_cast<std::int64_t>(plan->exec.groups[g].size());
    const auto parts = static_cast<std::size_t>(std::clamp<std::int64_t>(work / kTileStepsPerLane, 1, static_cast<std::int64_t>(ctx->tiles.size())));
    if (parts == 1) return run_tiles(g, 0, 0, tiles, current);
    const std::int64_t chunks = std::min<std::int64_t>(tiles, static_cast<std::int64_t>(parts) * kChunksPerLane);
    const std::int64_t per = (tiles + chunks - 1) / chunks;
    std::atomic<std::int64_t> next_chunk{0};
    std::atomic<std::size_t> next_lane{0};
    std::vector<std::size_t> step_of(parts, 0);  // each lane's step, for the error message
    std::atomic<std::size_t> failed_lane{0};
    try {
      ThreadPool::instance().run(parts, [&](std::size_t) {
        const std::size_t lane = next_lane.fetch_add(1);
        try {
          for (std::int64_t c; (c = next_chunk.fetch_add(1)) < chunks;) run_tiles(g, lane, c * per, (c + 1) * per, step_of[lane]);
        } catch (...) {
          failed_lane = lane;
          next_chunk = chunks;  // the others stop at their next claim
          throw;
        }
      });
    } catch (...) {
      current = step_of[failed_lane];
      throw;
    }
  };
  std::size_t current = 0;  // the step running, for error messages
  std::size_t position = 0;  // the instruction running
  // The finite-value watch, after each step: the error names the step (see the catch below).
  auto check_output = [&](std::size_t s) {
    const int out = p.steps[s].out;
    if (plan->places[static_cast<std::size_t>(out)] == Place::view) return;
    if (const std::string bad = non_finite(vals[static_cast<std::size_t>(out)]); !bad.empty())
      throw RuntimeError("check_finite: its output " + std::string(dtype_name(vals[out].dtype())) + xgrad::to_string(vals[out].shape()) +
                         " holds " + bad + "; the run stopped before writing any param");
  };
  auto complete = [&](int a) {
    current = static_cast<std::size_t>(a);
    p.steps[current].op->completion()(vals[p.steps[current].out]);
    if (p.check_finite) check_output(current);
  };
  try {
    for (; position < plan->exec.order.size(); ++position) {
      const Instruction& ins = plan->exec.order[position];
      if (plan->async.any)
        for (int a : plan->async.before[position]) complete(a);
      if (ins.group >= 0) {
        run_group(static_cast<std::size_t>(ins.group), current);
      } else {
        current = static_cast<std::size_t>(ins.step);
        run_step(current);
        // A step that completes later (a reduction over processes) is checked when it completes.
        if (p.check_finite && !p.steps[current].op->completion()) check_output(current);
      }
    }
    for (int a : plan->async.at_end) complete(a);
  } catch (...) {
    // Work still in flight writes into this run's buffers: it finishes before they go back to the pool.
    if (plan->async.any)
      for (std::size_t a = 0; a < p.steps.size(); ++a) {
        const int launched = plan->async.launch[a];
        if (launched >= 0 && static_cast<std::size_t>(launched) <= position && static_cast<std::size_t>(plan->async.wait[a]) >= position) {
          try {
            p.steps[a].op->completion()(vals[p.steps[a].out]);
          } catch (...) {
          }
        }
      }
    try {
      throw;
    } catch (const TypeError& e) {
      throw TypeError(p.where(p.steps[current], &plan->shapes) + e.what());
    } catch (const ValueError& e) {
      throw ValueError(p.where(p.steps[current], &plan->shapes) + e.what());
    } catch (const RuntimeError& e) {
      throw RuntimeError(p.where(p.steps[current], &plan->shapes) + e.what());
    }
  }

  std::vector<Tensor> result;
  result.reserve(p.num_user_outputs);
  for (std::size_t i = 0; i < p.num_user_outputs; ++i) {
    const int o = p.outputs[i];
    const bool own = plan->places[o] == Place::fresh && !p.repeated_output[i];
    result.push_back(own ? vals[o] : vals[o].copy());
  }
  // Every update value is final before any param is written.
  std::vector<Tensor> staged;
  for (std::size_t u = 0; u < p.update_targets.size(); ++u)
    if (plan->stage_update[u]) staged.push_back(vals[p.outputs[p.num_user_outputs + u]].copy());
  for (std::size_t u = 0, k = 0; u < p.update_targets.size(); ++u) {
    if (plan->in_place[u]) continue;  // already there
    Tensor target = p.param_value(*p.update_targets[u]);  // a handle on the param's storage
    target.copy_from(plan->stage_update[u] ? staged[k++] : vals[p.outputs[p.num_user_outputs + u]]);
  }
  return result;
}

const std::vector<std::string>& Program::input_names() const { return impl_->input_names; }

const std::vector<TensorType>& Program::input_types() const { return impl_->input_types; }

std::vector<TensorType> Program::output_types() const {
  std::vector<TensorType> out;
  for (std::size_t i = 0; i < impl_->num_user_outputs; ++i) out.push_back(impl_->values[impl_->outputs[i]].type);
  return out;
}

std::size_t Program::num_steps() const { return impl_->steps.size(); }

Device Program::device() const { return impl_->device; }

std::string Program::to_string() const {
  const Impl& p = *impl_;
  std::ostringstream os;
  os << "Program(" << p.steps.size() << " steps; inputs:";
  for (int v : p.feed_values) os << " " << p.values[v].name << ": " << xgrad::to_string(p.values[v].type);
  os << "; outputs:";
  for (std::size_t i = 0; i < p.num_user_outputs; ++i) os << " " << p.values[p.outputs[i]].name;
  if (!p.update_names.empty()) {
    os << "; updates:";
    for (std::size_t u = 0; u < p.update_names.size(); ++u)
      os << " " << p.update_names[u] << " <- " << p.values[p.outputs[p.num_user_outputs + u]].name;
  }
  os << ")";
  for (const Step& step : p.steps) {
    os << "\n  " << p.values[step.out].name << " = " << step.op->name() << "(";
    for (std::size_t i = 0; i < step.inputs.size(); ++i) os << (i ? ", " : "") << p.values[step.inputs[i]].name;
    os << ")";
    if (!step.attrs.items().empty()) os << " {" << step.attrs.to_string() << "}";
    os << " -> " << xgrad::to_string(p.values[step.out].type);
    if (step.op->kernel_note() && p.device == Device::cpu) {
      std::vector<TensorType> inputs;
      for (int v : step.inputs) inputs.push_back(p.values[static_cast<std::size_t>(v)].type);
      if (const std::string note = step.op->kernel_note()(inputs, p.values[step.out].type, step.attrs); !note.empty())
        os << " [" << note << "]";
    }
  }
  std::lock_guard<std::mutex> lock(p.plans_mutex);
  for (const auto& [signature, plan] : p.plans) {
    os << "\n plan for";
    for (std::size_t k = 0; k < signature.size(); ++k) os << " " << p.input_names[k] << xgrad::to_string(signature[k]);
    os << ": arena " << plan->arena_bytes << " bytes";
    for (const auto& group : plan->exec.groups) {
      os << "\n  tiled group:";
      for (int m : group) os << " " << p.values[p.steps[static_cast<std::size_t>(m)].out].name;
    }
    for (const Step& step : p.steps) {
      os << "\n  " << p.values[step.out].name << " " << xgrad::to_string(plan->shapes[step.out]) << " "
         << (plan->folded[step.out].defined() ? "computed while planning" : place_name(plan->places[step.out]));
      if (plan->places[step.out] == Place::arena) os << " @" << plan->arena_offsets[step.out];
    }
  }
  return os.str();
}

Program compile(const std::vector<Var>& outputs, const Program::Updates& updates, Device device) {
  return Program(outputs, updates, device);
}

Program compile(const std::vector<Var>& outputs, const Program::Updates& updates, const CompileOptions& options) {
  return Program(outputs, updates, options);
}

}  // namespace xgrad
