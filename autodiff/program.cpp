#include "autodiff/program.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "autodiff/memory_plan.h"
#include "autodiff/fusion.h"
#include "autodiff/passes.h"
#include "autodiff/tiling.h"
#include "autodiff/async_steps.h"
#include "core/error.h"
#include "core/thread_pool.h"

namespace xgrad {

namespace {

// Where a value's memory comes from in one plan.
enum class Place { feed, held, arena, fresh, view, in_param, tile };

const char* place_name(Place p) {
  switch (p) {
    case Place::feed: return "feed";
    case Place::held: return "param/const";
    case Place::arena: return "arena";
    case Place::fresh: return "output";
    case Place::in_param: return "written into its param";
    case Place::tile: return "tile scratch (inside a group)";
    case Place::view: return "view";
  }
  return "?";
}

struct Value {
  NodeKind kind;
  std::string name;
  TensorType type;
  Tensor held;            // constants: the node's value (a copy on the program's device); params: read at each run
  Node* param = nullptr;  // params: the node, whose value may be replaced (moved to a device) after compiling
};

struct Step {
  const OpDef* op;
  std::vector<int> inputs;
  int out;
  Attrs attrs;
  KernelFn kernel = nullptr;  // the op's kernel for the program's device
  SpanFn span = nullptr;      // its span kernel (CPU), which tiled groups call on raw tile pointers
};

// Per-run scratch: every value's tensor, with arena values pre-bound.
// One member of a tiled group: tile-sized views, re-pointed at each tile.
struct TileMember {
  std::vector<Tensor> inputs[2];         // [full tile, last partial tile]; empty Tensor for a scalar input
  Tensor out[2];
  std::vector<const Tensor*> in_ptrs[2];  // the tile views, or the whole scalar value
  std::vector<bool> input_in_scratch;     // bound once to the group's scratch; never re-pointed
  std::vector<bool> input_is_scalar;      // read whole on every tile
  bool out_in_scratch = false;
  std::vector<std::int64_t> in_itemsize;  // bytes per element of each input, and of the output
  std::int64_t out_itemsize = 0;
};

struct Context {
  std::shared_ptr<Storage> arena;
  // Per lane (a thread working on part of a group's tiles), per group: the
  // tile views and one scratch tile per value that lives only inside the group.
  std::vector<std::vector<std::shared_ptr<Storage>>> tile_scratch;
  std::vector<Tensor> values;
  std::vector<std::vector<const Tensor*>> step_inputs;
  std::vector<std::vector<std::vector<TileMember>>> tiles;
};

constexpr std::int64_t kTile = 4096;         // elements per tile: a few operands stay in L1/L2
constexpr std::int64_t kMinTiled = 4 * kTile;  // smaller arrays gain nothing from tiling
// Handing work to a polling worker costs a microsecond or two (waking a sleeping one, tens), so a group is split
// across threads only when each thread gets at least this many tile-steps (tiles x members, several
// microseconds of work): a lone copy-like op from 256K elements, a chain of four from 64K.
constexpr std::int64_t kTileStepsPerLane = 32;
constexpr std::int64_t kChunksPerLane = 8;     // a split group's tiles go out in this many chunks per thread
constexpr std::int64_t kMinAloneGroup = 2 * kTileStepsPerLane * kTile;  // a lone elementwise step this large still splits

std::size_t lanes() { return std::min<std::size_t>(ThreadPool::instance().workers() + 1, 8); }

struct Plan {
  std::vector<Shape> shapes;
  std::vector<Place> places;
  std::vector<std::int64_t> arena_offsets;  // bytes, for Place::arena
  // Views: their planned layout, and their offset relative to their first input's.
  std::vector<Tensor> view_layouts;
  std::vector<std::int64_t> view_offsets;
  std::vector<bool> stage_update;  // per update: copy the value aside before writing any param
  std::vector<bool> in_place;      // per update: its value is computed straight into the param
  ExecutionOrder exec;              // steps and tiled groups, in the order they run
  AsyncWaits async;                 // where the run waits for steps that finish later (cross-process reductions)
  std::int64_t arena_bytes = 0;
  std::mutex pool_mutex;
  std::vector<std::unique_ptr<Context>> idle;
};

Tensor placeholder(DType dtype, const Shape& shape) {
  auto bytes = static_cast<std::size_t>(numel(shape)) * itemsize(dtype);
  return Tensor::view_of(Storage::borrow(nullptr, bytes, nullptr), dtype, shape, contiguous_strides(shape), 0);
}

std::string describe_inputs(const Step& step, const std::vector<Value>& values, const std::vector<Shape>* shapes) {
  std::string s;
  for (std::size_t i = 0; i < step.inputs.size(); ++i) {
    const int v = step.inputs[i];
    s += (i ? ", " : "") + values[v].name + ": " + dtype_name(values[v].type.dtype) +
         xgrad::to_string(shapes ? (*shapes)[v] : values[v].type.shape);
  }
  return s;
}

}  // namespace

struct Program::Impl {
  Device device = Device::cpu;
  std::vector<Value> values;
  std::vector<Step> steps;
  std::vector<int> outputs;
  std::vector<int> feed_values;  // value index of each program input
  std::vector<int> param_values;  // value index of each param the program reads
  std::vector<std::string> input_names;
  std::vector<TensorType> input_types;
  std::size_t num_user_outputs = 0;  // outputs beyond these are update values
  std::vector<Node*> update_targets;    // the params written at the end of each run
  std::vector<int> update_params;      // the value id of each updated param in this program, or -1
  std::vector<std::string> update_names;
  std::vector<bool> repeated_output;  // an output listed earlier too: handed out as a copy
  std::vector<std::string> graph_input_names;
  std::vector<TensorType> graph_input_types;

