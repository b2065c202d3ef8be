#include "model/device_placement.h"

#include "absl/strings/str_cat.h"
#include "engine/backend.h"
#include "engine/device_selection.h"

namespace la3 {

absl::StatusOr<std::string> place_model_on_device(T5Model& model, const std::string& device,
                                                  const std::string& gemm_precision) {
  if (gemm_precision != "bf16" && gemm_precision != "fp32") {
    return absl::InvalidArgumentError(absl::StrCat("gemm precision '", gemm_precision, "': expected bf16 or fp32"));
  }
  absl::StatusOr<DeviceChoice> choice = activate_device(device);
  if (!choice.ok()) return choice.status();
  if (choice->device.type != DeviceType::kCpu) {
    backend_for(choice->device).set_gemm_precision(gemm_precision == "fp32" ? GemmPrecision::kFp32 : GemmPrecision::kBf16);
    model = model.to_device(choice->device);
  }
  return choice->note;
}

}  // namespace la3
