// Counter-based random numbers for dropout masks: element i of a mask is a
// hash of (stream, i), so the CPU and CUDA kernels draw the same mask for a
// stream, and concurrent runs need no lock. Each mask takes a fresh stream.
#pragma once
#include <cstdint>

#include "ops/elementwise_math.h"

namespace xgrad {

// The stream of the next mask drawn with `seed` (a process-wide counter; ops/dropout.cpp).
std::uint64_t next_random_stream(std::uint64_t seed);

namespace ew {

// splitmix64: a fast, well-mixed 64-bit hash.
XGRAD_HOST_DEVICE std::uint64_t splitmix64(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Element i of a dropout mask: 0 with probability p, else 1 / (1 - p).
struct DropoutMaskF {
  DropoutMaskF(std::uint64_t stream, double p)
      : stream(stream), threshold(static_cast<std::uint64_t>(p * 18446744073709551616.0)), keep(1.0 / (1.0 - p)) {}
  std::uint64_t stream, threshold;  // threshold = p * 2^64
  double keep;
  template <class T> XGRAD_HOST_DEVICE T operator()(std::int64_t i) const {
    return splitmix64(stream + static_cast<std::uint64_t>(i)) < threshold ? T(0) : static_cast<T>(keep);
  }
};

}  // namespace ew

}  // namespace xgrad