  mutable std::mutex plans_mutex;
  mutable std::map<std::vector<Shape>, std::shared_ptr<Plan>> plans;

  std::string where(const Step& step, const std::vector<Shape>* shapes) const {
    return "op '" + step.op->name() + "' (node '" + values[step.out].name + "', inputs " +
           describe_inputs(step, values, shapes) + "): ";
  }

  std::shared_ptr<Plan> plan_for(const std::vector<Shape>& signature) const {
    std::lock_guard<std::mutex> lock(plans_mutex);
    auto found = plans.find(signature);
    if (found != plans.end()) return found->second;
    auto plan = make_plan(signature);  // may throw: then nothing is cached
    plans.emplace(signature, plan);
    return plan;
  }

  std::shared_ptr<Plan> make_plan(const std::vector<Shape>& signature) const;
  void decide_in_place(Plan& plan, const std::vector<int>& base) const;
  std::unique_ptr<Context> make_context(const Plan& plan) const;
  std::vector<Tensor> check_feeds(const Feeds& feeds) const;
  void place_on(Device target);
  // A param's current value, checked to be on the program's device.
  const Tensor& param_value(const Node& param) const {
    const Tensor& v = param.value();
    if (v.device() != device)
      throw RuntimeError("param '" + param.name() + "' lives on " + device_name(v.device()) + ", but this program runs on " +
                         device_name(device) + " (a program compiled for " + device_name(v.device()) +
                         " moved it there): compile this program for " + device_name(v.device()) + " too");
    return v;
  }
};

std::shared_ptr<Plan> Program::Impl::make_plan(const std::vector<Shape>& signature) const {
  auto plan = std::make_shared<Plan>();
  const std::size_t n = values.size();
  plan->shapes.resize(n);
  plan->places.assign(n, Place::arena);
  std::vector<Tensor> layout(n);  // tensors with the right shapes and strides, no data
  for (std::size_t k = 0; k < feed_values.size(); ++k) {
    const int v = feed_values[k];
    plan->shapes[v] = signature[k];
    plan->places[v] = Place::feed;
    layout[v] = placeholder(values[v].type.dtype, signature[k]);
  }
  for (std::size_t v = 0; v < n; ++v)
    if (values[v].held.defined() || values[v].param) {
      layout[v] = values[v].param ? param_value(*values[v].param) : values[v].held;
      plan->shapes[v] = layout[v].shape();
      plan->places[v] = Place::held;
    }
  std::vector<int> base(n);  // the value whose memory a view ultimately reads
  for (std::size_t v = 0; v < n; ++v) base[v] = static_cast<int>(v);
  for (const Step& step : steps) {
    std::vector<TensorType> in_types;
    std::vector<const Tensor*> in_layout;
    for (int i : step.inputs) {
      in_types.push_back({values[i].type.dtype, plan->shapes[i]});
      in_layout.push_back(&layout[i]);
    }
    TensorType out;
    try {
      out = step.op->infer()(in_types, step.attrs);
    } catch (const TypeError& e) {
      throw TypeError(where(step, &plan->shapes) + e.what());
    } catch (const ValueError& e) {
      throw ValueError(where(step, &plan->shapes) + e.what());
    }
    if (!is_static(out.shape))
      throw ValueError(where(step, &plan->shapes) + "output shape " + xgrad::to_string(out.shape) + " is not resolved by the feeds");
    plan->shapes[step.out] = out.shape;
    const bool alias = step.op->view() &&
                       (!step.op->alias_if() || step.op->alias_if()(in_layout.data(), out.shape, step.attrs));
    if (alias) {
      plan->places[step.out] = Place::view;
      layout[step.out] = step.op->view()(in_layout.data(), out.shape, step.attrs);
      if (layout[step.out].storage() != layout[step.inputs[0]].storage())
        throw ValueError(where(step, &plan->shapes) + "a view op must view its first input");
      base[step.out] = base[step.inputs[0]];
    } else {
      layout[step.out] = placeholder(out.dtype, out.shape);
    }
  }
  // Outputs the caller keeps get buffers of their own; update values stay in
  // the arena (alive to the end) and are copied into their params.
  for (std::size_t i = 0; i < num_user_outputs; ++i)
    if (plan->places[outputs[i]] == Place::arena) plan->places[outputs[i]] = Place::fresh;
  for (std::size_t i = num_user_outputs; i < outputs.size(); ++i) {
    const Place at = plan->places[base[outputs[i]]];
    // A value reading a param (or a feed) directly is staged first, so no update overwrites another's source.
    plan->stage_update.push_back(at != Place::arena && at != Place::fresh);
  }

  // Execution order: elementwise chains over large arrays become tiled groups.
  std::vector<TileCandidate> candidates;
  for (const Step& step : steps) {
    const Shape& out_shape = plan->shapes[step.out];
    const Place at = plan->places[step.out];
    // Tiles keep operands in the CPU's caches; a device runs each kernel over the whole array.
    bool tileable = device == Device::cpu && step.op->is_elementwise() && (at == Place::arena || at == Place::fresh) &&
                    numel(out_shape) >= kMinTiled;
    for (int i : step.inputs)
      tileable = tileable && ((numel(plan->shapes[i]) == 1 && plan->shapes[i].size() <= 1) ||
                              (plan->shapes[i] == out_shape && layout[i].is_contiguous()));
    candidates.push_back({tileable, numel(out_shape), step.inputs, step.out});
  }
  plan->exec = plan_tiles(candidates, 48, lanes() > 1 ? kMinAloneGroup : INT64_MAX);
  {
    std::vector<TapeStep> tape;
    for (const Step& step : steps) tape.push_back({step.inputs, step.out, step.op->completion() != nullptr, plan->places[step.out] == Place::view});
    std::vector<std::vector<int>> instructions;
    for (const Instruction& ins : plan->exec.order)
      instructions.push_back(ins.group >= 0 ? plan->exec.groups[static_cast<std::size_t>(ins.group)] : std::vector<int>{ins.step});
    plan->async = plan_async_waits(tape, instructions, base, outputs);
  }
  decide_in_place(*plan, base);
  // A value written and read only inside one group never exists whole: one tile of scratch holds it.
  {
    std::vector<int> group_of(steps.size(), -1);
    for (std::size_t g = 0; g < plan->exec.groups.size(); ++g)
      for (int m : plan->exec.groups[g]) group_of[static_cast<std::size_t>(m)] = static_cast<int>(g);
    std::vector<int> reader_group(n, -2);  // -2: no reader yet, -1: read outside any single group
    for (std::size_t st = 0; st < steps.size(); ++st)
      for (int i : steps[st].inputs) {
        int& rg = reader_group[static_cast<std::size_t>(i)];
        rg = (rg == -2 || rg == group_of[st]) ? group_of[st] : -1;
      }
    for (int o : outputs) reader_group[static_cast<std::size_t>(o)] = -1;
    for (std::size_t st = 0; st < steps.size(); ++st) {
      const auto v = static_cast<std::size_t>(steps[st].out);
      if (group_of[st] >= 0 && plan->places[v] == Place::arena && reader_group[v] == group_of[st]) plan->places[v] = Place::tile;
    }
  }

  // Liveness of arena buffers over the execution order, counting reads through
  // views. A group is one instruction: its members' buffers are all live across it.
  std::vector<int> first(n, -1), last(n, -1);
  const int end = static_cast<int>(plan->exec.order.size());
  for (int pos = 0; pos < end; ++pos) {
    const Instruction& ins = plan->exec.order[static_cast<std::size_t>(pos)];
    const std::vector<int> single{ins.step};
    for (int s : ins.group >= 0 ? plan->exec.groups[static_cast<std::size_t>(ins.group)] : single) {
      const Step& step = steps[static_cast<std::size_t>(s)];
      if (plan->places[step.out] == Place::arena) first[step.out] = last[step.out] = pos;
      for (int i : step.inputs)
        if (plan->places[base[i]] == Place::arena) last[base[i]] = std::max(last[base[i]], pos);
    }
  }
  for (int o : outputs)  // an output viewing an arena buffer is copied out after the last step
    if (plan->places[base[o]] == Place::arena) last[base[o]] = end;
  std::vector<BufferRequest> requests;
  std::vector<int> requested;
  for (std::size_t v = 0; v < n; ++v)
    if (plan->places[v] == Place::arena) {
      requests.push_back({numel(plan->shapes[v]) * static_cast<std::int64_t>(itemsize(values[v].type.dtype)), first[v], last[v]});
      requested.push_back(static_cast<int>(v));
    }
  const ArenaLayout arena = plan_arena(requests);
  plan->arena_offsets.assign(n, -1);
  for (std::size_t r = 0; r < requested.size(); ++r) plan->arena_offsets[requested[r]] = arena.offsets[r];
  plan->arena_bytes = arena.total_bytes;
  plan->view_layouts.resize(n);
  plan->view_offsets.assign(n, 0);
  for (const Step& step : steps)
    if (plan->places[step.out] == Place::view) {
      plan->view_layouts[step.out] = layout[step.out];
      plan->view_offsets[step.out] = layout[step.out].offset() - layout[step.inputs[0]].offset();
    }
  return plan;
}

// An update value can be computed straight into its param (saving a copy of
// the whole param per run) when nothing reads the param's old value after the
// step that writes it, no output shows the param, and no later step can
// reject its inputs (which would leave the param half-updated).
void Program::Impl::decide_in_place(Plan& plan, const std::vector<int>& base) const {
  const std::size_t updates = update_targets.size();
  plan.in_place.assign(updates, false);
  // When each step runs: (position in the order, index within its tiled group).
  std::vector<std::pair<int, int>> when(steps.size());
  int last_rejecting = -1;
  for (std::size_t pos = 0; pos < plan.exec.order.size(); ++pos) {
    const Instruction& ins = plan.exec.order[pos];
    const std::vector<int> single{ins.step};
    const auto& members = ins.group >= 0 ? plan.exec.groups[static_cast<std::size_t>(ins.group)] : single;
    for (std::size_t j = 0; j < members.size(); ++j) {
      when[static_cast<std::size_t>(members[j])] = {static_cast<int>(pos), static_cast<int>(j)};
      if (steps[static_cast<std::size_t>(members[j])].op->can_reject_values()) last_rejecting = static_cast<int>(pos);
    }
  }
  // Waiting for a cross-process reduction can fail too (the processes disagree on shapes): before instruction W.
  for (std::size_t a = 0; a < steps.size(); ++a)
    if (plan.async.wait.size() > a && plan.async.wait[a] >= 0) last_rejecting = std::max(last_rejecting, plan.async.wait[a] - 1);
  std::vector<int> producer(values.size(), -1);
  for (std::size_t s = 0; s < steps.size(); ++s) producer[static_cast<std::size_t>(steps[s].out)] = static_cast<int>(s);
  for (std::size_t u = 0; u < updates; ++u) {
    const int v = outputs[num_user_outputs + u];
    const int param = update_params[u];
    const int s = producer[static_cast<std::size_t>(v)];
    if (s < 0 || plan.places[static_cast<std::size_t>(v)] != Place::arena) continue;
    bool ok = when[static_cast<std::size_t>(s)].first > last_rejecting;
    for (std::size_t o = 0; ok && o < outputs.size(); ++o)  // shown by an output, or the value of two updates
      if (o != num_user_outputs + u && (outputs[o] == v || (param >= 0 && base[static_cast<std::size_t>(outputs[o])] == param)))
        ok = false;
    for (std::size_t r = 0; ok && param >= 0 && r < steps.size(); ++r) {
      const Step& reader = steps[r];
      for (std::size_t a = 0; ok && a < reader.inputs.size(); ++a) {
        const int in = reader.inputs[a];
        if (base[static_cast<std::size_t>(in)] != param) continue;
        if (static_cast<int>(r) == s)  // the writer itself may read the element it overwrites
          ok = reader.op->is_elementwise() && plan.shapes[static_cast<std::size_t>(in)] == plan.shapes[static_cast<std::size_t>(v)] &&
               in == param;
        else  // earlier in the same group is earlier only element for element
          ok = when[r] < when[static_cast<std::size_t>(s)] &&
               (when[r].first != when[static_cast<std::size_t>(s)].first ||
                numel(plan.shapes[static_cast<std::size_t>(in)]) == numel(plan.shapes[static_cast<std::size_t>(v)]));
      }
    }
    if (ok) {
      plan.places[static_cast<std::size_t>(v)] = Place::in_param;
      plan.in_place[u] = true;
    }
  }
}

std::unique_ptr<Context> Program::Impl::make_context(const Plan& plan) const {
  auto ctx = std::make_unique<Context>();
  ctx->arena = Storage::allocate(static_cast<std::size_t>(plan.arena_bytes), device);
  ctx->values.resize(values.size());
  for (std::size_t v = 0; v < values.size(); ++v) {
    if (plan.places[v] == Place::held) ctx->values[v] = values[v].held;
    if (plan.places[v] == Place::view) ctx->values[v] = plan.view_layouts[v];
    if (plan.places[v] == Place::arena) {
      const DType dt = values[v].type.dtype;
      ctx->values[v] = Tensor::view_of(ctx->arena, dt, plan.shapes[v], contiguous_strides(plan.shapes[v]),
                                       plan.arena_offsets[v] / static_cast<std::int64_t>(itemsize(dt)));
    }
  }
  for (const Step& step : steps) {
    std::vector<const Tensor*> ins;
    for (int i : step.inputs) ins.push_back(&ctx->values[i]);
    ctx->step_inputs.push_back(std::move(ins));
  }
  ctx->tiles.resize(lanes());
  ctx->tile_scratch.resize(lanes());
  for (std::size_t lane = 0; lane < lanes(); ++lane)
  for (const auto& group : plan.exec.groups) {
    const std::int64_t total = numel(plan.shapes[steps[static_cast<std::size_t>(group[0])].out]);
    const std::int64_t sizes[2] = {kTile, total % kTile};
    // Scratch slots for the group's internal values, sized for the widest dtype.
    std::unordered_map<int, std::int64_t> slot;
    for (int m : group)
      if (plan.places[static_cast<std::size_t>(steps[static_cast<std::size_t>(m)].out)] == Place::tile)
        slot.emplace(steps[static_cast<std::size_t>(m)].out, static_cast<std::int64_t>(slot.size()));
    auto scratch = Storage::allocate(static_cast<std::size_t>(std::max<std::int64_t>(1, static_cast<std::int64_t>(slot.size()))) *
                                     static_cast<std::size_t>(kTile) * 8);
    const auto unbound = Storage::borrow(nullptr, static_cast<std::size_t>(kTile) * 8, nullptr);  // layout only
    std::vector<TileMember> members(group.size());
    for (std::size_t j = 0; j < group.size(); ++j) {
      const Step& step = steps[static_cast<std::size_t>(group[j])];
      for (int k = 0; k < 2; ++k) {
        auto tile = [&](int v) {
          const DType dt = values[static_cast<std::size_t>(v)].type.dtype;
          const auto found = slot.find(v);
          if (found != slot.end())  // fixed: the same scratch tile for every tile of the run
            return Tensor::view_of(scratch, dt, {sizes[k]}, {1}, found->second * kTile * 8 / static_cast<std::int64_t>(itemsize(dt)));
          return Tensor::view_of(unbound, dt, {sizes[k]}, {1}, 0);  // re-pointed before every use
        };
        for (int i : step.inputs) members[j].inputs[k].push_back(numel(plan.shapes[i]) == 1 ? Tensor() : tile(i));
        members[j].out[k] = tile(step.out);
        for (std::size_t a = 0; a < step.inputs.size(); ++a)
          members[j].in_ptrs[k].push_back(members[j].inputs[k][a].defined() ? &members[j].inputs[k][a]
                                                                            : &ctx->values[step.inputs[a]]);
      }
      for (int i : step.inputs) {
        members[j].input_in_scratch.push_back(slot.count(i) > 0);
        members[j].input_is_scalar.push_back(numel(plan.shapes[static_cast<std::size_t>(i)]) == 1);
      }
      members[j].out_in_scratch = slot.count(step.out) > 0;
      for (int i : step.inputs) members[j].in_itemsize.push_back(static_cast<std::int64_t>(itemsize(values[static_cast<std::size_t>(i)].type.dtype)));
      members[j].out_itemsize = static_cast<std::int64_t>(itemsize(values[static_cast<std::size_t>(step.out)].type.dtype));
    }
    ctx->tile_scratch[lane].push_back(scratch);
    ctx->tiles[lane].push_back(std::move(members));
  }
  return ctx;
}

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

Program::Program(const std::vector<Var>& outputs, const Updates& updates, Device device) : impl_(std::make_shared<Impl>()) {
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
  // GEMM epilogues (bias, activation) fused into the product; CUDA runs them unfused.
  if (device == Device::cpu) simplified = fuse_gemm_epilogues(simplified);
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
          constexpr std::size_t kMaxSpanInputs = 4;
          const void* in[kMaxSpanInputs];
          bool scalar[kMaxSpanInputs];
          for (std::size_t a = 0; a < step.inputs.size() && a < kMaxSpanInputs; ++a) {
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
  auto complete = [&](int a) {
    current = static_cast<std::size_t>(a);
    p.steps[current].op->completion()(vals[p.steps[current].out]);
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
         << place_name(plan->places[step.out]);
      if (plan->places[step.out] == Place::arena) os << " @" << plan->arena_offsets[step.out];
    }
  }
  return os.str();
}

Program compile(const std::vector<Var>& outputs, const Program::Updates& updates, Device device) {
  return Program(outputs, updates, device);
}

}  // namespace xgrad
