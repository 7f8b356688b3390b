// The emulator's per-thread last error, for cudaGetLastError / cudaGetErrorString
// and cuBLAS statuses: a code and the message that says what was wrong.
#pragma once
#include <string>

#pragma GCC visibility push(hidden)

namespace xgrad::cuda::emulator {

void set_error(int code, std::string message);
int take_error();                     // returns the code and clears it; the message stays
const char* error_message(int code);  // the last message for this code, or a generic one

}  // namespace xgrad::cuda::emulator
#pragma GCC visibility pop
