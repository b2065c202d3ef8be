// Choosing and bringing up the device a command runs on (docs/CUDA.md): `auto` picks `cuda`
// when a GPU is usable and `cpu` otherwise; `cpu`, `cuda`, `cuda:N` and `cuda-emu` are taken
// as asked. Asking for `cuda` without a GPU (or in a build without CUDA) is a clear error
// naming the runtime's reason, never a crash.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "engine/device.h"

namespace la3 {

struct DeviceChoice {
  Device device;
  std::string note;  // why `auto` chose what it chose ("" when the device was explicit)
};

absl::StatusOr<DeviceChoice> activate_device(std::string_view requested);

}  // namespace la3
