// Putting a model on the device a user named ("cpu", "auto", "cuda", "cuda:N", "cuda-emu")
// with the GEMM precision of CUDA devices ("bf16" or "fp32"): one place for the decoder
// library and the inference commands.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "model/t5_model.h"

namespace la3 {

// Moves `model` there. Returns what choosing the device said (e.g. why "auto" fell back to
// the CPU), empty when nothing. Errors name the bad device or precision.
absl::StatusOr<std::string> place_model_on_device(T5Model& model, const std::string& device,
                                                  const std::string& gemm_precision);

}  // namespace la3
