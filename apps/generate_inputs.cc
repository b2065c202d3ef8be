#include "apps/generate_inputs.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "data/molecule_dataset.h"
#include "data/utf8.h"

namespace la3::cli {

namespace {

constexpr const char* kChebi20Header = "CID\tSMILES\tdescription";

bool first_line_is_chebi20_header(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  std::string line;
  if (!std::getline(stream, line)) return false;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line == kChebi20Header;
}

absl::StatusOr<std::vector<GenerateInput>> read_lines(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  if (!stream) return absl::NotFoundError(absl::StrCat(path, ": cannot open input file (missing or unreadable)"));
  std::vector<GenerateInput> rows;
  int64_t number = 0;
  for (std::string line; std::getline(stream, line);) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (std::string bad = describe_invalid_utf8(line, "the line"); !bad.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", number, ": ", bad));
    }
    rows.push_back(GenerateInput{std::move(line), "", absl::StrCat(path, ":", number)});
  }
  return rows;
}

}  // namespace

absl::StatusOr<InputFormat> parse_input_format(const std::string& name) {
  if (name == "auto") return InputFormat::kAuto;
  if (name == "tsv") return InputFormat::kTsv;
  if (name == "csv") return InputFormat::kCsv;
  if (name == "jsonl") return InputFormat::kJsonl;
  if (name == "lines") return InputFormat::kLines;
  return absl::InvalidArgumentError(
      absl::StrCat("--input-format '", name, "': expected auto, tsv (ChEBI-20), csv (LaChEBI-20), jsonl or lines"));
}

absl::StatusOr<std::vector<GenerateInput>> read_generate_inputs(const std::string& path, InputFormat format,
                                                                Direction direction) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": is a directory, expected an input file"));
  }
  if (!std::filesystem::exists(path, error)) {
    return absl::NotFoundError(absl::StrCat(path, ": no such input file"));
  }
  if (format == InputFormat::kAuto) {
    if (path.ends_with(".tsv")) {
      format = InputFormat::kTsv;
    } else if (path.ends_with(".csv")) {
      format = InputFormat::kCsv;
    } else if (path.ends_with(".jsonl")) {
      format = InputFormat::kJsonl;
    } else if (path.ends_with(".txt") && first_line_is_chebi20_header(path)) {
      format = InputFormat::kTsv;  // ChEBI-20's own files are .txt tables
    } else {
      format = InputFormat::kLines;
    }
  }
  if (format == InputFormat::kLines) return read_lines(path);
  absl::StatusOr<std::vector<MoleculeRecord>> records =
      format == InputFormat::kTsv   ? read_chebi20_tsv(path, ReadOptions{})
      : format == InputFormat::kCsv ? read_lachebi20_csv(path, ReadOptions{})
                                    : read_augmented_jsonl(path, ReadOptions{});
  if (!records.ok()) return records.status();
  std::vector<GenerateInput> rows;
  rows.reserve(records->size());
  for (MoleculeRecord& r : *records) {
    if (direction == Direction::kCaptionToSmiles) {
      rows.push_back(GenerateInput{std::move(r.captions[0]), std::move(r.smiles), std::move(r.source)});
    } else {
      rows.push_back(GenerateInput{std::move(r.smiles), std::move(r.captions[0]), std::move(r.source)});
    }
  }
  return rows;
}

}  // namespace la3::cli
