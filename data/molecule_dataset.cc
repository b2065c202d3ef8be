#include "data/molecule_dataset.h"

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <sstream>
#include <string_view>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "data/utf8.h"

namespace la3 {

namespace {

// Applies the bad-row policy: returns an error for kFail, records and continues for kSkip.
class RowErrors {
 public:
  RowErrors(const std::string& path, const ReadOptions& options, ReadReport& report)
      : path_(path), options_(options), report_(report) {}

  // Returns non-OK when reading must stop.
  absl::Status bad_row(int64_t line, const std::string& what) {
    const std::string message = absl::StrCat(path_, ":", line, ": ", what);
    if (options_.bad_rows == BadRowPolicy::kFail) {
      return absl::InvalidArgumentError(
          absl::StrCat(message, " (set the bad-row policy to skip to drop such rows and count them)"));
    }
    ++report_.rows_skipped;
    if (report_.problems.size() < options_.max_problems_kept) report_.problems.push_back(message);
    return absl::OkStatus();
  }

 private:
  const std::string& path_;
  const ReadOptions& options_;
  ReadReport& report_;
};

absl::StatusOr<std::ifstream> open_for_reading(const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": is a directory, expected a dataset file"));
  }
  std::ifstream stream(path, std::ios::binary);
  if (!stream) return absl::NotFoundError(absl::StrCat(path, ": cannot open dataset file (missing or unreadable)"));
  return stream;
}

void strip_carriage_return(std::string& line) {
  if (!line.empty() && line.back() == '\r') line.pop_back();
}

bool has_content(const std::string& text) {
  return !absl::StripAsciiWhitespace(text).empty();
}

// The first field (in order) holding invalid UTF-8, described; "" when all are valid.
std::string invalid_utf8_field(const std::vector<std::string>& fields, std::initializer_list<const char*> names) {
  size_t i = 0;
  for (const char* name : names) {
    if (i >= fields.size()) break;
    std::string problem = describe_invalid_utf8(fields[i++], absl::StrCat("the ", name, " field"));
    if (!problem.empty()) return problem;
  }
  return "";
}

}  // namespace

bool undo_doubled_backslashes(std::string& smiles) {
  std::string out;
  out.reserve(smiles.size());
  bool changed = false;
  for (size_t i = 0; i < smiles.size(); ++i) {
    out.push_back(smiles[i]);
    if (smiles[i] == '\\' && i + 1 < smiles.size() && smiles[i + 1] == '\\') {
      ++i;
      changed = true;
    }
  }
  if (changed) smiles = std::move(out);
  return changed;
}

