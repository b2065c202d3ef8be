// The loss of a checkpoint on a dataset, without training (`engine score`).
//
// Each loss mode is computed over the whole dataset as if it were one global batch: the sum
// of the groups' losses divided by the sum of the batches' normalisers
// (ops::caption_loss_normaliser), batch by batch in a fixed, unshuffled length-bucketed
// order. For `mean` this is the token-weighted cross-entropy that `engine train` reports as
// its validation loss, bit for bit for the same batch size. Per-row negative
// log-likelihoods (one row = one caption/SMILES pair) are the same in every mode.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/batching.h"
#include "data/molecule_dataset.h"
#include "data/tokenizer.h"
#include "engine/ops/sequence_loss.h"
#include "model/t5_model.h"

namespace la3 {

struct ScoreOptions {
  std::vector<ops::CaptionLoss> modes = {ops::CaptionLoss::kMean};
  Direction direction = Direction::kCaptionToSmiles;
  int k = -1;                      // rewrites per molecule used (c_0..c_k); -1 = every caption present
  int64_t batch_size = 8;          // groups per batch
  int64_t max_source_length = 512; // tokens including eos; longer ones are truncated (counted)
  int64_t max_target_length = 512;
  bool per_row = false;            // also return every row's NLL
};

struct ModeScore {
  ops::CaptionLoss mode = ops::CaptionLoss::kMean;
  double loss = 0.0;        // sum over groups of L_g / sum of normalisers
  double normaliser = 0.0;  // the target tokens it was divided by
  int64_t groups = 0;
  int64_t rows = 0;
};

struct RowScore {
  std::string cid;
  int caption = 0;              // 0 = the original caption, j = rewrite j
  std::string source;           // "file:line" of the molecule
  int64_t target_tokens = 0;    // counted target tokens (eos included)
  double nll = 0.0;             // -sum_t log p(y_t)
};

struct DatasetScore {
  std::vector<ModeScore> modes;  // in the order asked
  std::vector<RowScore> rows;    // per_row: molecule order, caption order within a molecule
  int64_t molecules = 0;
  int k = 0;                     // the k used
  TokenizeReport tokenize;
};

// Errors (InvalidArgument) name the problem: no records, token_mixture on smiles2caption
// (its rows do not share a target), a bad batch size or length.
absl::StatusOr<DatasetScore> score_dataset(const T5Model& model, const Tokenizer& tokenizer,
                                           const std::vector<MoleculeRecord>& records, const ScoreOptions& options);

}  // namespace la3
