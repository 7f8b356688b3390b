#include "core/attrs.h"

#include <sstream>

#include "core/error.h"

namespace xgrad {

Attrs& Attrs::set(const std::string& name, AttrValue value) {
  for (auto& [k, v] : items_)
    if (k == name) {
      v = std::move(value);
      return *this;
    }
  items_.emplace_back(name, std::move(value));
  return *this;
}

const AttrValue* Attrs::find(const std::string& name) const {
  for (const auto& [k, v] : items_)
    if (k == name) return &v;
  return nullptr;
}

const AttrValue& Attrs::at(const std::string& name) const {
  const AttrValue* v = find(name);
  if (!v) throw ValueError("missing attribute '" + name + "'");
  return *v;
}

std::int64_t Attrs::get_int(const std::string& name) const { return std::get<std::int64_t>(at(name)); }
double Attrs::get_float(const std::string& name) const { return std::get<double>(at(name)); }
const std::vector<std::int64_t>& Attrs::get_ints(const std::string& name) const {
  return std::get<std::vector<std::int64_t>>(at(name));
}
const std::string& Attrs::get_string(const std::string& name) const { return std::get<std::string>(at(name)); }

std::string Attrs::to_string() const {
  std::ostringstream os;
  os.precision(17);  // exact: CSE compares attributes through this text
  bool first = true;
  for (const auto& [k, v] : items_) {
    os << (first ? "" : ", ") << k << "=";
    first = false;
    std::visit(
        [&](const auto& x) {
          using X = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<X, std::vector<std::int64_t>>) {
            os << "[";
            for (std::size_t i = 0; i < x.size(); ++i) os << (i ? "," : "") << x[i];
            os << "]";
          } else {
            os << x;
          }
        },
        v);
  }
  return os.str();
}

}  // namespace xgrad
