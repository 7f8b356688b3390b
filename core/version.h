// The library's version: the one in the repository's VERSION file, which CMake, the C++ library
// and the Python package all read.
#pragma once

namespace xgrad {

const char* version();  // "major.minor.patch"

}  // namespace xgrad
