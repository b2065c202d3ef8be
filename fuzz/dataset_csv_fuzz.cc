// Fuzz target: the LaChEBI-20 CSV reader (RFC 4180 quoting, one row per caption, rows of a
// CID agree on the SMILES) of data/molecule_dataset.h on arbitrary file bytes, with both
// bad-row policies.
#include "fuzz/dataset_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  la3::fuzz::check_dataset_parser(la3::parse_lachebi20_csv, data, size, /*rows_per_caption=*/true);
  return 0;
}
