// Fused T5 attention kernels (f32), the CUDA counterpart of engine/cpu/attention_cpu.cc:
// scores = scale q.k + bias(bucket(key - query), head) (bucket computed in the kernel from
// the [num_buckets, heads] table, never a [heads, q, k] tensor), padding and causal masks,
// softmax, dropout on the probabilities (the shared Philox stream), probabilities times v.
// Layouts as kernels::AttentionParams: q [b, q_len, h, d], k/v [b, k_len, h, d].
//
// One block per (query row, head, batch). Forward keeps the row's scores in dynamic shared
// memory (k_len floats) and saves the row's log-sum-exp; backward recomputes the
// probabilities from it (nothing [q, k]-sized is stored) and accumulates dk, dv and the bias
// gradient with atomics (so their last bits depend on the order on a GPU).
#pragma once

#include <cfloat>
#include <cstdint>

#include "kernels/block_reduce.cuh"
#include "kernels/op_params.h"
#include "kernels/philox.cuh"
#include "kernels/relative_position.cuh"
#include "kernels/simt/simt.h"

namespace la3::kernels {

constexpr unsigned int kAttentionThreads = 128;

__device__ __forceinline__ bool attention_masked(const AttentionParams& p, const int32_t* key_mask, int64_t b,
                                                 int64_t i, int64_t j) {
  if (p.has_key_mask && key_mask[b * p.k_len + j] == 0) return true;
  return p.causal && j > p.query_offset + i;
}

__device__ __forceinline__ float attention_keep(const AttentionParams& p, int64_t b, int64_t h, int64_t i, int64_t j) {
  if (p.dropout.p <= 0.0f) return 1.0f;
  const uint64_t index = static_cast<uint64_t>(((b * p.heads + h) * p.q_len + i) * p.k_len + j);
  return dropout_keep(p.dropout.p, p.dropout.seed, p.dropout.step, p.dropout.stream, index) ? 1.0f / (1.0f - p.dropout.p)
                                                                                            : 0.0f;
}

// Raw score (before masking) of query i and key j in head h of batch item b.
__device__ __forceinline__ float attention_score(const AttentionParams& p, const float* q, const float* k,
                                                 const float* bias_table, int64_t b, int64_t h, int64_t i, int64_t j) {
  const int64_t row = p.heads * p.head_dim;
  const float* q_row = q + (b * p.q_len + i) * row + h * p.head_dim;
  const float* k_row = k + (b * p.k_len + j) * row + h * p.head_dim;
  float dot = 0.0f;
  for (int64_t d = 0; d < p.head_dim; ++d) dot += q_row[d] * k_row[d];
  float score = p.scale * dot;
  if (p.has_bias) {
    const int bucket = t5_relative_position_bucket(static_cast<int>(j - (p.query_offset + i)), p.bidirectional,
                                                   p.num_buckets, p.max_distance);
    score += bias_table[bucket * p.heads + h];
  }
  return score;
}

// Grid (q_len, heads, batch), block kAttentionThreads, dynamic shared k_len floats.
// row_lse[b, h, i] = log-sum-exp of the visible scores (+inf marks a fully masked row).
__global__ void attention_forward_kernel(AttentionParams p, const float* q, const float* k, const float* v,
                                         const float* bias_table, const int32_t* key_mask, float* out,
                                         float* row_lse) {
  LA3_DYNAMIC_SHARED(float, probs);
  __shared__ float scratch[kAttentionThreads / 32];
  const int64_t i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  float local_max = -FLT_MAX;
  for (int64_t j = threadIdx.x; j < p.k_len; j += blockDim.x) {
    const bool masked = attention_masked(p, key_mask, b, i, j);
    const float s = masked ? -FLT_MAX : attention_score(p, q, k, bias_table, b, h, i, j);
    probs[j] = s;
    if (!masked) local_max = fmaxf(local_max, s);
  }
  __syncthreads();
  const float max_score = block_max(local_max, scratch);
  const bool all_masked = max_score == -FLT_MAX;
  float local_sum = 0.0f;
  for (int64_t j = threadIdx.x; j < p.k_len; j += blockDim.x) {
    const bool masked = attention_masked(p, key_mask, b, i, j);
    float e = all_masked ? 1.0f : (masked ? 0.0f : expf(probs[j] - max_score));
    if (fabsf(e) < FLT_MIN) e = 0.0f;
    probs[j] = e;
    local_sum += e;
  }
  const float sum = block_sum(local_sum, scratch);  // its barriers also publish probs[]
  const float inverse = 1.0f / sum;
  if (threadIdx.x == 0) row_lse[(b * p.heads + h) * p.q_len + i] = all_masked ? INFINITY : max_score + logf(sum);
  const int64_t row = p.heads * p.head_dim;
  for (int64_t d = threadIdx.x; d < p.head_dim; d += blockDim.x) {
    float acc = 0.0f;
    for (int64_t j = 0; j < p.k_len; ++j) {
      acc += probs[j] * inverse * attention_keep(p, b, h, i, j) * v[(b * p.k_len + j) * row + h * p.head_dim + d];
    }
    out[(b * p.q_len + i) * row + h * p.head_dim + d] = acc;
  }
}

// The probability of key j recomputed from the saved log-sum-exp.
__device__ __forceinline__ float attention_probability(const AttentionParams& p, const float* q, const float* k,
                                                       const float* bias_table, const int32_t* key_mask, float lse,
                                                       int64_t b, int64_t h, int64_t i, int64_t j) {
  if (lse == INFINITY) return 1.0f / static_cast<float>(p.k_len);  // fully masked row: uniform
  if (attention_masked(p, key_mask, b, i, j)) return 0.0f;
  const float e = expf(attention_score(p, q, k, bias_table, b, h, i, j) - lse);
  return fabsf(e) < FLT_MIN ? 0.0f : e;
}

// Grid (q_len, heads, batch), block kAttentionThreads, dynamic shared 2 * k_len floats.
// dq overwritten; dk, dv and dbias_table accumulated (zero them before the launch).
__global__ void attention_backward_kernel(AttentionParams p, const float* dout, const float* q, const float* k,
                                          const float* v, const float* bias_table, const int32_t* key_mask,
                                          const float* row_lse, float* dq, float* dk, float* dv, float* dbias_table) {
  LA3_DYNAMIC_SHARED(float, buffer);
  float* probs = buffer;             // [k_len]
  float* dscores = buffer + p.k_len;  // [k_len]
  __shared__ float scratch[kAttentionThreads / 32];
  const int64_t i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int64_t row = p.heads * p.head_dim;
  const float lse = row_lse[(b * p.heads + h) * p.q_len + i];
  const float* dout_row = dout + (b * p.q_len + i) * row + h * p.head_dim;
  float local_dot = 0.0f;
  for (int64_t j = threadIdx.x; j < p.k_len; j += blockDim.x) {
    const float prob = attention_probability(p, q, k, bias_table, key_mask, lse, b, h, i, j);
    const float keep = attention_keep(p, b, h, i, j);
    float dprob = 0.0f;  // dO . v_j, through dropout
    for (int64_t d = 0; d < p.head_dim; ++d) dprob += dout_row[d] * v[(b * p.k_len + j) * row + h * p.head_dim + d];
    dprob *= keep;
    probs[j] = prob;
    dscores[j] = dprob;
    local_dot += prob * dprob;
    // dV_j += P_dropped[j] dO
    for (int64_t d = 0; d < p.head_dim; ++d) {
      atomicAdd(&dv[(b * p.k_len + j) * row + h * p.head_dim + d], prob * keep * dout_row[d]);
    }
  }
  const float dot = block_sum(local_dot, scratch);
  const bool all_masked = lse == INFINITY;
  for (int64_t j = threadIdx.x; j < p.k_len; j += blockDim.x) {
    const float ds = all_masked ? 0.0f : probs[j] * (dscores[j] - dot);
    dscores[j] = ds;
    const float* q_row = q + (b * p.q_len + i) * row + h * p.head_dim;
    for (int64_t d = 0; d < p.head_dim; ++d) atomicAdd(&dk[(b * p.k_len + j) * row + h * p.head_dim + d], p.scale * ds * q_row[d]);
    if (p.has_bias && dbias_table != nullptr && ds != 0.0f) {
      const int bucket = t5_relative_position_bucket(static_cast<int>(j - (p.query_offset + i)), p.bidirectional,
                                                     p.num_buckets, p.max_distance);
      atomicAdd(&dbias_table[bucket * p.heads + h], ds);
    }
  }
  __syncthreads();
  for (int64_t d = threadIdx.x; d < p.head_dim; d += blockDim.x) {
    float acc = 0.0f;
    for (int64_t j = 0; j < p.k_len; ++j) acc += dscores[j] * k[(b * p.k_len + j) * row + h * p.head_dim + d];
    dq[(b * p.q_len + i) * row + h * p.head_dim + d] = p.scale * acc;
  }
}

}  // namespace la3::kernels
