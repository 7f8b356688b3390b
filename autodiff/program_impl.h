// The Program's internals, shared by autodiff/program.cpp (compile, run, print) and autodiff/plan.cpp (the
// plan for one feed-shape signature: shapes, memory places, tiled groups, in-place updates, the arena, waits
// for asynchronous steps). Internal: not installed, symbols hidden.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "autodiff/async_steps.h"
#include "autodiff/program.h"
#include "autodiff/tiling.h"
#include "core/error.h"
#include "core/op.h"
#include "core/thread_pool.h"

#pragma GCC visibility push(hidden)

namespace xgrad::program_detail {

// Where a value's memory comes from in one plan.
enum class Place { feed, held, arena, fresh, view, in_param, tile };

inline const char* place_name(Place p) {
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

constexpr std::size_t kMaxSpanInputs = 5;  // operands of a step inside a tiled group (its span kernel's arrays)

inline std::size_t lanes() { return std::min<std::size_t>(ThreadPool::instance().workers() + 1, 8); }

struct Plan {
  std::vector<Shape> shapes;
  std::vector<Place> places;
  std::vector<std::int64_t> arena_offsets;  // bytes, for Place::arena
  // Views: their planned layout, and their offset relative to their first input's.
  std::vector<Tensor> view_layouts;
  std::vector<std::int64_t> view_offsets;
  std::vector<bool> stage_update;  // per update: copy the value aside before writing any param
  std::vector<bool> in_place;      // per update: its value is computed straight into the param
  std::vector<Tensor> folded;      // per value: computed while planning (from shapes), held for every run
  ExecutionOrder exec;              // steps and tiled groups, in the order they run
  AsyncWaits async;                 // where the run waits for steps that finish later (cross-process reductions)
  std::int64_t arena_bytes = 0;
  std::mutex pool_mutex;
  std::vector<std::unique_ptr<Context>> idle;
};

inline Tensor placeholder(DType dtype, const Shape& shape) {
  auto bytes = static_cast<std::size_t>(numel(shape)) * itemsize(dtype);
  return Tensor::view_of(Storage::borrow(nullptr, bytes, nullptr), dtype, shape, contiguous_strides(shape), 0);
}

inline std::string describe_inputs(const Step& step, const std::vector<Value>& values, const std::vector<Shape>* shapes) {
  std::string s;
  for (std::size_t i = 0; i < step.inputs.size(); ++i) {
    const int v = step.inputs[i];
    s += (i ? ", " : "") + values[v].name + ": " + dtype_name(values[v].type.dtype) +
         xgrad::to_string(shapes ? (*shapes)[v] : values[v].type.shape);
  }
  return s;
}


}  // namespace xgrad::program_detail

namespace xgrad {

using namespace program_detail;

struct Program::Impl {
  Device device = Device::cpu;
  bool check_finite = false;  // CompileOptions::check_finite
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

}  // namespace xgrad

#pragma GCC visibility pop
