// Fuzz target: the safetensors reader (engine/io/safetensors.h) on arbitrary file bytes:
// the 8-byte header length, the JSON header (dtypes, shapes, data offsets, __metadata__)
// and the data region. Whatever it accepts must serialise again and read back the same.
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/io/safetensors.h"
#include "fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<la3::SafetensorsContents> contents = la3::parse_safetensors(bytes, "fuzz.safetensors");
  if (!contents.ok()) return 0;
  absl::StatusOr<std::string> written = la3::serialize_safetensors(contents->tensors, contents->metadata);
  LA3_FUZZ_CHECK(written.ok());
  absl::StatusOr<la3::SafetensorsContents> again = la3::parse_safetensors(*written, "fuzz-rewritten.safetensors");
  LA3_FUZZ_CHECK(again.ok());
  LA3_FUZZ_CHECK(again->metadata == contents->metadata);
  LA3_FUZZ_CHECK(again->tensors.size() == contents->tensors.size());
  for (const auto& [name, tensor] : contents->tensors) {
    const auto it = again->tensors.find(name);
    LA3_FUZZ_CHECK(it != again->tensors.end());
    LA3_FUZZ_CHECK(it->second.shape() == tensor.shape());
    LA3_FUZZ_CHECK(it->second.dtype() == tensor.dtype());
  }
  return 0;
}
