// What `engine generate` translates: inputs (and, when the file has them, ground truths)
// from a ChEBI-20 TSV, a LaChEBI-20 CSV, our JSONL, or a plain file of one input per line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/batching.h"

namespace la3::cli {

enum class InputFormat { kAuto, kTsv, kCsv, kJsonl, kLines };

// "auto", "tsv", "csv", "jsonl" or "lines"; anything else is InvalidArgument naming it.
absl::StatusOr<InputFormat> parse_input_format(const std::string& name);

struct GenerateInput {
  std::string input;
  std::string truth;   // empty for plain lines
  std::string source;  // "file:line", for messages
};

// kAuto picks by extension: .tsv ChEBI-20, .csv LaChEBI-20, .jsonl ours; a .txt file is a
// ChEBI-20 table when its first line is ChEBI-20's header and plain lines otherwise; any
// other name is plain lines. Plain lines: one input per non-empty line. A directory, a
// missing file and invalid UTF-8 (named by file:line and byte) are errors.
absl::StatusOr<std::vector<GenerateInput>> read_generate_inputs(const std::string& path, InputFormat format,
                                                                Direction direction);

}  // namespace la3::cli
