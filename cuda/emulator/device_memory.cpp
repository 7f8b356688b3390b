// Device memory in the emulator: one mapping per allocation, data pages
// protected (PROT_NONE) whenever no emulated work runs, a guard page after
// the last byte, and a SIGSEGV handler that says which of those was hit.
#include "cuda/emulator/device_memory.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <map>

#include "cuda/emulator/include/cuda_runtime.h"

namespace xgrad::cuda::emulator {

namespace {

struct Region {
  char* map;            // the mapping: data pages, then one guard page
  std::size_t data_pages_bytes;
  char* data;           // the allocation: its last byte is the last byte before the guard page
  std::size_t bytes;
};

std::size_t page_size() {
  static const std::size_t size = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

// Guarded by lock(), except for the fault handler's read (the process is dying then).
std::map<std::uintptr_t, Region>& regions() {
  static auto* r = new std::map<std::uintptr_t, Region>();  // never destroyed: freed tensors may outlive statics
  return *r;
}
std::mutex& lock() {
  static auto* m = new std::mutex();
  return *m;
}
std::mutex& regions_lock() {
  static auto* m = new std::mutex();
  return *m;
}
bool device_mode = false;
const char* activity = nullptr;  // what runs in device mode: a kernel's name, a copy, a GEMM

void protect(const Region& r, int prot) {
  if (r.data_pages_bytes) mprotect(r.map, r.data_pages_bytes, prot);
}

const Region* region_holding(std::uintptr_t p) {
  auto& all = regions();
  auto it = all.upper_bound(p);
  if (it == all.begin()) return nullptr;
  --it;
  const Region& r = it->second;
  return p <= reinterpret_cast<std::uintptr_t>(r.data) + r.bytes ? &r : nullptr;
}

// A fault in device memory or a guard page gets a sentence before the previous handler (Python's
// faulthandler, then the default) reports the crash.
struct sigaction previous_handler;

void on_fault(int, siginfo_t* info, void*) {
  const auto addr = reinterpret_cast<std::uintptr_t>(info->si_addr);
  char message[512] = {};
  for (const auto& [start, r] : regions()) {
    const auto map = reinterpret_cast<std::uintptr_t>(r.map);
    const auto guard = map + r.data_pages_bytes;
    if (addr >= guard && addr < guard + page_size()) {
      std::snprintf(message, sizeof message,
                    "xgrad CUDA emulator: %s accessed past the end of a device allocation of %zu bytes (its byte %zu)\n",
                    activity ? activity : "host code", r.bytes, r.bytes + static_cast<std::size_t>(addr - guard));
    } else if (addr >= map && addr < guard && !device_mode) {
      std::snprintf(message, sizeof message,
                    "xgrad CUDA emulator: host code touched device memory (byte %zd of an allocation of %zu bytes); "
                    "the host must copy it with cudaMemcpy first\n",
                    static_cast<std::ptrdiff_t>(addr - start), r.bytes);
    }
    if (message[0]) break;
  }
  if (message[0]) {
    const ssize_t ignored = write(STDERR_FILENO, message, std::strlen(message));
    (void)ignored;
  }
  sigaction(SIGSEGV, &previous_handler, nullptr);  // returning re-runs the access, which now reaches it
}

// Little-endian 0x7FF800007FC00000: a float64 NaN whose 4-byte halves are float32 NaNs, and as integers
// 9.2e18 (int64) or above 2.1e9 (int32): no axis is that long.
constexpr std::uint64_t kPoison = 0x7FF800007FC00000ULL;

void fill_poison(char* p, std::size_t bytes) {
  for (std::size_t i = 0; i < bytes; i += sizeof kPoison)
    std::memcpy(p + i, &kPoison, std::min(sizeof kPoison, bytes - i));
}

void install_fault_handler() {
  static const bool installed = [] {
    struct sigaction action = {};
    action.sa_sigaction = on_fault;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, &previous_handler);
    return true;
  }();
  (void)installed;
}

}  // namespace

void* allocate_device(std::size_t bytes) {
  install_fault_handler();
  const std::size_t page = page_size();
  const std::size_t data_pages_bytes = (bytes + page - 1) / page * page;
  void* map = mmap(nullptr, data_pages_bytes + page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (map == MAP_FAILED) return nullptr;
  Region r{static_cast<char*>(map), data_pages_bytes, static_cast<char*>(map) + data_pages_bytes - bytes, bytes};
  protect(r, PROT_READ | PROT_WRITE);
  fill_poison(r.data, bytes);
  std::lock_guard<std::mutex> guard(regions_lock());
  if (!device_mode) protect(r, PROT_NONE);
  regions()[reinterpret_cast<std::uintptr_t>(r.data)] = r;
  return r.data;
}

bool free_device(void* ptr) {
  const std::lock_guard<std::mutex> idle(lock());
  std::lock_guard<std::mutex> guard(regions_lock());
  auto& all = regions();
  const auto it = all.find(reinterpret_cast<std::uintptr_t>(ptr));
  if (it == all.end()) return false;
  munmap(it->second.map, it->second.data_pages_bytes + page_size());
  all.erase(it);
  return true;
}

bool is_device_range(const void* p, std::size_t bytes) {
  std::lock_guard<std::mutex> guard(regions_lock());
  const auto at = reinterpret_cast<std::uintptr_t>(p);
  const Region* r = region_holding(at);
  return r && bytes <= reinterpret_cast<std::uintptr_t>(r->data) + r->bytes - at;
}

bool touches_device(const void* p, std::size_t bytes) {
  std::lock_guard<std::mutex> guard(regions_lock());
  const auto first = reinterpret_cast<std::uintptr_t>(p);
  if (region_holding(first)) return true;
  // Otherwise the first region starting after p must start past the range.
  const auto next = regions().upper_bound(first);
  return next != regions().end() && bytes > 0 && next->first - first < bytes;
}

std::string describe_pointer(const void* p) {
  std::lock_guard<std::mutex> guard(regions_lock());
  const Region* r = region_holding(reinterpret_cast<std::uintptr_t>(p));
  if (!r) return "host memory";
  char text[128];
  std::snprintf(text, sizeof text, "byte %zu of a device allocation of %zu bytes",
                static_cast<std::size_t>(static_cast<const char*>(p) - r->data), r->bytes);
  return text;
}

void poison_device(void* p, std::size_t bytes) {
  if (bytes == 0) return;
  const DeviceAccess access("poison_device");
  fill_poison(static_cast<char*>(p), bytes);
}

DeviceAccess::DeviceAccess(const char* what) : lock_(lock()) {
  std::lock_guard<std::mutex> guard(regions_lock());
  for (const auto& [start, r] : regions()) protect(r, PROT_READ | PROT_WRITE);
  device_mode = true;
  activity = what;
}

DeviceAccess::~DeviceAccess() {
  std::lock_guard<std::mutex> guard(regions_lock());
  for (const auto& [start, r] : regions()) protect(r, PROT_NONE);
  device_mode = false;
  activity = nullptr;
}

}  // namespace xgrad::cuda::emulator
