// Hugging Face checkpoint directories: config.json + model.safetensors.
//
// load_t5_checkpoint reads what T5ForConditionalGeneration.save_pretrained writes (and HF
// MolT5 checkpoints converted to safetensors); save_t5_checkpoint writes a directory that
// from_pretrained loads back with the same logits. Files are written atomically.
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
