#include "cuda/emulator/fiber.h"

#include <cstdint>

#if !defined(__x86_64__)
#error "the CUDA emulator's fibers switch x86-64 registers; port switch_stack below to build it elsewhere"
#endif

// switch_stack(save, load): pushes the System V callee-saved registers, stores the stack pointer in *save,
// loads `load` as the stack pointer and pops the registers saved there, returning into that context.
extern "C" void xgrad_emulator_switch_stack(void** save, void* load);
asm(R"(
  .pushsection .text
  .globl xgrad_emulator_switch_stack
  .hidden xgrad_emulator_switch_stack
  .type xgrad_emulator_switch_stack, @function
xgrad_emulator_switch_stack:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size xgrad_emulator_switch_stack, .-xgrad_emulator_switch_stack
  .popsection
)");

namespace xgrad::cuda::emulator {

void make_fiber(FiberContext& context, char* stack, std::size_t bytes, void (*entry)()) {
  // From the 16-byte aligned top down: a zero return address for entry (which never returns), entry as the
  // address the first switch returns to, and six zeroed registers. entry then starts with rsp = 8 (mod 16),
  // as after a call.
  auto top = reinterpret_cast<std::uintptr_t>(stack + bytes) & ~std::uintptr_t{15};
  auto* slot = reinterpret_cast<std::uintptr_t*>(top);
  *--slot = 0;
  *--slot = reinterpret_cast<std::uintptr_t>(entry);
  for (int r = 0; r < 6; ++r) *--slot = 0;
  context.sp = slot;
}

void switch_fiber(FiberContext& from, const FiberContext& to) { xgrad_emulator_switch_stack(&from.sp, to.sp); }

}  // namespace xgrad::cuda::emulator
