// Shared by the dataset fuzz targets (data/molecule_dataset.h): runs one in-memory reader
// with both bad-row policies and checks what must hold whatever the bytes are.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data/molecule_dataset.h"
#include "fuzz/fuzz_check.h"

namespace la3::fuzz {

using DatasetParser = absl::StatusOr<std::vector<MoleculeRecord>> (*)(std::string_view, const std::string&,
                                                                      const ReadOptions&, ReadReport*);

// `rows_per_caption`: the format has one row per caption (LaChEBI-20 CSV) rather than one per
// molecule, so rows read = captions read + rows skipped.
inline void check_dataset_parser(DatasetParser parse, const uint8_t* data, size_t size, bool rows_per_caption) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  ReadOptions skip;
  skip.bad_rows = BadRowPolicy::kSkip;
  ReadReport skip_report;
  const absl::StatusOr<std::vector<MoleculeRecord>> skipped = parse(text, "fuzz", skip, &skip_report);
  ReadOptions fail;
  ReadReport fail_report;
  const absl::StatusOr<std::vector<MoleculeRecord>> strict = parse(text, "fuzz", fail, &fail_report);
  if (!skipped.ok()) {
    LA3_FUZZ_CHECK(!strict.ok());  // only a bad header stops the skipping reader
    return;
  }
  int64_t accepted = 0;
  for (const MoleculeRecord& record : *skipped) {
    LA3_FUZZ_CHECK(!record.cid.empty() && !record.smiles.empty() && !record.captions.empty());
    accepted += rows_per_caption ? static_cast<int64_t>(record.captions.size()) : 1;
  }
  LA3_FUZZ_CHECK(skip_report.rows_read == accepted + skip_report.rows_skipped);
  LA3_FUZZ_CHECK(skip_report.problems.size() <= skip.max_problems_kept);
  if (strict.ok()) {
    // Nothing was bad, so both policies read the same records.
    LA3_FUZZ_CHECK(skip_report.rows_skipped == 0);
    LA3_FUZZ_CHECK(strict->size() == skipped->size());
    for (size_t i = 0; i < strict->size(); ++i) {
      LA3_FUZZ_CHECK((*strict)[i].smiles == (*skipped)[i].smiles && (*strict)[i].captions == (*skipped)[i].captions);
    }
  } else {
    LA3_FUZZ_CHECK(skip_report.rows_skipped > 0);
  }
}

}  // namespace la3::fuzz