namespace {

// The readers proper: `in` is the file's bytes, `path` names it in messages and sources.
absl::StatusOr<std::vector<MoleculeRecord>> read_chebi20_stream(std::istream& in, const std::string& path,
                                                                const ReadOptions& options, ReadReport* report_out) {
  ReadReport local;
  ReadReport& report = report_out != nullptr ? *report_out : local;
  RowErrors errors(path, options, report);
  std::vector<MoleculeRecord> records;
  std::string line;
  int64_t line_number = 0;
  if (!std::getline(in, line)) return absl::InvalidArgumentError(absl::StrCat(path, ": empty file, expected a header"));
  ++line_number;
  strip_carriage_return(line);
  if (line != "CID\tSMILES\tdescription") {
    return absl::InvalidArgumentError(absl::StrCat(path, ":1: expected the ChEBI-20 header \"CID<TAB>SMILES<TAB>description\", got \"",
                                                   line.substr(0, 80), "\""));
  }
  while (std::getline(in, line)) {
    ++line_number;
    strip_carriage_return(line);
    if (line.empty()) continue;
    ++report.rows_read;
    const std::vector<std::string> fields = absl::StrSplit(line, '\t');
    if (fields.size() != 3) {
      if (absl::Status s = errors.bad_row(line_number, absl::StrCat("expected 3 tab-separated fields (CID, SMILES, description), found ",
                                                                    fields.size()));
          !s.ok()) {
        return s;
      }
      continue;
    }
    if (!has_content(fields[0]) || !has_content(fields[1]) || !has_content(fields[2])) {
      if (absl::Status s = errors.bad_row(line_number, "empty CID, SMILES or description"); !s.ok()) return s;
      continue;
    }
    if (std::string bad = invalid_utf8_field(fields, {"CID", "SMILES", "description"}); !bad.empty()) {
      if (absl::Status s = errors.bad_row(line_number, bad); !s.ok()) return s;
      continue;
    }
    MoleculeRecord record{fields[0], fields[1], {fields[2]}, absl::StrCat(path, ":", line_number)};
    if (options.undo_doubled_backslashes && undo_doubled_backslashes(record.smiles)) ++report.backslashes_undone;
    records.push_back(std::move(record));
  }
  return records;
}

// One RFC 4180 record: fields separated by commas, a field in double quotes may contain
// commas, newlines and doubled quotes. Returns false at end of input. `line` counts
// physical lines consumed; `error` is set for an unterminated quote or garbage after one.
bool read_csv_record(std::istream& in, std::vector<std::string>& fields, int64_t& line, std::string& error) {
  fields.clear();
  error.clear();
  std::string field;
  bool in_quotes = false, after_quote = false, any = false;
  int c;
  while ((c = in.get()) != EOF) {
    any = true;
    const char ch = static_cast<char>(c);
    if (in_quotes) {
      if (ch == '"') {
        if (in.peek() == '"') {
          in.get();
          field.push_back('"');
        } else {
          in_quotes = false;
          after_quote = true;
        }
      } else {
        if (ch == '\n') ++line;
        field.push_back(ch);
      }
      continue;
    }
    if (ch == ',') {
      fields.push_back(std::move(field));
      field.clear();
      after_quote = false;
    } else if (ch == '\n') {
      ++line;
      if (!field.empty() && field.back() == '\r') field.pop_back();
      fields.push_back(std::move(field));
      return true;
    } else if (ch == '"' && field.empty() && !after_quote) {
      in_quotes = true;
    } else if (after_quote && ch != '\r') {
      error = "unexpected character after a closing quote";
      field.push_back(ch);
    } else {
      field.push_back(ch);
    }
  }
  if (!any) return false;
  if (in_quotes) error = "unterminated quoted field (the file ends inside quotes)";
  if (!field.empty() && field.back() == '\r') field.pop_back();
  fields.push_back(std::move(field));
  ++line;
  return true;
}

absl::StatusOr<std::vector<MoleculeRecord>> read_lachebi20_stream(std::istream& in, const std::string& path,
                                                                  const ReadOptions& options, ReadReport* report_out) {
  ReadReport local;
  ReadReport& report = report_out != nullptr ? *report_out : local;
  RowErrors errors(path, options, report);
  std::vector<std::string> fields;
  std::string error;
  int64_t line = 0;
  if (!read_csv_record(in, fields, line, error)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": empty file, expected a header"));
  }
  if (fields != std::vector<std::string>{"CID", "SMILES", "CAPTION"}) {
    return absl::InvalidArgumentError(absl::StrCat(path, ":1: expected the LaChEBI-20 header \"CID,SMILES,CAPTION\""));
  }
  std::vector<MoleculeRecord> records;
  std::map<std::string, size_t> index_of_cid;
  while (true) {
    const int64_t first_line = line + 1;
    if (!read_csv_record(in, fields, line, error)) break;
    if (fields.size() == 1 && fields[0].empty()) continue;  // blank line
    ++report.rows_read;
    std::string problem = error;
    if (problem.empty() && fields.size() != 3) problem = absl::StrCat("expected 3 fields (CID, SMILES, CAPTION), found ", fields.size());
    if (problem.empty() && (!has_content(fields[0]) || !has_content(fields[1]) || !has_content(fields[2]))) {
      problem = "empty CID, SMILES or CAPTION";
    }
    if (problem.empty()) problem = invalid_utf8_field(fields, {"CID", "SMILES", "CAPTION"});
    if (problem.empty()) {
      std::string smiles = fields[1];
      bool undone = options.undo_doubled_backslashes && undo_doubled_backslashes(smiles);
      auto [it, inserted] = index_of_cid.try_emplace(fields[0], records.size());
      if (inserted) {
        records.push_back(MoleculeRecord{fields[0], smiles, {fields[2]}, absl::StrCat(path, ":", first_line)});
        if (undone) ++report.backslashes_undone;
      } else if (records[it->second].smiles != smiles) {
        problem = absl::StrCat("CID ", fields[0], " has SMILES \"", smiles, "\" but its first row (",
                               records[it->second].source, ") has \"", records[it->second].smiles, "\"");
      } else {
        records[it->second].captions.push_back(fields[2]);
      }
    }
    if (!problem.empty()) {
      if (absl::Status s = errors.bad_row(first_line, problem); !s.ok()) return s;
    }
  }
  return records;
}

