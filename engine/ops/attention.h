// T5 attention core (differentiable in q, k, v and the relative-position table):
//   out = dropout(softmax(q k^T * scale + position_bias + mask)) v
// with the relative-position bias looked up per (query, key) pair from a
// [num_buckets, heads] table through t5_relative_position_bucket (computed on the fly,
// never materialised as [heads, q_len, k_len]) and masks for padding keys and causality.
//
// Masked keys get probability exactly 0. A query row whose keys are all masked gets a
// uniform distribution over all keys (what transformers' additive finfo.min mask produces in
// fp32) and, being constant, passes no gradient to its scores.
#pragma once

#include "engine/tensor.h"
#include "kernels/op_params.h"

namespace la3::ops {

struct AttentionOptions {
  float scale = 1.0f;  // T5: no 1/sqrt(d) scaling
  bool causal = false;
  int64_t query_offset = 0;  // position of query 0 among the keys (cached decoding)
  bool bidirectional = true;  // bucket function direction (encoder: true, decoder: false)
  int num_buckets = 32;
  int max_distance = 128;
  // On the attention probabilities. Element (b, h, i, j) is keyed by the global row
  // (dropout.row_offset + b) * heads + h, the absolute query position query_offset + i and the
  // key j (kernels/dropout_key.cuh): independent of padding and of how the global batch is
  // split; needs query_offset + q_len < 2^16 and k_len <= 2^16. The layout fields are unused.
  kernels::DropoutParams dropout;
  bool training = false;           // dropout only applies when training
};

// q [batch, q_len, heads, head_dim], k and v [batch, k_len, heads, head_dim],
// bias_table [num_buckets, heads] or undefined (no position bias),
// key_mask [batch, k_len] (i32/i64/f32; nonzero = attend) or undefined
// -> [batch, q_len, heads, head_dim].
// A key mask (any dtype; nonzero = attend) as the contiguous int32 flags the backends read.
// Attention converts other dtypes itself; callers that reuse one mask across many attention
// calls convert it once (on a GPU device the conversion goes through the host).
Tensor key_mask_as_flags(const Tensor& mask);

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias_table,
                 const Tensor& key_mask, const AttentionOptions& options = {});

}  // namespace la3::ops
