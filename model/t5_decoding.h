// Incremental T5 decoding with a key/value cache, for generation.
//
// T5Decoder::start runs nothing but the cross-attention projections: every decoder layer's
// cross-attention K and V are computed once per input from the encoder output. Each
// T5Decoder::step then runs the decoder stack of T5Model::decode (the same function,
// T5Model::decoder_forward) on one new token per row: self-attention reads the cached
// keys/values of the earlier tokens (the new K/V are stored first) and the step returns the
// next-token logits. T5Decoder::reorder follows the beams. Rows are independent: a batch of
// inputs times beams.
//
// The cache stays on the model's device and is allocated once: the self-attention keys and
// values for the maximum length, one position written per step (ops::write_cache_position)
// and rows reordered in place (ops::reorder_rows_in_place). Attention reads the whole
// preallocated length: with the query at position `steps` the causal mask hides every
// position not yet written (which holds zeros, so nothing undefined is ever multiplied).
#pragma once

#include <cstdint>
#include <vector>

#include "engine/tensor.h"
#include "model/t5_model.h"

namespace la3 {

struct T5DecodingCache {
  Tensor encoder_mask;                 // [rows, src_len] i32 key flags or undefined
  std::vector<Tensor> cross_keys;      // per layer [rows, src_len, heads, d_kv]
  std::vector<Tensor> cross_values;    // per layer [rows, src_len, heads, d_kv]
  // [2 * layers, rows, max_steps, heads, d_kv]: layer l's keys at 2l, its values at 2l + 1.
  Tensor self_key_values;
  int64_t steps = 0;                   // tokens decoded so far
  int64_t rows = 0;
  int64_t max_steps = 0;               // positions the cache holds
  int64_t copies = 1;                  // rows per input (beams); reorder stays within them

  // Stores the new position's self-attention keys/values of decoder layer `layer`
  // ([rows, 1, heads, d_kv] each) and returns the keys/values attention reads.
  T5KeyValues store_self(int64_t layer, const T5KeyValues& step);
  // The cross-attention keys/values of decoder layer `layer`.
  T5KeyValues cross(int64_t layer) const;
};

class T5Decoder {
 public:
  explicit T5Decoder(const T5Model& model) : model_(model) {}

  // encoder_hidden [batch, src_len, d_model] (from T5Model::encode), encoder_mask
  // [batch, src_len] (nonzero = token) or undefined; each input row is repeated `copies`
  // times (beams); the cache holds max_steps decoder positions.
  T5DecodingCache start(const Tensor& encoder_hidden, const Tensor& encoder_mask, int64_t copies,
                        int64_t max_steps) const;

  // tokens: one id per cache row -> logits [rows, vocab] for the next position.
  Tensor step(T5DecodingCache& cache, const std::vector<int64_t>& tokens) const;

  // Keeps, for every new row r, the old row rows[r] (beam reordering, on the device, in
  // place); rows[r] must belong to r's input (the same block of `copies` rows).
  static void reorder(T5DecodingCache& cache, const std::vector<int64_t>& rows);

 private:
  const T5Model& model_;
};

// Rows `rows` of a tensor along dimension 0 (a copy).
Tensor gather_rows(const Tensor& tensor, const std::vector<int64_t>& rows);

}  // namespace la3
