// libFuzzer target: io::load_onnx_bytes on arbitrary bytes, then compiling what it imported. A corrupt or
// unsupported model must be a ValueError / TypeError (never a crash, a hang, a huge allocation or another
// exception type). Seeds: the ONNX backend node models of libonnx-testdata (make fuzz).
#include <cstdint>
#include <string>

#include "autodiff/program.h"
#include "core/error.h"
#include "io/onnx.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const xgrad::io::OnnxModel model =
        xgrad::io::load_onnx_bytes(std::string(reinterpret_cast<const char*>(data), size), "fuzzed model");
    if (!model.outputs.empty()) xgrad::compile(model.outputs);
  } catch (const xgrad::ValueError&) {
  } catch (const xgrad::TypeError&) {
  }
  return 0;
}
