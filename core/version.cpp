#include "core/version.h"

namespace xgrad {

// XGRAD_VERSION comes from CMake (project version, read from VERSION).
const char* version() { return XGRAD_VERSION; }

}  // namespace xgrad
