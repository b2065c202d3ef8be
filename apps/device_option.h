// The --device / --gemm-precision options of the inference commands (generate, score): the
// model moves to the chosen device; errors name the option.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "apps/arguments.h"
#include "model/t5_model.h"

namespace la3::cli {

// Without --device the model stays on the CPU. `note` receives what the choice printed
// (e.g. "no GPU: using the CPU"), empty when nothing.
absl::Status place_model_on_requested_device(const Arguments& args, T5Model& model, std::string& note);

}  // namespace la3::cli
