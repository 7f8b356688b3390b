// The plan for one feed-shape signature: every value's shape and place, the tiled groups, the waits for
// asynchronous steps, which updates are computed straight into their params, and the arena layout.
#include <algorithm>
#include <unordered_map>

#include "autodiff/memory_plan.h"
#include "autodiff/shape_folding.h"
#include "autodiff/program_impl.h"

namespace xgrad {

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
  // Values known before the run, as CPU tensors: small constants, and what shapes alone determine.
  ShapeFolding fold(n);
  for (std::size_t v = 0; v < n; ++v)
    if (values[v].held.defined() && !values[v].param) fold.know_constant(static_cast<int>(v), values[v].held);
  plan->folded.resize(n);
  std::vector<bool> folded_step(steps.size(), false);
  for (std::size_t s = 0; s < steps.size(); ++s) {
    const Step& step = steps[s];
    std::vector<TensorType> in_types;
    std::vector<const Tensor*> in_layout, in_values;
    for (int i : step.inputs) {
      in_types.push_back({values[i].type.dtype, plan->shapes[i]});
      in_layout.push_back(&layout[i]);
      in_values.push_back(fold.value(i));
    }
    TensorType out;
    try {
      out = step.op->infer_type(in_types, in_values, step.attrs);
    } catch (const TypeError& e) {
      throw TypeError(where(step, &plan->shapes) + e.what());
    } catch (const ValueError& e) {
      throw ValueError(where(step, &plan->shapes) + e.what());
    }
    if (!is_static(out.shape)) {
      std::string why;
      for (int k : step.op->value_inputs())
        if (!in_values[static_cast<std::size_t>(k)])
          why += "; input '" + values[step.inputs[static_cast<std::size_t>(k)]].name + "' sets the shape, and its value is not " +
                 "known before the run (it must be computed only from the feeds' shapes and from small constants)";
      throw ValueError(where(step, &plan->shapes) + "output shape " + xgrad::to_string(out.shape) + " is not resolved by the feeds" + why);
    }
    plan->shapes[step.out] = out.shape;
    const Tensor* known = nullptr;
    try {
      known = fold.try_step(*step.op, step.attrs, step.inputs, step.out, in_layout, in_values, out);
    } catch (const TypeError& e) {
      throw TypeError(where(step, &plan->shapes) + e.what());
    } catch (const ValueError& e) {
      throw ValueError(where(step, &plan->shapes) + e.what());
    }
    if (known) {
      folded_step[s] = true;
      plan->folded[step.out] = known->to(device);
      plan->places[step.out] = Place::held;
      layout[step.out] = plan->folded[step.out];
      continue;
    }
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
    // The finite-value watch sees every value whole, so it runs each step alone.
    bool tileable = !check_finite && device == Device::cpu && step.op->is_elementwise() && (at == Place::arena || at == Place::fresh) &&
                    (!step.span || step.inputs.size() <= kMaxSpanInputs) &&
                    numel(out_shape) >= kMinTiled;
    for (int i : step.inputs)
      tileable = tileable && ((numel(plan->shapes[i]) == 1 && plan->shapes[i].size() <= 1) ||
                              (plan->shapes[i] == out_shape && layout[i].is_contiguous()));
    candidates.push_back({tileable, numel(out_shape), step.inputs, step.out});
  }
  plan->exec = plan_tiles(candidates, 48, lanes() > 1 ? kMinAloneGroup : INT64_MAX);
  // Folded steps ran at plan time (never tiled: they are small).
  std::erase_if(plan->exec.order, [&](const Instruction& ins) { return ins.group < 0 && folded_step[static_cast<std::size_t>(ins.step)]; });
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
  // The finite-value watch may stop a run after any step: then no update is computed into its param.
  int last_rejecting = check_finite ? static_cast<int>(plan.exec.order.size()) : -1;
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
    if (plan.places[v] == Place::held) ctx->values[v] = plan.folded[v].defined() ? plan.folded[v] : values[v].held;
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

}  // namespace xgrad
