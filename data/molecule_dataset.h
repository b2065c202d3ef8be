// Molecule-caption datasets: ChEBI-20 (TSV), LaChEBI-20 (CSV with one row per caption) and
// our augmented JSONL (one object per molecule); docs/ARCHITECTURE.md, "Files users touch".
// All three become a list of MoleculeRecord: one SMILES with its k+1 captions, c_0 the
// original and c_1..c_k rewrites.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace la3 {

struct MoleculeRecord {
  std::string cid;
  std::string smiles;
  std::vector<std::string> captions;  // [0] original, [1..k] rewrites
  std::string source;                 // "file:line" of the record's first row, for messages
};

// What to do with a row that cannot be parsed.
enum class BadRowPolicy {
  kFail,  // stop with an error naming file, line and problem (default)
  kSkip,  // skip the row, count it, keep the first few problems for the report
};

struct ReadReport {
  int64_t rows_read = 0;              // data rows seen (header excluded)
  int64_t rows_skipped = 0;           // malformed rows skipped under kSkip
  int64_t backslashes_undone = 0;     // SMILES in which a doubled backslash was undone
  std::vector<std::string> problems;  // first problems, "file:line: what"
};

struct ReadOptions {
  BadRowPolicy bad_rows = BadRowPolicy::kFail;
  // ChEBI-20's public files double every backslash in SMILES ("\\" for the bond-direction
  // "\"); the reader undoes it. Turn off for files that store SMILES verbatim.
  bool undo_doubled_backslashes = true;
  size_t max_problems_kept = 20;
};

// ChEBI-20 TSV: header "CID<TAB>SMILES<TAB>description", one molecule per row, one caption.
absl::StatusOr<std::vector<MoleculeRecord>> read_chebi20_tsv(const std::string& path, const ReadOptions& options,
                                                             ReadReport* report = nullptr);

// LaChEBI-20 CSV: header "CID,SMILES,CAPTION" (RFC 4180 quoting, captions may contain commas,
// quotes and newlines); rows of one CID are its captions in file order (the first is c_0).
// Rows of a CID must agree on the SMILES.
absl::StatusOr<std::vector<MoleculeRecord>> read_lachebi20_csv(const std::string& path, const ReadOptions& options,
                                                               ReadReport* report = nullptr);

// Our augmented JSONL: {"cid", "smiles", "original", "rewrites": [...], ...provenance}.
absl::StatusOr<std::vector<MoleculeRecord>> read_augmented_jsonl(const std::string& path, const ReadOptions& options,
                                                                 ReadReport* report = nullptr);

// Dispatches on the extension: .txt/.tsv -> ChEBI-20, .csv -> LaChEBI-20, .jsonl -> augmented.
absl::StatusOr<std::vector<MoleculeRecord>> read_molecule_dataset(const std::string& path, const ReadOptions& options,
                                                                  ReadReport* report = nullptr);

// The same readers on a file's bytes in memory (what the read_* functions do after opening
// the file; the fuzz targets in fuzz/ call these). `source` stands for the path in messages
// and in MoleculeRecord::source.
absl::StatusOr<std::vector<MoleculeRecord>> parse_chebi20_tsv(std::string_view text, const std::string& source,
                                                              const ReadOptions& options, ReadReport* report = nullptr);
absl::StatusOr<std::vector<MoleculeRecord>> parse_lachebi20_csv(std::string_view text, const std::string& source,
                                                                const ReadOptions& options, ReadReport* report = nullptr);
absl::StatusOr<std::vector<MoleculeRecord>> parse_augmented_jsonl(std::string_view text, const std::string& source,
                                                                  const ReadOptions& options, ReadReport* report = nullptr);

// "\\" -> "\" everywhere in `smiles`; returns true when something changed.
bool undo_doubled_backslashes(std::string& smiles);

}  // namespace la3
