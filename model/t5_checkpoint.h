// Hugging Face checkpoint directories: config.json + weights.
//
// load_t5_checkpoint reads what T5ForConditionalGeneration.save_pretrained writes and what the
// hub's MolT5 repositories hold: model.safetensors, pytorch_model.bin (read without running its
// pickle), or either sharded with an index (model/checkpoint_weights.h). The same checks apply
// to every layout: config and shapes, missing and unexpected parameters, NaN/inf weights.
// save_t5_checkpoint writes config.json + model.safetensors, a directory that from_pretrained
// loads back with the same logits. Files are written atomically.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/t5_model.h"

namespace la3 {

absl::StatusOr<T5Model> load_t5_checkpoint(const std::string& directory);

// Creates `directory` if needed; writes config.json and model.safetensors.
absl::Status save_t5_checkpoint(const T5Model& model, const std::string& directory);

}  // namespace la3
