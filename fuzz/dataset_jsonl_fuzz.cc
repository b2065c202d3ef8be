// Fuzz target: the augmented JSONL reader (one JSON object per molecule with cid, smiles,
// original, rewrites) of data/molecule_dataset.h on arbitrary file bytes, with both bad-row
// policies.
#include "fuzz/dataset_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  la3::fuzz::check_dataset_parser(la3::parse_augmented_jsonl, data, size, /*rows_per_caption=*/false);
  return 0;
}
