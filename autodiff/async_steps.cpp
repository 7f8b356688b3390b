#include "autodiff/async_steps.h"

#include <algorithm>
#include <unordered_map>

namespace xgrad {

std::vector<std::size_t> start_async_early(const std::vector<TapeStep>& tape) {
  std::unordered_map<int, std::size_t> producer;  // value -> the step computing it
  for (std::size_t s = 0; s < tape.size(); ++s) producer[tape[s].out] = s;
  std::vector<std::size_t> order;
  order.reserve(tape.size());
  std::vector<bool> placed(tape.size(), false);
  // Places step s after the steps it needs that are not placed yet (depth first, with an explicit stack).
  auto place = [&](std::size_t root) {
    std::vector<std::pair<std::size_t, std::size_t>> stack{{root, 0}};  // step, next input to visit
    while (!stack.empty()) {
      auto& [s, next] = stack.back();
      if (placed[s]) {
        stack.pop_back();
        continue;
      }
      if (next < tape[s].inputs.size()) {
        const auto found = producer.find(tape[s].inputs[next++]);
        if (found != producer.end() && !placed[found->second]) stack.emplace_back(found->second, 0);
        continue;
      }
      placed[s] = true;
      order.push_back(s);
      stack.pop_back();
    }
  };
  // How many steps `root` still needs (itself included): the async step that needs the fewest is the one the
  // backward pass would finish first.
  auto unplaced_cone = [&](std::size_t root) {
    std::size_t count = 0;
    std::vector<bool> seen(tape.size(), false);
    std::vector<std::size_t> stack{root};
    seen[root] = true;
    while (!stack.empty()) {
      const std::size_t s = stack.back();
      stack.pop_back();
      ++count;
      for (int in : tape[s].inputs) {
        const auto found = producer.find(in);
        if (found != producer.end() && !placed[found->second] && !seen[found->second]) {
          seen[found->second] = true;
          stack.push_back(found->second);
        }
      }
    }
    return count;
  };
  std::vector<std::size_t> async;
  for (std::size_t s = 0; s < tape.size(); ++s)
    if (tape[s].async) async.push_back(s);
  while (!async.empty()) {
    std::size_t best = 0, best_cone = 0;
    for (std::size_t k = 0; k < async.size(); ++k) {
      const std::size_t cone = unplaced_cone(async[k]);
      if (k == 0 || cone < best_cone || (cone == best_cone && tape[async[k]].priority < tape[async[best]].priority))
        best = k, best_cone = cone;
    }
    place(async[best]);
    async.erase(async.begin() + static_cast<std::ptrdiff_t>(best));
  }
  for (std::size_t s = 0; s < tape.size(); ++s) place(s);
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
