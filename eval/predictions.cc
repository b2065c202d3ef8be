#include "eval/predictions.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "data/utf8.h"

namespace la3 {

namespace {

absl::StatusOr<PredictionFile> read_predictions_stream(std::istream& stream, const std::string& path) {
  PredictionFile file;
  std::string line;
  if (!std::getline(stream, line)) return absl::InvalidArgumentError(absl::StrCat(path, ": empty file, expected a header"));
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line == "description\tground truth\toutput") {
    file.input_column = "description";
  } else if (line == "SMILES\tground truth\toutput") {
    file.input_column = "SMILES";
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ":1: expected MolT5's header \"description<TAB>ground truth<TAB>output\" or "
              "\"SMILES<TAB>ground truth<TAB>output\""));
  }
  int64_t number = 1;
  while (std::getline(stream, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const std::vector<std::string> fields = absl::StrSplit(line, '\t');
    if (fields.size() != 3) {
      ++file.rows_skipped;
      if (file.problems.size() < 20) {
        file.problems.push_back(absl::StrCat(path, ":", number, ": expected 3 tab-separated fields, found ", fields.size()));
      }
      continue;
    }
    // Invalid UTF-8 is never scored: RDKit could accept the bytes as a SMILES and text
    // metrics would compare garbage. Such rows are skipped, counted and named.
    std::string bad;
    for (size_t i = 0; i < 3 && bad.empty(); ++i) {
      static constexpr const char* kColumns[] = {"input", "ground truth", "output"};
      bad = describe_invalid_utf8(fields[i], absl::StrCat("the ", kColumns[i], " column"));
    }
    if (!bad.empty()) {
      ++file.rows_skipped;
      ++file.rows_invalid_utf8;
      if (file.problems.size() < 20) file.problems.push_back(absl::StrCat(path, ":", number, ": ", bad));
      continue;
    }
    file.inputs.push_back(fields[0]);
    file.references.push_back(fields[1]);
    file.outputs.push_back(fields[2]);
    file.lines.push_back(number);
  }
  return file;
}

}  // namespace

absl::StatusOr<PredictionFile> read_predictions(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  if (!stream) return absl::NotFoundError(absl::StrCat(path, ": cannot open predictions file"));
  return read_predictions_stream(stream, path);
}

absl::StatusOr<PredictionFile> parse_predictions(std::string_view text, const std::string& source) {
  std::istringstream stream{std::string(text), std::ios::binary};
  return read_predictions_stream(stream, source);
}

}  // namespace la3
