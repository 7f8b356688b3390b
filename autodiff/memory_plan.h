// Liveness-based placement of a program's intermediate buffers in one arena.
#pragma once
#include <cstdint>
#include <vector>

namespace xgrad {

struct BufferRequest {
  std::int64_t bytes;
  int first_step;  // the step that writes it
  int last_step;   // the last step that reads it (>= first_step)
};

struct ArenaLayout {
  std::vector<std::int64_t> offsets;  // one per request, in bytes, 64-byte aligned
  std::int64_t total_bytes = 0;
};

// Buffers whose lifetimes overlap never share bytes; a buffer is placed
// before the buffers that die at its own step are released, so a kernel's
// output never aliases its inputs.
ArenaLayout plan_arena(const std::vector<BufferRequest>& requests);

}  // namespace xgrad
