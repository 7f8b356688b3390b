// Opening a backend plugin (libxgrad_cuda.so, libxgrad_mpi.so) from beside the library that holds this code
// (libxgrad.so, or the Python module). Plugins link neither: their references to xgrad's symbols bind to
// whichever of the two opened them, so this library first makes its own symbols global (Python opens
// extension modules RTLD_LOCAL). Internal.
#pragma once
#include <string>

namespace xgrad {

// Opens `file_name` (with RTLD_GLOBAL when its own dependencies must see each other's symbols); "" on
// success, else why not, for an error message about `what` ("the CUDA backend").
std::string open_plugin(const std::string& file_name, const std::string& what, bool global);

}  // namespace xgrad
