#include "engine/backend.h"

#include <array>
#include <cstring>
#include <mutex>

#include "engine/cpu/cpu_backend.h"
#include "engine/error.h"

namespace la3 {

void Backend::copy_to_host(void* host_dst, const void* device_src, size_t bytes) {
  if (bytes > 0) std::memmove(host_dst, device_src, bytes);
}
void Backend::copy_from_host(void* device_dst, const void* host_src, size_t bytes) {
  if (bytes > 0) std::memmove(device_dst, host_src, bytes);
}
void Backend::copy_from_host_async(void* device_dst, const void* host_src, size_t bytes,
                                   std::shared_ptr<const void> /*host_owner*/) {
  copy_from_host(device_dst, host_src, bytes);
}
void Backend::copy_on_device(void* device_dst, const void* device_src, size_t bytes) {
  if (bytes > 0) std::memmove(device_dst, device_src, bytes);
}

namespace {

struct BackendRegistry {
  std::mutex mutex;
  CpuBackend cpu;
  std::array<Backend*, 3> by_type{&cpu, nullptr, nullptr};
};

BackendRegistry& registry() {
  static BackendRegistry instance;
  return instance;
}

}  // namespace

Backend& backend_for(Device device) {
  BackendRegistry& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mutex);
  Backend* backend = reg.by_type[static_cast<size_t>(device.type)];
  if (backend == nullptr) {
    Fail(ErrorKind::kUnimplemented, "no backend for device ", device_name(device),
         ": it is not available in this build or was not initialised");
  }
  return *backend;
}

void register_backend(DeviceType type, Backend* backend) {
  BackendRegistry& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mutex);
  reg.by_type[static_cast<size_t>(type)] = backend;
}

}  // namespace la3
