// Text generation with the semantics of transformers' generate() (pinned: 4.46.3) for
// encoder-decoder models: greedy search (num_beams 1), beam search (BeamSearchScorer:
// 2 * num_beams candidates per step, eos candidates ranked below num_beams ignored,
// hypothesis score = sum of log-probabilities / generated_length ** length_penalty,
// early_stopping true / false / "never"), and the logits processors min_length,
// no_repeat_ngram_size and repetition_penalty. Sampling (temperature, top-k, top-p, seeded
// Philox draws) is an option of greedy search. Decoding is incremental (t5_decoding.h) and
// stays on the model's device: the processors, log-softmax and top-k run there
// (engine/ops/decoding.h), and a step reads back only the k best ids and scores per input
// (beam search: 2 * num_beams; greedy: the best id and its log-probability; sampling: top_k,
// or the whole vocabulary when top_k is 0) and the step's ids (the embedding's range check).
// The beam bookkeeping (hypotheses, eos handling, top-p and the draw) runs on the host.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/tensor.h"
#include "model/t5_model.h"

namespace la3 {

enum class EarlyStopping { kFalse, kTrue, kNever };

struct GenerationOptions {
  int num_beams = 1;
  double length_penalty = 1.0;
  EarlyStopping early_stopping = EarlyStopping::kFalse;
  // Length limits count the decoder start token, as transformers' max_length does.
  // max_new_tokens > 0 overrides max_length (max_length = 1 + max_new_tokens).
  int64_t max_length = 20;
  int64_t max_new_tokens = 0;
  int64_t min_length = 0;
  int no_repeat_ngram_size = 0;
  double repetition_penalty = 1.0;
  int num_return_sequences = 1;
  // Sampling (num_beams == 1 only).
  bool do_sample = false;
  double temperature = 1.0;
  int top_k = 50;
  double top_p = 1.0;
  uint64_t seed = 0;
  // Validity-aware ranking for caption -> SMILES (beam search): when set, the finished
  // hypotheses it accepts (e.g. SMILES that RDKit parses) are returned before the ones it
  // rejects, each group best score first. Called on the token ids, decoder start included.
  std::function<bool(const std::vector<int64_t>& tokens)> is_valid;
};

struct GeneratedSequence {
  std::vector<int64_t> tokens;  // decoder start, generated tokens, eos if produced (no padding)
  double score = 0.0;           // beam search: the length-penalised hypothesis score;
                                // greedy/sampling: sum of the chosen tokens' log-probabilities
};

// input_ids [batch, src_len], attention_mask [batch, src_len] or undefined ->
// num_return_sequences sequences per input, best first. Errors (bad options, shapes) are
// InvalidArgument naming the option; nothing aborts.
absl::StatusOr<std::vector<std::vector<GeneratedSequence>>> generate(const T5Model& model, const Tensor& input_ids,
                                                                     const Tensor& attention_mask,
                                                                     const GenerationOptions& options);

}  // namespace la3
