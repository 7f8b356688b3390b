// Fibers for the emulator's CUDA threads: a context switch that saves only the
// callee-saved registers (ucontext's swapcontext makes a signal-mask system
// call per switch, which made a softmax over 256 rows take half a second).
#pragma once
#include <cstddef>

#pragma GCC visibility push(hidden)

namespace xgrad::cuda::emulator {

// A suspended fiber or scheduler: its saved stack pointer.
struct FiberContext {
  void* sp = nullptr;
};

// Prepares `context` to start entry() on the stack [stack, stack + bytes) at the first switch to it.
// entry must never return: it ends by switching away for good.
void make_fiber(FiberContext& context, char* stack, std::size_t bytes, void (*entry)());
// Saves the running context into `from` and resumes `to`; returns when something switches back to `from`.
void switch_fiber(FiberContext& from, const FiberContext& to);

}  // namespace xgrad::cuda::emulator
#pragma GCC visibility pop
