// From molecule records to padded training batches.
//
// tokenize_groups turns each MoleculeRecord into a group of examples, one per caption used
// (c_0 and up to k rewrites), in the chosen direction; make_batch_plan orders groups into
// length-bucketed batches with a seeded shuffle (same seed + epoch -> same plan, on every
// machine); collate pads a batch into tensors. A batch holds whole groups, so the k+1-caption
// losses always see every caption of a molecule together.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/molecule_dataset.h"
#include "data/tokenizer.h"
#include "engine/tensor.h"

namespace la3 {

enum class Direction { kCaptionToSmiles, kSmilesToCaption };

absl::StatusOr<Direction> parse_direction(const std::string& name);  // caption2smiles | smiles2caption
const char* direction_name(Direction direction);

struct Example {
  std::vector<int64_t> source;  // token ids, ending in eos
  std::vector<int64_t> target;  // token ids, ending in eos
};

struct ExampleGroup {
  std::string cid;
  std::vector<Example> examples;  // caption 0 first
};

struct TokenizeOptions {
  Direction direction = Direction::kCaptionToSmiles;
  int max_rewrites = 0;  // k: use c_0 and at most k rewrites per molecule
  // true: each caption becomes its own group (the `mean` loss, what the authors' pipeline
  // does); false: one group per molecule (the mixture losses).
  bool caption_per_group = true;
  int64_t max_source_length = 512;  // tokens including eos; longer sequences are truncated
  int64_t max_target_length = 512;
};

struct TokenizeReport {
  int64_t groups = 0;
  int64_t examples = 0;
  int64_t sources_truncated = 0;
  int64_t targets_truncated = 0;
};

// Truncation keeps the first max_length - 1 tokens and the eos, as transformers does.
absl::StatusOr<std::vector<ExampleGroup>> tokenize_groups(const std::vector<MoleculeRecord>& records,
                                                          const Tokenizer& tokenizer, const TokenizeOptions& options,
                                                          TokenizeReport* report = nullptr);

struct BatchPlanOptions {
  int64_t groups_per_batch = 8;
  bool shuffle = true;
  // Sort groups by length inside windows of this many batches before cutting batches, so
  // each batch pads little; the batch order is shuffled afterwards. 1 = no bucketing.
  int64_t bucket_window_batches = 50;
  uint64_t seed = 0;
  int64_t epoch = 0;
};

// Indices of groups per batch; every group appears exactly once.
std::vector<std::vector<size_t>> make_batch_plan(const std::vector<ExampleGroup>& groups,
                                                 const BatchPlanOptions& options);

struct Batch {
  Tensor input_ids;       // [rows, src_len] i64, padded with pad (0)
  Tensor attention_mask;  // [rows, src_len] i64, 1 = token
  Tensor labels;          // [rows, tgt_len] i64, padded with -100
  // [rows, tgt_len] i64: the teacher-forced decoder inputs, labels shifted right behind
  // decoder_start_id with -100 as pad (T5's shift_right), made here on the host so that a
  // device model uploads them instead of shifting device labels through the host.
  Tensor decoder_input_ids;
  int64_t decoder_start_id = 0;
  int64_t pad_id = 0;
  std::vector<int64_t> group;  // [rows] group index within the batch (0..groups-1)
  int64_t groups = 0;
  int64_t target_tokens = 0;  // non-ignored labels
  int64_t source_tokens = 0;
};

// decoder_start_id: the model's decoder_start_token_id (T5's is its pad id, 0).
Batch collate(const std::vector<ExampleGroup>& groups, const std::vector<size_t>& members, int64_t pad_id = 0,
              int64_t decoder_start_id = 0);

// Keeps the first max_length - 1 tokens and the final eos (as transformers truncates).
// Returns true when it cut something.
bool truncate_keeping_eos(std::vector<int64_t>& ids, int64_t max_length);

// Inputs for generation: sequences right-padded with pad_id into input_ids [n, longest] and
// attention_mask [n, longest] (1 = token), both i64.
struct PaddedInputs {
  Tensor input_ids;
  Tensor attention_mask;
};
PaddedInputs pad_inputs(const std::vector<std::vector<int64_t>>& sequences, int64_t pad_id = 0);

}  // namespace la3
