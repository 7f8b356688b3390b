// Static attributes of an op application (axes, exponents, target shapes).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace xgrad {

using AttrValue = std::variant<std::int64_t, double, std::vector<std::int64_t>, std::string>;

class Attrs {
 public:
  Attrs() = default;
  Attrs(std::initializer_list<std::pair<std::string, AttrValue>> items) : items_(items) {}

  Attrs& set(const std::string& name, AttrValue value);
  bool has(const std::string& name) const { return find(name) != nullptr; }
  std::int64_t get_int(const std::string& name) const;
  double get_float(const std::string& name) const;
  const std::vector<std::int64_t>& get_ints(const std::string& name) const;
  const std::string& get_string(const std::string& name) const;
  const std::vector<std::pair<std::string, AttrValue>>& items() const { return items_; }
  std::string to_string() const;
  bool operator==(const Attrs& other) const { return items_ == other.items_; }

 private:
  const AttrValue* find(const std::string& name) const;
  const AttrValue& at(const std::string& name) const;
  std::vector<std::pair<std::string, AttrValue>> items_;
};

}  // namespace xgrad
