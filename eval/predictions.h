// MolT5's evaluation TSV: header "description|SMILES <TAB> ground truth <TAB> output", one
// row per input. Rows that cannot be scored (wrong field count, invalid UTF-8) are counted and described,
// never silently dropped.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace la3 {

struct PredictionFile {
  std::string input_column;  // "description" (caption -> SMILES) or "SMILES"
  std::vector<std::string> inputs, references, outputs;
  std::vector<int64_t> lines;  // the file line of each row, for messages
  int64_t rows_skipped = 0;       // every row not scored (malformed or invalid UTF-8)
  int64_t rows_invalid_utf8 = 0;  // of which: a field held invalid UTF-8
  std::vector<std::string> problems;  // first few "file:line: what"
};

absl::StatusOr<PredictionFile> read_predictions(const std::string& path);
// The same on the file's bytes in memory; `source` stands for the path in messages.
absl::StatusOr<PredictionFile> parse_predictions(std::string_view text, const std::string& source);

}  // namespace la3
