#include "autodiff/tiling.h"

#include <unordered_set>

namespace xgrad {

ExecutionOrder plan_tiles(const std::vector<TileCandidate>& steps, std::size_t lookahead, std::int64_t alone_min_numel) {
  ExecutionOrder plan;
  std::vector<bool> done(steps.size(), false);
  for (std::size_t s = 0; s < steps.size(); ++s) {
    if (done[s]) continue;
    if (!steps[s].tileable) {
      plan.order.push_back({static_cast<int>(s), -1});
      done[s] = true;
      continue;
    }
    // Grow a group from s; track what the group (and what must follow it) produces.
    std::vector<int> members{static_cast<int>(s)}, hoisted, deferred;
    std::unordered_set<int> after_start{steps[s].out};  // values produced by members or deferred steps
    for (std::size_t t = s + 1; t < steps.size() && t <= s + lookahead; ++t) {
      if (done[t]) continue;
      bool depends = false;
      for (int in : steps[t].inputs) depends = depends || after_start.count(in);
      if (steps[t].tileable && steps[t].numel == steps[s].numel) {
        // Joins unless it reads a deferred step's value (members read only members and earlier values).
        bool reads_deferred = false;
        for (int in : steps[t].inputs)
          for (int d : deferred) reads_deferred = reads_deferred || steps[d].out == in;
        if (!reads_deferred) {
          members.push_back(static_cast<int>(t));
          after_start.insert(steps[t].out);
          continue;
        }
      }
      if (depends) {
        deferred.push_back(static_cast<int>(t));
        after_start.insert(steps[t].out);
      } else {
        hoisted.push_back(static_cast<int>(t));
      }
    }
    if (members.size() < 2 && steps[s].numel < alone_min_numel) {  // nothing to gain: keep the tape's order
      plan.order.push_back({static_cast<int>(s), -1});
      done[s] = true;
      continue;
    }
    for (int h : hoisted) {
      plan.order.push_back({h, -1});
      done[h] = true;
    }
    plan.order.push_back({-1, static_cast<int>(plan.groups.size())});
    for (int m : members) done[m] = true;
    plan.groups.push_back(members);
    // Deferred steps stay for the main loop: they run after the group, in tape
    // order, and may start groups of their own.
  }
  return plan;
}

}  // namespace xgrad