absl::StatusOr<std::vector<MoleculeRecord>> read_augmented_stream(std::istream& in, const std::string& path,
                                                                   const ReadOptions& options, ReadReport* report_out) {
  ReadReport local;
  ReadReport& report = report_out != nullptr ? *report_out : local;
  RowErrors errors(path, options, report);
  std::vector<MoleculeRecord> records;
  std::string line;
  int64_t line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    strip_carriage_return(line);
    if (!has_content(line)) continue;
    ++report.rows_read;
    const nlohmann::json object = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    std::string problem;
    if (object.is_discarded() || !object.is_object()) {
      // JSON text is UTF-8: say so when that is what broke the parse.
      problem = describe_invalid_utf8(line, "the line");
      if (problem.empty()) problem = "not a JSON object";
    } else {
      for (const char* key : {"cid", "smiles", "original"}) {
        if (!object.contains(key) || !object[key].is_string()) {
          problem = absl::StrCat("missing or non-string key \"", key, "\"");
          break;
        }
      }
      if (problem.empty() && object.contains("rewrites") && !object["rewrites"].is_array()) {
        problem = "\"rewrites\" must be an array of strings";
      }
    }
    MoleculeRecord record;
    if (problem.empty()) {
      record.cid = object["cid"].get<std::string>();
      record.smiles = object["smiles"].get<std::string>();
      record.captions.push_back(object["original"].get<std::string>());
      record.source = absl::StrCat(path, ":", line_number);
      if (object.contains("rewrites")) {
        for (const auto& rewrite : object["rewrites"]) {
          if (!rewrite.is_string()) {
            problem = "\"rewrites\" must be an array of strings";
            break;
          }
          record.captions.push_back(rewrite.get<std::string>());
        }
      }
      if (problem.empty() && (record.cid.empty() || record.smiles.empty() || !has_content(record.captions[0]))) {
        problem = "empty cid, smiles or original";
      }
    }
    if (!problem.empty()) {
      if (absl::Status s = errors.bad_row(line_number, problem); !s.ok()) return s;
      continue;
    }
    // Our own files store SMILES verbatim: no backslash undoing here.
    records.push_back(std::move(record));
  }
  return records;
}

using StreamReader = absl::StatusOr<std::vector<MoleculeRecord>> (*)(std::istream&, const std::string&, const ReadOptions&,
                                                                     ReadReport*);

absl::StatusOr<std::vector<MoleculeRecord>> read_file_with(StreamReader reader, const std::string& path,
                                                           const ReadOptions& options, ReadReport* report) {
  absl::StatusOr<std::ifstream> stream = open_for_reading(path);
  if (!stream.ok()) return stream.status();
  return reader(*stream, path, options, report);
}

absl::StatusOr<std::vector<MoleculeRecord>> parse_with(StreamReader reader, std::string_view text, const std::string& source,
                                                       const ReadOptions& options, ReadReport* report) {
  std::istringstream stream{std::string(text), std::ios::binary};
  return reader(stream, source, options, report);
}

}  // namespace

absl::StatusOr<std::vector<MoleculeRecord>> read_chebi20_tsv(const std::string& path, const ReadOptions& options,
                                                             ReadReport* report) {
  return read_file_with(read_chebi20_stream, path, options, report);
}

absl::StatusOr<std::vector<MoleculeRecord>> read_lachebi20_csv(const std::string& path, const ReadOptions& options,
                                                               ReadReport* report) {
  return read_file_with(read_lachebi20_stream, path, options, report);
}

absl::StatusOr<std::vector<MoleculeRecord>> read_augmented_jsonl(const std::string& path, const ReadOptions& options,
                                                                 ReadReport* report) {
  return read_file_with(read_augmented_stream, path, options, report);
}

absl::StatusOr<std::vector<MoleculeRecord>> parse_chebi20_tsv(std::string_view text, const std::string& source,
                                                              const ReadOptions& options, ReadReport* report) {
  return parse_with(read_chebi20_stream, text, source, options, report);
}

absl::StatusOr<std::vector<MoleculeRecord>> parse_lachebi20_csv(std::string_view text, const std::string& source,
                                                                const ReadOptions& options, ReadReport* report) {
  return parse_with(read_lachebi20_stream, text, source, options, report);
}

absl::StatusOr<std::vector<MoleculeRecord>> parse_augmented_jsonl(std::string_view text, const std::string& source,
                                                                  const ReadOptions& options, ReadReport* report) {
  return parse_with(read_augmented_stream, text, source, options, report);
}

absl::StatusOr<std::vector<MoleculeRecord>> read_molecule_dataset(const std::string& path, const ReadOptions& options,
                                                                  ReadReport* report) {
  auto ends_with = [&](const char* suffix) {
    const std::string s = suffix;
    return path.size() >= s.size() && path.compare(path.size() - s.size(), s.size(), s) == 0;
  };
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": is a directory, expected a dataset file"));
  }
  if (ends_with(".txt") || ends_with(".tsv")) return read_chebi20_tsv(path, options, report);
  if (ends_with(".csv")) return read_lachebi20_csv(path, options, report);
  if (ends_with(".jsonl")) return read_augmented_jsonl(path, options, report);
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": unknown dataset format; expected .txt/.tsv (ChEBI-20), .csv (LaChEBI-20) or .jsonl"));
}

}  // namespace la3
