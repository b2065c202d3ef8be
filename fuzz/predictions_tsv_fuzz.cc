// Fuzz target: the prediction TSV reader of `engine eval` (eval/predictions.h) on arbitrary
// file bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "eval/predictions.h"
#include "fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<la3::PredictionFile> file = la3::parse_predictions(text, "fuzz.tsv");
  if (!file.ok()) return 0;
  LA3_FUZZ_CHECK(file->inputs.size() == file->references.size() && file->inputs.size() == file->outputs.size());
  LA3_FUZZ_CHECK(file->input_column == "description" || file->input_column == "SMILES");
  LA3_FUZZ_CHECK(static_cast<int64_t>(file->problems.size()) <= file->rows_skipped);
  return 0;
}
