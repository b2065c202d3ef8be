// Plain parameter structs shared by every backend of an op (cpu, cuda, cuda-emu). They hold
// sizes and options only, never tensors: kernels know nothing of Tensor (docs/ARCHITECTURE.md).
#pragma once

#include <cstdint>

#include "engine/dtype.h"

namespace la3::kernels {

// C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b], row-major, for b in [0, batch).
// op(X) = X^T when trans_x. A is m x k after op, B is k x n after op, C is m x n.
struct GemmParams {
  bool trans_a = false;
  bool trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  float alpha = 1.0f;
  float beta = 0.0f;
  int64_t lda = 0, ldb = 0, ldc = 0;  // row strides (elements) of A, B, C as stored
  int64_t batch = 1;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;  // elements between batch items (0 = shared)
  // Element types of the operands as stored (engine/backend_ops.h, gemm): f32 or bf16.
  DType a_type = DType::kF32, b_type = DType::kF32, c_type = DType::kF32;
};

// Elementwise binary op on `count` elements of `a` with `b` repeating every `b_period`
// elements (b_period == count: same shape; smaller: b broadcast over leading dimensions).
struct BinaryParams {
  int64_t count = 0;
  int64_t b_period = 0;
};

// T5 RMSNorm over rows of length `cols`: y = x * rsqrt(mean(x^2) + eps) * weight.
struct RmsNormParams {
  int64_t rows = 0;
  int64_t cols = 0;
  float eps = 1e-6f;
};

// Softmax over the last dimension.
struct SoftmaxParams {
  int64_t rows = 0;
  int64_t cols = 0;
};

// Which random stream a dropout mask comes from (kernels/philox.cuh) and where each element
// sits in the global batch (its Philox key, kernels/dropout_key.cuh).
struct DropoutParams {
  float p = 0.0f;  // probability of zeroing an element
  uint64_t seed = 0;
  uint64_t step = 0;
  uint32_t stream = 0;
  // Global index of this batch's row 0 (set by the caller: the first example of this rank's
  // or micro-batch's slice of the global batch), so an example keeps its mask however the
  // global batch is split. For attention the row is the batch item (its heads are sub-rows).
  int64_t row_offset = 0;
  // The tensor as [rows, positions, width]: rows = shape[0], positions = product of the middle
  // dimensions (1 for rank <= 2), width = last dimension (1 for rank <= 1). ops::dropout fills
  // these from the shape; attention ignores them (its layout is in AttentionParams).
  int64_t positions = 1;
  int64_t width = 1;
};

// Fused T5 attention: out = softmax(q k^T * scale + bias + mask) v, per batch and head.
// Layouts (contiguous): q [batch, q_len, heads, head_dim], k and v [batch, k_len, heads, head_dim],
// out [batch, q_len, heads, head_dim], probs [batch, heads, q_len, k_len] (saved for backward),
// bias table [num_buckets, heads], key_mask [batch, k_len] (nonzero = attend).
struct AttentionParams {
  int64_t batch = 0, heads = 0, q_len = 0, k_len = 0, head_dim = 0;
  float scale = 1.0f;  // T5 uses none (1.0): the 1/sqrt(d) is folded into its initialisation
  bool causal = false;
  // Position of query row 0 among the keys (incremental decoding: cache length before the step).
  int64_t query_offset = 0;
  bool has_bias = false;
  bool bidirectional = true;
  int num_buckets = 32;
  int max_distance = 128;
  bool has_key_mask = false;
  DropoutParams dropout;  // applied to the probabilities, as transformers' T5Attention
};

// Gather rows of an embedding table: out[i] = table[ids[i]].
struct EmbeddingParams {
  int64_t count = 0;  // number of ids
  int64_t vocab = 0;
  int64_t dim = 0;
};

// Token cross-entropy over rows of `vocab` logits; rows whose label is ignore_index are skipped.
struct CrossEntropyParams {
  int64_t rows = 0;
  int64_t vocab = 0;
  int64_t ignore_index = -100;
};

// The k+1-caption aggregated loss (docs/ARCHITECTURE.md; kernels/caption_loss.cuh). Tokens are the
// rows * length (row, position) pairs of logits [rows, length, vocab]; group ids are in
// [0, groups) and every group has at least one row (the op validates them).
enum class CaptionLossMode : int { kMean = 0, kTokenMixture = 1, kSequenceMixture = 2 };
struct CaptionLossParams {
  int64_t rows = 0;            // captions (rows of the batch)
  int64_t length = 0;          // target positions per row
  int64_t vocab = 0;
  int64_t groups = 0;          // molecules
  int64_t max_group_rows = 0;  // k + 1 of the largest group
  CaptionLossMode mode = CaptionLossMode::kMean;
  int64_t ignore_index = -100;
  // What sum_g L_g is divided by. 0: this batch's own normaliser (target tokens counted once
  // per group, the mean over the group's rows for sequence_mixture). > 0: this value, e.g. the
  // normaliser of the whole global batch when this batch is one rank's or one micro-batch's
  // slice of it, so the slices' losses and gradients add up to the whole batch's.
  double normaliser = 0.0;
};

// One AdamW step (torch.optim.AdamW semantics; decoupled weight decay, bias correction).
// Hyper-parameters are doubles, like the Python floats torch keeps them in: 1 - beta2 must be
// 0.001 exactly-as-double before it is rounded to fp32, not 1 - float(0.999).
struct AdamWParams {
  int64_t count = 0;
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  int64_t step = 1;  // 1-based step number after this update (for the bias corrections)
  // The gradient is read as grad * grad_scale, rounded to fp32 as a separate multiply would:
  // gradient clipping folded into the update (torch scales the gradients in place, then
  // steps; this is the same arithmetic without a pass over every gradient). 1 = no clipping.
  float grad_scale = 1.0f;
};

// One tensor of a multi-tensor AdamW step (Backend::adamw_step_multi): its master weights,
// gradient, moments and optional bf16 copy (nullptr: none), `count` elements each. Everything
// per step (lr, betas, step, weight decay, grad_scale) is in AdamWParams and shared.
struct AdamWTensor {
  float* param = nullptr;
  const float* grad = nullptr;
  float* exp_avg = nullptr;
  float* exp_avg_sq = nullptr;
  uint16_t* param_bf16 = nullptr;
  int64_t count = 0;
};

}  // namespace la3::kernels
