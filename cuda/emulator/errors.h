// The emulator's per-thread last error, for cudaGetLastError / cudaGetErrorString
// and cuBLAS statuses: a code and the message that says what was wrong.
#pragma once
#include <string>

#pragma GCC visibility push(hidden)

namespace xgrad::cuda::emulator {

// The CUDA runtime's last error (a cudaError_t).
void set_error(int code, std::string message);
int take_error();                     // returns the code and clears it; the message stays
const char* error_message(int code);  // the last message for this code, or CUDA's name for it

// cuBLAS reports through its return status alone: a failed call leaves the runtime's last error alone.
void set_blas_message(int status, std::string message);
const char* blas_message(int status);  // the last message for this status, or cuBLAS's name for it

}  // namespace xgrad::cuda::emulator
#pragma GCC visibility pop
