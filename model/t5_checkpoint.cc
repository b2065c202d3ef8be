#include "model/t5_checkpoint.h"

#include <cmath>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "engine/io/file_io.h"
#include "engine/io/safetensors.h"
#include "model/checkpoint_weights.h"

namespace la3 {

absl::StatusOr<T5Model> load_t5_checkpoint(const std::string& directory) {
  const std::string config_path = directory + "/config.json";
  absl::StatusOr<std::string> config_text = read_file(config_path);
  if (!config_text.ok()) {
    return absl::Status(config_text.status().code(),
                        absl::StrCat("checkpoint directory ", directory, ": ", config_text.status().message()));
  }
  absl::StatusOr<T5Config> config = t5_config_from_hf_json(*config_text, config_path);
  if (!config.ok()) return config.status();
  absl::StatusOr<CheckpointWeights> weights = read_checkpoint_weights(directory);
  if (!weights.ok()) {
    return absl::Status(weights.status().code(),
                        absl::StrCat("checkpoint directory ", directory, ": ", weights.status().message()));
  }
  // A diverged run's weights (NaN/inf) would load and decode to empty text without a word:
  // one pass over every floating tensor names the first bad element instead.
  for (const auto& [name, tensor] : weights->tensors) {
    if (tensor.dtype() != DType::kF32 && tensor.dtype() != DType::kBF16) continue;
    const std::vector<float> values = tensor.dtype() == DType::kF32 ? tensor.to_vector<float>()
                                                                    : tensor.to(DType::kF32).to_vector<float>();
    for (size_t i = 0; i < values.size(); ++i) {
      if (!std::isfinite(values[i])) {
        return absl::DataLossError(absl::StrCat(weights->files.at(name), ": tensor \"", name, "\" ", tensor.describe(),
                                                " holds ", values[i], " at element ", i,
                                                " (a diverged or corrupted checkpoint); refusing to load it"));
      }
    }
  }
  absl::StatusOr<T5Model> model = T5Model::from_tensors(*config, std::move(weights->tensors));
  if (!model.ok()) return absl::InvalidArgumentError(absl::StrCat(weights->path, ": ", model.status().message()));
  return model;
}

absl::Status save_t5_checkpoint(const T5Model& model, const std::string& directory) {
  std::error_code error;
  std::filesystem::create_directories(directory, error);
  if (error) return absl::PermissionDeniedError(absl::StrCat("cannot create ", directory, ": ", error.message()));
  if (absl::Status s = write_file_atomically(directory + "/config.json", t5_config_to_hf_json(model.config())); !s.ok()) {
    return s;
  }
  return write_safetensors(directory + "/model.safetensors", model.parameters(), {{"format", "pt"}});
}

}  // namespace la3
