// Execution order with tiled groups of elementwise steps. A chain of
// elementwise ops over large arrays (an optimizer's update, an activation and
// its gradient) costs a pass over memory per op; run as a group, each tile of
// a few thousand elements goes through every op of the chain while it is in
// cache. The instruction format stays a flat list: an instruction is a step
// or a group of steps.
#pragma once
#include <cstdint>
#include <vector>

namespace xgrad {

struct TileCandidate {
  bool tileable;           // elementwise over contiguous operands of its output's size (or scalars)
  std::int64_t numel;      // of the output
  std::vector<int> inputs;  // value ids read
  int out;                 // value id written
};

struct Instruction {
  int step = -1;   // a single step, or
  int group = -1;  // a group of steps (indices into ExecutionOrder::groups)
};

struct ExecutionOrder {
  std::vector<Instruction> order;
  std::vector<std::vector<int>> groups;  // step indices, in dependency order
};

// Groups consecutive tileable steps of equal size; a step in between that does
// not depend on the group is moved before it; one that does runs after it. A
// tileable step with no partner becomes a group of its own when it has at
// least `alone_min_numel` elements, so that it splits across threads.
ExecutionOrder plan_tiles(const std::vector<TileCandidate>& steps, std::size_t lookahead = 48,
                          std::int64_t alone_min_numel = INT64_MAX);

}  // namespace xgrad
