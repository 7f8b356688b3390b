// Writing a file so that its path always holds either the old complete file or the new complete one, even
// when the process is killed mid-write: the bytes go to a uniquely named file in the same folder, are
// flushed to disk, and are renamed over the path. Internal: used by the checkpoint and ONNX writers.
#pragma once
#include <string>

namespace xgrad::io {

// `what` names the writer in errors ("checkpoint", "onnx export"); on any failure the path is untouched.
void write_file_atomically(const std::string& path, const std::string& bytes, const std::string& what);

}  // namespace xgrad::io
