// Reading and writing .npz files (a zip of .npy arrays, stored uncompressed),
// the checkpoint format shared with Python's xg.save / xg.load and np.load.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace xgrad::io {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// Writes the arrays to `path` through a temporary file in the same folder, so
// a crash never leaves half a file. Names become "<name>.npy" members.
void write_npz(const std::string& path, const NamedTensors& arrays);

// All arrays of an .npz written by write_npz, np.savez or xg.save (stored
// members, zip64 or not). Compressed members, unsupported dtypes, Fortran
// order and truncated or corrupt files are ValueErrors naming the file.
NamedTensors read_npz(const std::string& path);
// The same from a file's bytes; `what` names it in errors.
NamedTensors read_npz_bytes(const std::string& bytes, const std::string& what);

}  // namespace xgrad::io
