#include "autodiff/async_steps.h"

#include <algorithm>
#include <unordered_set>

namespace xgrad {

std::vector<std::size_t> start_async_early(const std::vector<TapeStep>& tape) {
  std::vector<std::size_t> order;
  order.reserve(tape.size());
  std::unordered_set<int> produced_by_tape;  // values some step computes
  for (const TapeStep& s : tape) produced_by_tape.insert(s.out);
  std::unordered_set<int> ready;             // values computed so far in the new order
  std::vector<std::size_t> waiting;          // async steps not placed yet, in tape order
  for (std::size_t s = 0; s < tape.size(); ++s)
    if (tape[s].async) waiting.push_back(s);
  auto can_run = [&](std::size_t s) {
    for (int in : tape[s].inputs)
      if (produced_by_tape.count(in) && !ready.count(in)) return false;
    return true;
  };
  // Places every waiting async step whose inputs are all computed (placing one may ready another).
  auto place_ready = [&] {
    for (bool placed = true; placed;) {
      placed = false;
      for (auto it = waiting.begin(); it != waiting.end(); ++it)
        if (can_run(*it)) {
          order.push_back(*it);
          ready.insert(tape[*it].out);
          waiting.erase(it);
          placed = true;
          break;
        }
    }
  };
  place_ready();
  for (std::size_t s = 0; s < tape.size(); ++s) {
    if (tape[s].async) continue;
    order.push_back(s);
    ready.insert(tape[s].out);
    if (!waiting.empty()) place_ready();
  }
  for (std::size_t s : waiting) order.push_back(s);  // unreachable for a topological tape; kept for safety
  return order;
}

AsyncWaits plan_async_waits(const std::vector<TapeStep>& tape, const std::vector<std::vector<int>>& instructions,
                            const std::vector<int>& base, const std::vector<int>& outputs) {
  AsyncWaits w;
  const int end = static_cast<int>(instructions.size());
  w.before.resize(instructions.size());
  w.launch.assign(tape.size(), -1);
  w.wait.assign(tape.size(), -1);
  for (int pos = 0; pos < end; ++pos)
    for (int s : instructions[static_cast<std::size_t>(pos)])
      if (tape[static_cast<std::size_t>(s)].async) w.launch[static_cast<std::size_t>(s)] = pos, w.any = true;
  if (!w.any) return w;
  for (std::size_t a = 0; a < tape.size(); ++a) {
    if (!tape[a].async) continue;
    const int result = tape[a].out;
    int first_read = end;
    for (int pos = w.launch[a] + 1; pos < end && first_read == end; ++pos)
      for (int s : instructions[static_cast<std::size_t>(pos)])
        if (!tape[static_cast<std::size_t>(s)].view)
          for (int in : tape[static_cast<std::size_t>(s)].inputs)
          if (base[static_cast<std::size_t>(in)] == result) first_read = std::min(first_read, pos);
    for (int o : outputs)
      if (base[static_cast<std::size_t>(o)] == result) first_read = std::min(first_read, end);
    w.wait[a] = first_read;
    if (first_read == end) w.at_end.push_back(static_cast<int>(a));
    else w.before[static_cast<std::size_t>(first_read)].push_back(static_cast<int>(a));
  }
  return w;
}

}  // namespace xgrad
