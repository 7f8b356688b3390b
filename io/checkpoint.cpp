#include "io/checkpoint.h"

#include "core/error.h"
#include "io/npz.h"

namespace xgrad::io {

void save_params(const Graph& g, const std::string& path) {
  NamedTensors arrays;
  for (const Var& p : g.params()) arrays.emplace_back(p.name(), p->value().to(Device::cpu));
  write_npz(path, arrays);
}

std::vector<std::string> load_params(Graph& g, const std::string& path, bool strict) {
  const NamedTensors stored = read_npz(path);
  auto find = [&](const std::string& name) -> const Tensor* {
    for (const auto& [n, t] : stored)
      if (n == name) return &t;
    return nullptr;
  };
  const std::vector<Var> params = g.params();
  std::vector<std::string> loaded;
  for (const Var& p : params) {
    const Tensor* t = find(p.name());
    if (!t) {
      if (strict) throw ValueError("checkpoint '" + path + "' has no value for parameter '" + p.name() + "'");
      continue;
    }
    if (t->dtype() != p.dtype() || t->shape() != p.shape())
      throw ValueError("parameter '" + p.name() + "': the checkpoint has " + dtype_name(t->dtype()) + " " + to_string(t->shape()) +
                       ", the graph has " + dtype_name(p.dtype()) + " " + to_string(p.shape()));
    loaded.push_back(p.name());
  }
  if (strict)
    for (const auto& [name, t] : stored)
      if (!g.find(name) || g.find(name)->kind() != NodeKind::param)
        throw ValueError("checkpoint '" + path + "' holds parameter '" + name + "', which the graph does not have");
  for (const auto& name : loaded) g.find(name)->set_value(*find(name));  // in place: compiled Programs see it
  return loaded;
}

}  // namespace xgrad::io
