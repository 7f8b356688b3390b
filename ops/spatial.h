// Helpers shared by the NCHW op files (conv.cpp, pool.cpp). Internal.
#pragma once
#include <string>
#include <vector>

#include "ops/conv.h"
#include "ops/elementwise.h"

// Internal to the library: not exported from libxgrad.so.
#pragma GCC visibility push(hidden)

namespace xgrad::spatial {

inline Pair pair_attr(const Attrs& attrs, const char* name) {
  const auto& v = attrs.get_ints(name);
  return {v[0], v[1]};
}

inline std::string pair_str(const Pair& p) { return "(" + std::to_string(p[0]) + ", " + std::to_string(p[1]) + ")"; }

inline bool known(std::int64_t d) { return d != kDynamic; }

// `got` must match `want` wherever both are known.
inline void require_like(const Shape& got, const Shape& want, const char* what) {
  bool ok = got.size() == want.size();
  for (std::size_t d = 0; ok && d < got.size(); ++d) ok = !known(got[d]) || !known(want[d]) || got[d] == want[d];
  if (!ok) throw ValueError(std::string(what) + " has shape " + to_string(got) + ", but expected " + to_string(want));
}

inline void require_floating_same(const std::vector<TensorType>& in) {
  for (const auto& t : in) {
    infer::require_floating(t);
    infer::require_same_dtype(in[0], t);
  }
}

}  // namespace xgrad::spatial
#pragma GCC visibility pop
