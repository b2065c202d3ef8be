#include "engine/device_selection.h"

#include "absl/strings/str_cat.h"
#include "engine/cuda/cuda_devices.h"

namespace la3 {

absl::StatusOr<DeviceChoice> activate_device(std::string_view requested) {
  if (requested == "auto") {
    std::string why_not;
    if (try_register_cuda_backend(&why_not)) return DeviceChoice{Device{DeviceType::kCuda, 0}, "auto: a GPU was found"};
    return DeviceChoice{Device::cpu(), absl::StrCat("auto: no usable GPU (", why_not, "), running on the cpu")};
  }
  absl::StatusOr<Device> device = parse_device(requested);
  if (!device.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("device '", std::string(requested), "': expected auto, cpu, cuda, cuda:N or cuda-emu"));
  }
  switch (device->type) {
    case DeviceType::kCpu: return DeviceChoice{*device, ""};
    case DeviceType::kCudaEmu:
      register_cuda_emu_backend();
      return DeviceChoice{*device, ""};
    case DeviceType::kCuda: {
      std::string why_not;
      if (!try_register_cuda_backend(&why_not)) {
        return absl::FailedPreconditionError(absl::StrCat(
            "device '", std::string(requested), "' is not available: ", why_not,
            ". Use --device cpu (or auto), or cuda-emu to run the CUDA kernels under the SIMT emulation"));
      }
      if (device->index != 0) {
        return absl::UnimplementedError(absl::StrCat("device '", std::string(requested),
                                                     "': only cuda:0 is driven by this version (one GPU per process)"));
      }
      return DeviceChoice{*device, ""};
    }
  }
  return absl::InternalError("unknown device type");
}

absl::StatusOr<DeviceChoice> activate_rank_device(std::string_view requested, int world_size, int local_rank) {
  if (world_size <= 1 || (requested != "cuda" && requested != "auto")) return activate_device(requested);
  // Whether `auto` finds a GPU is only known once the backend has been asked.
  absl::StatusOr<DeviceChoice> probe = activate_device(requested);
  if (!probe.ok() || probe->device.type != DeviceType::kCuda) return probe;
  return activate_device(absl::StrCat("cuda:", local_rank));
}

}  // namespace la3
