#include "autodiff/memory_plan.h"

#include <algorithm>
#include <map>

namespace xgrad {

namespace {
constexpr std::int64_t kAlign = 64;
std::int64_t align_up(std::int64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
}  // namespace

ArenaLayout plan_arena(const std::vector<BufferRequest>& requests) {
  ArenaLayout layout;
  layout.offsets.assign(requests.size(), 0);
  // Requests grouped by the step that creates them and the step after which they die.
  std::map<int, std::vector<std::size_t>> born, dies;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    born[requests[i].first_step].push_back(i);
    dies[requests[i].last_step].push_back(i);
  }
  std::map<std::int64_t, std::int64_t> live;  // offset -> size of live blocks
  auto place = [&](std::int64_t size) {
    std::int64_t candidate = 0;  // first fit in the gaps between live blocks
    for (const auto& [off, sz] : live) {
      if (off - candidate >= size) break;
      candidate = std::max(candidate, off + sz);
    }
    live[candidate] = size;
    layout.total_bytes = std::max(layout.total_bytes, candidate + size);
    return candidate;
  };
  std::vector<int> steps;
  for (const auto& [s, _] : born) steps.push_back(s);
  for (const auto& [s, _] : dies) steps.push_back(s);
  std::sort(steps.begin(), steps.end());
  steps.erase(std::unique(steps.begin(), steps.end()), steps.end());
  for (int s : steps) {
    if (auto b = born.find(s); b != born.end())
      for (std::size_t i : b->second) layout.offsets[i] = place(align_up(std::max<std::int64_t>(requests[i].bytes, 1)));
    if (auto d = dies.find(s); d != dies.end())
      for (std::size_t i : d->second) live.erase(layout.offsets[i]);
  }
  return layout;
}

}  // namespace xgrad
