// Fuzz target: the training configuration (model/train_config.h) from arbitrary YAML. A
// configuration it accepts must survive what a run does with it: the model configuration it
// builds is checked, and the effective YAML written into the run directory (what --resume
// compares against) must read back to the same YAML.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_check.h"
#include "model/train_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<la3::TrainConfig> config = la3::parse_train_config(text, "fuzz.yaml");
  if (!config.ok()) return 0;
  (void)config->model_config(/*tokenizer_vocab=*/64).ok();
  const std::string yaml = la3::train_config_to_yaml(*config);
  absl::StatusOr<la3::TrainConfig> again = la3::parse_train_config(yaml, "fuzz-effective.yaml");
  if (!again.ok()) std::fprintf(stderr, "%s\n--- effective YAML:\n%s\n", std::string(again.status().message()).c_str(), yaml.c_str());
  LA3_FUZZ_CHECK(again.ok());
  LA3_FUZZ_CHECK(la3::train_config_to_yaml(*again) == yaml);
  return 0;
}
