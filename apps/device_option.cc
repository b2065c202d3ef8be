#include "apps/device_option.h"

#include "absl/strings/str_cat.h"
#include "engine/backend.h"
#include "engine/cuda/device_setup.h"

namespace la3::cli {

absl::Status place_model_on_requested_device(const Arguments& args, T5Model& model, std::string& note) {
  note.clear();
  if (!args.has("device")) return absl::OkStatus();
  absl::StatusOr<DeviceChoice> choice = activate_device(args.get("device"));
  if (!choice.ok()) return choice.status();
  const std::string precision = args.get("gemm-precision", "bf16");
  if (precision != "bf16" && precision != "fp32") {
    return absl::InvalidArgumentError(absl::StrCat("--gemm-precision '", precision, "': expected bf16 or fp32"));
  }
  if (choice->device.type != DeviceType::kCpu) {
    backend_for(choice->device).set_gemm_precision(precision == "fp32" ? GemmPrecision::kFp32 : GemmPrecision::kBf16);
    model = model.to_device(choice->device);
  }
  note = choice->note;
  return absl::OkStatus();
}

}  // namespace la3::cli
