// Parameters of the incremental-decoding ops (engine/ops/decoding.h): the key/value cache
// write and beam reorder, the logits processors and the top-k selection. Sizes and options
// only, like kernels/op_params.h, so the CPU backend and kernels/decoding.cuh share them.
#pragma once

#include <cstdint>

namespace la3::kernels {

// dst[r * dst_row_stride + dst_offset + e] = src[r * width + e] for r < rows, e < width:
// one new position per row written into a cache preallocated for the maximum length.
struct CacheWriteParams {
  int64_t rows = 0;
  int64_t width = 0;
  int64_t dst_row_stride = 0;
  int64_t dst_offset = 0;
};

// `segments` buffers of `rows` rows each (segment s at data + s * segment_stride, row r at
// + r * row_stride); in each, the first `width` elements of row r become those of row
// source_rows[r] (all reads before any write: an in-place gather). Rows move only within
// their group of `group` consecutive rows (the beams of one input).
struct RowReorderParams {
  int64_t segments = 0;
  int64_t rows = 0;
  int64_t group = 1;
  int64_t row_stride = 0;
  int64_t segment_stride = 0;
  int64_t width = 0;
};

// transformers' logits processors over [rows, vocab] scores, given each row's tokens so far
// (history [rows, history_len], decoder start included), in transformers' order:
//   scores = log_softmax(logits) when log_softmax (beam search), else the logits;
//   repetition penalty (each distinct history token: s < 0 ? s * penalty : s / penalty);
//   no-repeat n-gram (-inf for every token that would repeat an n-gram of the history);
//   min length (-inf for eos when ban_eos);
//   then scores / temperature (when temperature != 1, in double as sampling does) and
//   + beam_scores[row] (when given).
struct LogitsProcessParams {
  int64_t rows = 0;
  int64_t vocab = 0;
  int64_t history_len = 0;
  int64_t eos = 0;
  int32_t ban_eos = 0;
  int32_t log_softmax = 0;
  int32_t no_repeat_ngram = 0;
  float repetition_penalty = 1.0f;
  double temperature = 1.0;
};

// The k best of each of `groups` rows of n scores, best first, in torch.topk's order (higher
// score first, the lower index first among equal scores).
struct TopKParams {
  int64_t groups = 0;
  int64_t n = 0;
  int64_t k = 0;
};

}  // namespace la3::kernels
