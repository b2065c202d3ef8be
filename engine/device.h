// Where a tensor lives. `cpu` is the reference backend; `cuda` runs the hand-written
// kernels on a GPU; `cuda-emu` runs the same kernel source on the CPU under the SIMT
// emulation (kernels/simt/), with device memory = host memory.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace la3 {

enum class DeviceType : unsigned char { kCpu, kCuda, kCudaEmu };

struct Device {
  DeviceType type = DeviceType::kCpu;
  int index = 0;  // GPU ordinal for kCuda; 0 otherwise

  static Device cpu() { return Device{DeviceType::kCpu, 0}; }
  friend bool operator==(const Device&, const Device&) = default;
};

// "cpu", "cuda:1", "cuda-emu".
std::string device_name(Device device);

// Parses "cpu", "cuda", "cuda:N", "cuda-emu"; anything else is an InvalidArgument error.
absl::StatusOr<Device> parse_device(std::string_view text);

}  // namespace la3
