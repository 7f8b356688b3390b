// Steps whose kernel starts work that finishes later (OpDef::completes: a bucket's reduction across processes
// on the communication thread). Two plan-time passes make that work overlap the rest of the step:
//   start early: the tape is reordered so that each such step runs as soon as it can: first the async step that
//                needs the fewest steps (a data-parallel optimizer's bucket for the last layer), with those
//                steps, then the next one, and so on;
//   wait late:   the Program waits for it only before the first instruction that reads its result.
#pragma once
#include <cstddef>
#include <vector>

namespace xgrad {

struct TapeStep {
  std::vector<int> inputs;  // value ids
  int out;                  // value id
  bool async;
  bool view = false;  // an alias of its input: reads no data
  int priority = 0;   // async steps needing as many steps: the lower starts first (the graph node's number)
};

// A new topological order of a topological tape (indices into `tape`): async steps in turn, the one needing
// the fewest steps not yet placed first, each just after those steps; then the rest in their old order.
std::vector<std::size_t> start_async_early(const std::vector<TapeStep>& tape);

struct AsyncWaits {
  std::vector<std::vector<int>> before;  // per instruction: the async steps to complete before it runs
  std::vector<int> at_end;               // completed after the last instruction (an output, or read by none)
  std::vector<int> launch;               // per async step (by step index; -1 for others): its instruction
  std::vector<int> wait;                 // per async step: the instruction it is completed before (end: size)
  bool any = false;
};

// `instructions[i]` lists the tape steps instruction i runs (one, or a tiled group's members); `base[v]` is
// the value whose buffer v views (v itself when it owns one); `outputs` are read after the last instruction.
AsyncWaits plan_async_waits(const std::vector<TapeStep>& tape, const std::vector<std::vector<int>>& instructions,
                            const std::vector<int>& base, const std::vector<int>& outputs);

}  // namespace xgrad
