// libFuzzer target: the .npz checkpoint reader (io::read_npz_bytes) on arbitrary bytes. A bad file must be
// a ValueError naming it; what it returns must be what the bytes say (each array's size fits the file).
// Seeds: checkpoints written by xg.save and io::save_params (make fuzz writes them).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "io/npz.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    std::size_t total = 0;
    for (const auto& [name, tensor] : xgrad::io::read_npz_bytes(bytes, "fuzzed.npz"))
      total += static_cast<std::size_t>(tensor.numel()) * xgrad::itemsize(tensor.dtype());
    if (total > size) std::abort();  // more data than the file holds: it was invented
  } catch (const xgrad::ValueError& e) {
    if (std::string(e.what()).find("fuzzed.npz") == std::string::npos) std::abort();  // must name the file
  }
  return 0;
}
