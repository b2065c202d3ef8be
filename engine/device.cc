#include "engine/device.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace la3 {

std::string device_name(Device device) {
  switch (device.type) {
    case DeviceType::kCpu: return "cpu";
    case DeviceType::kCuda: return absl::StrCat("cuda:", device.index);
    case DeviceType::kCudaEmu: return "cuda-emu";
  }
  return "unknown";
}

absl::StatusOr<Device> parse_device(std::string_view text) {
  if (text == "cpu") return Device{DeviceType::kCpu, 0};
  if (text == "cuda-emu") return Device{DeviceType::kCudaEmu, 0};
  if (text == "cuda") return Device{DeviceType::kCuda, 0};
  constexpr std::string_view kCudaPrefix = "cuda:";
  if (text.substr(0, kCudaPrefix.size()) == kCudaPrefix) {
    int index = -1;
    const std::string_view digits = text.substr(kCudaPrefix.size());
    if (absl::SimpleAtoi(absl::string_view(digits.data(), digits.size()), &index) && index >= 0) {
      return Device{DeviceType::kCuda, index};
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown device '", absl::string_view(text.data(), text.size()),
      "': expected cpu, cuda, cuda:N or cuda-emu"));
}

}  // namespace la3
