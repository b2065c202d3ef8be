// Ops of incremental decoding (inference only, no autograd): the key/value cache preallocated
// for the maximum length (a position written per step, rows reordered in place by beam), and
// the next-token selection on the model's device: logits processors, log-softmax and top-k,
// so only k ids and scores per group are read back (model/generation.cc).
#pragma once

#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace la3::ops {

// cache f32 [rows, max_len, ...] contiguous, step f32 [rows, 1, ...] with the same trailing
// sizes: cache[:, position] = step[:, 0].
void write_cache_position(const Tensor& cache, const Tensor& step, int64_t position);

// buffer f32 [segments, rows, row_elements] contiguous: in every segment, the first `width`
// elements of row r become those of row source_rows[r], in place. source_rows (host, one per
// row) keeps every row in its group of `group` consecutive rows (the beams of one input).
void reorder_rows_in_place(const Tensor& buffer, const std::vector<int64_t>& source_rows, int64_t width, int64_t group);

struct LogitsProcessing {
  bool log_softmax = false;         // beam search: process log-probabilities, not logits
  bool want_log_probs = false;      // also return log_softmax(logits) (greedy scores)
  float repetition_penalty = 1.0f;  // 1: off
  int no_repeat_ngram = 0;          // 0: off
  bool ban_eos = false;             // min length not reached
  int64_t eos = 0;
  double temperature = 1.0;  // sampling
};
struct ProcessedLogits {
  Tensor scores;     // [rows, vocab]
  Tensor log_probs;  // [rows, vocab] when asked for
};
// logits f32 [rows, vocab]; history i64 [rows, len] (the tokens so far, decoder start
// included; ids outside the vocabulary are ignored); beam_scores f32 [rows] or undefined
// (added last). All on one device. kernels/decoding_params.h has the order of the processors.
ProcessedLogits process_logits(const Tensor& logits, const Tensor& history, const Tensor& beam_scores,
                               const LogitsProcessing& options);

struct TopK {
  Tensor indices;    // i64 [groups, k]
  Tensor values;     // f32 [groups, k]
  Tensor companion;  // f32 [groups, k]: companion[g, indices[g, j]], when a companion was given
};
// The k best of each row of scores f32 [groups, n] (1 <= k <= n), best first, lower index
// first among equal scores (torch.topk); companion, when defined, has the scores' shape.
TopK top_k(const Tensor& scores, int64_t k, const Tensor& companion);

}  // namespace la3::ops
