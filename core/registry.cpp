#include <deque>
#include <map>
#include <mutex>

#include "core/error.h"
#include "core/op.h"
#include "core/device.h"

namespace xgrad {

namespace {
struct Registry {
  std::mutex mutex;
  std::deque<OpDef> ops;  // deque: references stay valid as it grows
  std::map<std::pair<std::string, Device>, KernelFn> device_kernels;
};
Registry& registry() {
  static Registry r;
  return r;
}
}  // namespace

std::string to_string(const TensorType& type) { return std::string(dtype_name(type.dtype)) + to_string(type.shape); }

const OpDef& register_op(OpDef def) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (const auto& op : r.ops)
    if (op.name() == def.name()) throw ValueError("op '" + def.name() + "' is registered twice");
  if (!def.infer() && !def.value_infer()) throw ValueError("op '" + def.name() + "' has no infer function");
  if (!def.kernel() && !def.view()) throw ValueError("op '" + def.name() + "' has neither kernel nor view");
  if (!def.differentiable() && def.non_differentiable_reason().empty())
    throw ValueError("op '" + def.name() + "' must have a gradient or say why it is not differentiable");
  r.ops.push_back(std::move(def));
  return r.ops.back();
}

const OpDef& find_op(const std::string& name) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (const auto& op : r.ops)
    if (op.name() == name) return op;
  throw ValueError("unknown op '" + name + "'");
}

std::vector<const OpDef*> registered_ops() {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<const OpDef*> out;
  for (const auto& op : r.ops) out.push_back(&op);
  return out;
}

void register_device_kernel(const std::string& op, Device device, KernelFn kernel) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (device == Device::cpu) throw ValueError("op '" + op + "': the CPU kernel is the OpDef's own");
  if (!r.device_kernels.emplace(std::make_pair(op, device), kernel).second)
    throw ValueError("op '" + op + "' has two " + device_name(device) + " kernels");
}

KernelFn device_kernel(const std::string& op, Device device) {
  if (device != Device::cpu) device_backend(device);  // loads the backend's plugin, which registers its kernels
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.device_kernels.find({op, device});
  return it == r.device_kernels.end() ? nullptr : it->second;
}

KernelFn kernel_for(const OpDef& op, Device device) {
  if (device == Device::cpu) return op.kernel();
  if (KernelFn k = device_kernel(op.name(), device)) return k;
  return op.runs_on_any_device() ? op.kernel() : nullptr;
}

}  // namespace xgrad
