// Fuzz target: the `engine augment` configuration (llm_client/augment_config.h) from
// arbitrary YAML.
#include <cstddef>
#include <cstdint>
#include <string>

#include "llm_client/augment_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)la3::llm::parse_augment_config(text, "fuzz.yaml").ok();
  return 0;
}
