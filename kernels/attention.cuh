// Fused T5 attention kernels, tiled in the FlashAttention-2 manner; the CUDA counterpart
// of engine/cpu/attention_cpu.cc:
//   S = scale q.k + bias(bucket(key - query), head)   (bucket computed here from the
//       [num_buckets, heads] table, never a [heads, q, k] tensor), padding and causal masks,
//   P = softmax(S), O = dropout(P) v                  (dropout: the shared Philox stream, keyed
//       by (global row, absolute query, key): kernels/dropout_key.cuh).
// Layouts as kernels::AttentionParams: q/out [b, q_len, h, d], k/v [b, k_len, h, d].
//
// Activation types: every kernel is a template over the storage T of the activations (q, k,
// v, out, dout, dq, dk, dv): float, or uint16_t bf16 bits (kernels/bf16.cuh). Each global
// load widens with load_act, each global store rounds once with store_act; everything in
// between is fp32 as in FlashAttention-2: the scores, the online-softmax statistics, the
// log-sum-exp, D, and every accumulator (o, dK, dV, dQ, dbias). The bias table, its gradient
// and the saved log-sum-exp stay f32 whatever T is.
// The shared-memory tiles stay fp32 for both types: each tile element is loaded (and
// converted) once and then read by many dot products, so converting at the load is the
// cheapest place; the tile shapes and the tile choosers are the same for both types (bf16 runs
// the f32 kernel's exact schedule, and T = float is the kernel as it was, bit for bit); and at
// T5's head_dim 64 the largest tiles fit already, so bf16 tiles would buy no larger tile.
// dQ is summed over key tiles with atomics: with T = float straight into dq, with bf16 into an
// f32 accumulator in the launch's scratch, rounded to dq once at the end (an atomic add into
// bf16 would round at every key tile).
//
// Forward: one block per (tile of Br query rows, head, batch), kAttentionThreads threads =
// kAttentionWarps warps, each warp owning Br / kAttentionWarps rows. The keys stream through
// shared memory in tiles of kAttentionKeyTile = 32 (one key per lane), with an online
// softmax (running max and sum per row in shared memory, computed by every lane of the owning
// warp, stored by lane 0) and the output accumulated in shared memory (each element always
// touched by the same lane). Causal blocks stop after their last visible key tile. Saves the
// row log-sum-exp (+inf marks a fully masked row). Nothing is k_len-sized.
//
// Backward: attention_row_dot_kernel computes D = rowsum(dO * O); then one block per (tile of
// Bc keys, head, batch) keeps its K, V tile and its dK, dV accumulators in shared memory and
// loops over all query tiles of Br rows, recomputing P from Q, K and the saved log-sum-exp:
//   dV += Pdrop^T dO,  dP = keep * dO V^T,  dS = P (dP - D),  dK += scale dS^T Q,
//   dQ += scale dS K   (atomics into dq, which the host zeroes: other key tiles add to it),
//   dbias[bucket] += dS (shared-memory partials per block, atomics into [buckets, heads]).
// dK and dV of a key tile belong to exactly one block, so they are plain stores.
//
// Fully masked rows (every key padded or in the future) behave as the CPU backend: uniform
// probabilities 1 / k_len over all keys (an all-masked row is given score 0 for every key,
// which the same online softmax turns into exactly that), no gradient to their scores (dS = 0),
// but dV still receives their (uniform) probabilities.
//
// Shared memory is sized from head_dim (and num_buckets) at launch: attention_forward_tiles /
// attention_backward_tiles pick the largest tiles whose dynamic bytes plus the kernels' static
// scratch (16 bytes) fit the 48 KB default per block; with num_buckets 32: forward Br 16 up to
// head_dim 121 (27 KB at 64), Br 8 up to 149 (42 KB at 128), Br 4 up to 167; backward
// (Bc, Br) = (32, 16) up to head_dim 69 (45 KB at 64), (16, 16) up to 121, (16, 8) up to 148
// (42 KB at 128; at 149 it needs exactly 48 KB dynamic, 16 bytes too many with the static
// scratch), then (8, 8), (8, 4) up to 303. Larger head_dim
// is refused at launch with a clear error.
#pragma once

#include <cfloat>
#include <cstddef>
#include <cstdint>

#include "kernels/bf16.cuh"
#include "kernels/dropout_key.cuh"
#include "kernels/host_device.h"
#include "kernels/op_params.h"
#include "kernels/philox.cuh"
#include "kernels/relative_position.cuh"
#include "kernels/launch.h"
#include "kernels/simt/simt.h"

namespace la3::kernels {

constexpr unsigned int kAttentionThreads = 128;
constexpr int kAttentionWarps = static_cast<int>(kAttentionThreads / 32);
constexpr int kAttentionKeyTile = 32;   // forward: one key of the tile per lane
constexpr int kAttentionMaxRowsPerWarp = 4;  // forward: Br <= 16
// Shared memory per block, static + dynamic: the default limit without opt-in. Both kernels
// declare `scratch` (kAttentionWarps ints) statically; the tile choosers leave room for it.
constexpr size_t kAttentionSharedLimit = kMaxSharedBytesPerBlock;
constexpr size_t kAttentionStaticSharedBytes = kAttentionWarps * sizeof(int);

// --- launch configuration (host) ------------------------------------------------------------

struct AttentionForwardTiles {
  int rows = 0;  // Br: query rows per block (kAttentionWarps * rows per warp); 0 = does not fit
  size_t shared_bytes = 0;
};

struct AttentionBackwardTiles {
  int keys = 0;  // Bc: keys per block; 0 = does not fit
  int rows = 0;  // Br: query rows per step of the block's loop
  size_t shared_bytes = 0;
};

LA3_HOST_DEVICE int64_t attention_bias_floats(const AttentionParams& p) { return p.has_bias ? p.num_buckets : 0; }

// Forward shared memory (floats): bias column [nb], q [Br][d], k [Bc][d + 1], v [Bc][d],
// dropped probabilities [Br][Bc], output accumulator [Br][d], row statistics [Br][3].
inline size_t attention_forward_shared_bytes(const AttentionParams& p, int rows) {
  const int64_t d = p.head_dim, bc = kAttentionKeyTile;
  const int64_t floats =
      attention_bias_floats(p) + rows * d + bc * (d + 1) + bc * d + rows * bc + rows * d + 3 * rows;
  return static_cast<size_t>(floats) * sizeof(float);
}

inline AttentionForwardTiles attention_forward_tiles(const AttentionParams& p) {
  for (int rows_per_warp = kAttentionMaxRowsPerWarp; rows_per_warp >= 1; rows_per_warp /= 2) {
    const int rows = rows_per_warp * kAttentionWarps;
    const size_t bytes = attention_forward_shared_bytes(p, rows);
    if (kAttentionStaticSharedBytes + bytes <= kAttentionSharedLimit) return {rows, bytes};
  }
  return {};
}

// Backward shared memory (floats): bias column and its gradient partials [2][nb], k and v
// [Bc][d + 1] each, q and dO [Br][d] each, dropped P and dS [Br][Bc] each, dK and dV
// accumulators [Bc][d] each, lse and D [Br] each.
inline size_t attention_backward_shared_bytes(const AttentionParams& p, int keys, int rows) {
  const int64_t d = p.head_dim;
  const int64_t floats = 2 * attention_bias_floats(p) + 2 * keys * (d + 1) + 2 * rows * d + 2 * rows * keys +
                         2 * keys * d + 2 * rows;
  return static_cast<size_t>(floats) * sizeof(float);
}

inline AttentionBackwardTiles attention_backward_tiles(const AttentionParams& p) {
  constexpr int kCandidates[][2] = {{32, 16}, {16, 16}, {16, 8}, {8, 8}, {8, 4}};
  for (const auto& candidate : kCandidates) {
    const size_t bytes = attention_backward_shared_bytes(p, candidate[0], candidate[1]);
    if (kAttentionStaticSharedBytes + bytes <= kAttentionSharedLimit) return {candidate[0], candidate[1], bytes};
  }
  return {};
}

// --- device helpers --------------------------------------------------------------------------

__device__ __forceinline__ bool attention_masked(const AttentionParams& p, const int32_t* key_mask, int64_t b,
                                                 int64_t i, int64_t j) {
  if (p.has_key_mask && key_mask[b * p.k_len + j] == 0) return true;
  return p.causal && j > p.query_offset + i;
}

// Row i sees no key at all: no unpadded key at or before min(k_len - 1, query_offset + i)
// (causal) or at all. `first_visible` is the first unpadded key of the batch item (k_len: none).
__device__ __forceinline__ bool attention_row_all_masked(const AttentionParams& p, int64_t first_visible, int64_t i) {
  const int64_t last_key = p.causal && p.query_offset + i < p.k_len - 1 ? p.query_offset + i : p.k_len - 1;
  return first_visible > last_key;
}

// The dropout multiplier (0 or 1 / (1 - p)) of probability (b, h, i, j), keyed by the batch
// item's global row and the absolute query position (kernels/dropout_key.cuh).
__device__ __forceinline__ float attention_keep(const AttentionParams& p, int64_t b, int64_t h, int64_t i, int64_t j) {
  if (p.dropout.p <= 0.0f) return 1.0f;
  const uint64_t key = attention_dropout_key(p, b, h, i, j);
  return dropout_keep(p.dropout.p, p.dropout.seed, p.dropout.step, p.dropout.stream, key) ? 1.0f / (1.0f - p.dropout.p)
                                                                                          : 0.0f;
}

__device__ __forceinline__ int attention_bucket(const AttentionParams& p, int64_t i, int64_t j) {
  return t5_relative_position_bucket(static_cast<int>(j - (p.query_offset + i)), p.bidirectional, p.num_buckets,
                                     p.max_distance);
}

// The first key of batch item b that is not padding (k_len when none), for the whole block.
// Contains barriers (also without a key mask): every thread of the block must call it, and
// they publish the shared-memory stores the caller made before. `scratch`: kAttentionWarps ints.
__device__ __forceinline__ int64_t attention_first_visible_key(const AttentionParams& p, const int32_t* key_mask,
                                                               int64_t b, int* scratch) {
  int first = p.has_key_mask ? static_cast<int>(p.k_len) : 0;
  for (int64_t j = threadIdx.x; p.has_key_mask && j < p.k_len; j += blockDim.x) {
    if (key_mask[b * p.k_len + j] != 0) {
      first = static_cast<int>(j);
      break;
    }
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    const int other = __shfl_xor_sync(0xffffffffu, first, offset);
    first = other < first ? other : first;
  }
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = first;
  __syncthreads();
  int result = scratch[0];
  for (int w = 1; w < kAttentionWarps; ++w) result = scratch[w] < result ? scratch[w] : result;
  __syncthreads();  // scratch may be reused
  return result;
}

__device__ __forceinline__ float warp_max(float value) {
  for (int offset = 16; offset > 0; offset /= 2) value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  return value;
}

__device__ __forceinline__ float warp_sum(float value) {
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

// --- forward -----------------------------------------------------------------------------------

// Grid (ceil(q_len / rows), heads, batch), block kAttentionThreads, dynamic shared
// attention_forward_shared_bytes(p, rows) with rows from attention_forward_tiles(p).
// row_lse[b, h, i] = log-sum-exp of the visible scores (+inf marks a fully masked row).
template <typename T>
__global__ void attention_forward_kernel(AttentionParams p, int rows, const T* q, const T* k, const T* v,
                                         const float* bias_table, const int32_t* key_mask, T* out, float* row_lse) {
  LA3_DYNAMIC_SHARED(float, shared);
  LA3_SHARED(int, scratch, [kAttentionWarps]);  // kAttentionStaticSharedBytes
  const int64_t d = p.head_dim, row_stride = p.heads * p.head_dim;
  const int64_t bias_floats = attention_bias_floats(p);
  float* bias_s = shared;                          // [nb]: this head's column of the table
  float* q_s = bias_s + bias_floats;               // [rows][d]
  float* k_s = q_s + rows * d;                     // [Bc][d + 1] (padded: lanes read different rows)
  float* v_s = k_s + kAttentionKeyTile * (d + 1);  // [Bc][d]
  float* p_s = v_s + kAttentionKeyTile * d;        // [rows][Bc]: dropped probabilities
  float* o_s = p_s + rows * kAttentionKeyTile;     // [rows][d]: output accumulator
  float* stats_s = o_s + rows * d;                 // [rows][3]: running max, running sum, rescale
  const int64_t h = blockIdx.y, b = blockIdx.z;
  const int64_t q0 = static_cast<int64_t>(blockIdx.x) * rows;
  const int warp = static_cast<int>(threadIdx.x / 32), lane = static_cast<int>(threadIdx.x % 32);
  const int rows_per_warp = rows / kAttentionWarps;
  // Warp `warp` owns rows [row_begin, row_end) of the block (those inside q_len): their
  // statistics (the same value in every lane, written by lane 0) and their output accumulator
  // (element dd by lane dd % 32).
  const int row_begin = warp * rows_per_warp;
  const int64_t rows_left = p.q_len - q0 - row_begin;
  const int row_end = row_begin + static_cast<int>(rows_left < rows_per_warp ? (rows_left > 0 ? rows_left : 0)
                                                                              : rows_per_warp);

  for (int64_t t = threadIdx.x; t < bias_floats; t += blockDim.x) bias_s[t] = bias_table[t * p.heads + h];
  for (int64_t e = threadIdx.x; e < rows * d; e += blockDim.x) {
    const int64_t i = q0 + e / d;
    q_s[e] = i < p.q_len ? load_act(q, (b * p.q_len + i) * row_stride + h * d + e % d) : 0.0f;
    o_s[e] = 0.0f;
  }
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    stats_s[3 * r] = -INFINITY;
    stats_s[3 * r + 1] = 0.0f;
    stats_s[3 * r + 2] = 1.0f;
  }
  const int64_t first_visible = attention_first_visible_key(p, key_mask, b, scratch);  // barriers publish the stores

  // Causal: keys after the block's last visible position are masked for every row, unless a
  // row is fully masked (then it attends uniformly to every key). All-masked rows are a
  // prefix of the rows, so the block's first row decides. Block-uniform.
  const int64_t last_row = (q0 + rows < p.q_len ? q0 + rows : p.q_len) - 1;
  const int64_t key_end = p.causal && !attention_row_all_masked(p, first_visible, q0) &&
                                  p.query_offset + last_row + 1 < p.k_len
                              ? p.query_offset + last_row + 1
                              : p.k_len;

  for (int64_t k0 = 0; k0 < key_end; k0 += kAttentionKeyTile) {
    __syncthreads();  // the previous tile's readers are done with k_s and v_s
    for (int64_t e = threadIdx.x; e < kAttentionKeyTile * d; e += blockDim.x) {
      const int64_t c = e / d, dd = e % d, j = k0 + c;
      const bool inside = j < p.k_len;
      k_s[c * (d + 1) + dd] = inside ? load_act(k, (b * p.k_len + j) * row_stride + h * d + dd) : 0.0f;
      v_s[e] = inside ? load_act(v, (b * p.k_len + j) * row_stride + h * d + dd) : 0.0f;
    }
    __syncthreads();
    const int64_t j = k0 + lane;
    for (int r = row_begin; r < row_end; ++r) {  // warp-uniform bounds
      const int64_t i = q0 + r;
      const bool all_masked = attention_row_all_masked(p, first_visible, i);
      const bool visible = j < p.k_len && (all_masked || !attention_masked(p, key_mask, b, i, j));
      float score = 0.0f;  // an all-masked row: every key scores 0, i.e. uniform probabilities
      if (visible && !all_masked) {
        float dot = 0.0f;
        const float* q_row = q_s + r * d;
        const float* k_row = k_s + lane * (d + 1);
        for (int64_t dd = 0; dd < d; ++dd) dot += q_row[dd] * k_row[dd];
        score = p.scale * dot;
        if (p.has_bias) score += bias_s[attention_bucket(p, i, j)];
      }
      const float old_max = stats_s[3 * r], old_sum = stats_s[3 * r + 1];
      const float new_max = fmaxf(old_max, warp_max(visible ? score : -INFINITY));
      float prob = 0.0f, rescale = 1.0f;
      if (new_max != -INFINITY) {
        rescale = expf(old_max - new_max);  // exp(-inf) = 0 on the first tile with a visible key
        if (visible) prob = expf(score - new_max);
      }
      const float new_sum = old_sum * rescale + warp_sum(prob);
      p_s[r * kAttentionKeyTile + lane] = visible ? prob * attention_keep(p, b, h, i, j) : 0.0f;
      __syncwarp();  // every lane has read the old statistics
      if (lane == 0) {
        stats_s[3 * r] = new_max;
        stats_s[3 * r + 1] = new_sum;
        stats_s[3 * r + 2] = rescale;
      }
    }
    __syncwarp();  // the warp's probabilities and statistics are visible to all its lanes
    for (int r = row_begin; r < row_end; ++r) {
      const float rescale = stats_s[3 * r + 2];
      const float* p_row = p_s + r * kAttentionKeyTile;
      for (int64_t dd = lane; dd < d; dd += 32) {
        float acc = o_s[r * d + dd] * rescale;
        for (int c = 0; c < kAttentionKeyTile; ++c) acc += p_row[c] * v_s[c * d + dd];
        o_s[r * d + dd] = acc;
      }
    }
  }
  __syncwarp();  // lane 0's last statistics
  for (int r = row_begin; r < row_end; ++r) {
    const int64_t i = q0 + r;
    const float row_max = stats_s[3 * r], row_sum = stats_s[3 * r + 1];
    const float inverse = 1.0f / row_sum;  // row_sum >= 1: the row's maximum contributes exp(0)
    for (int64_t dd = lane; dd < d; dd += 32) {
      store_act(out, (b * p.q_len + i) * row_stride + h * d + dd, o_s[r * d + dd] * inverse);
    }
    if (lane == 0) {
      row_lse[(b * p.heads + h) * p.q_len + i] =
          attention_row_all_masked(p, first_visible, i) ? INFINITY : row_max + logf(row_sum);
    }
  }
}

// --- backward ------------------------------------------------------------------------------------

// D[b, h, i] = dO[b, i, h, :] . O[b, i, h, :] (= sum_j P_ij dP_ij, dropout included).
// Grid ceil(batch * heads * q_len / kAttentionThreads), block kAttentionThreads.
template <typename T>
__global__ void attention_row_dot_kernel(AttentionParams p, const T* dout, const T* out, float* row_dot) {
  const int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;  // (b * heads + h) * q_len + i
  if (index >= p.batch * p.heads * p.q_len) return;
  const int64_t i = index % p.q_len, h = (index / p.q_len) % p.heads, b = index / (p.q_len * p.heads);
  const int64_t offset = (b * p.q_len + i) * p.heads * p.head_dim + h * p.head_dim;
  float acc = 0.0f;
  for (int64_t dd = 0; dd < p.head_dim; ++dd) acc += load_act(dout, offset + dd) * load_act(out, offset + dd);
  row_dot[index] = acc;
}

// Grid (ceil(k_len / keys), heads, batch), block kAttentionThreads, dynamic shared
// attention_backward_shared_bytes(p, keys, rows) with keys/rows from attention_backward_tiles.
// dk, dv overwritten; dq_accum (f32, [b, q_len, h, d]) and dbias_table accumulated (zero
// dq_accum before the launch).
template <typename T>
__global__ void attention_backward_kernel(AttentionParams p, int keys, int rows, const T* dout, const T* q, const T* k,
                                          const T* v, const float* bias_table, const int32_t* key_mask,
                                          const float* row_lse, const float* row_dot, float* dq_accum, T* dk, T* dv,
                                          float* dbias_table) {
  LA3_DYNAMIC_SHARED(float, shared);
  LA3_SHARED(int, scratch, [kAttentionWarps]);  // kAttentionStaticSharedBytes
  const int64_t d = p.head_dim, row_stride = p.heads * p.head_dim;
  const int64_t bias_floats = attention_bias_floats(p);
  const bool want_dbias = p.has_bias && dbias_table != nullptr;
  float* bias_s = shared;                 // [nb]
  float* dbias_s = bias_s + bias_floats;  // [nb]: this block's dS sum per bucket
  float* k_s = dbias_s + bias_floats;     // [Bc][d + 1]
  float* v_s = k_s + keys * (d + 1);      // [Bc][d + 1]
  float* q_s = v_s + keys * (d + 1);      // [Br][d]
  float* do_s = q_s + rows * d;           // [Br][d]
  float* pd_s = do_s + rows * d;          // [Br][Bc]: dropped probabilities
  float* ds_s = pd_s + rows * keys;       // [Br][Bc]: dS
  float* dk_s = ds_s + rows * keys;       // [Bc][d]
  float* dv_s = dk_s + keys * d;          // [Bc][d]
  float* lse_s = dv_s + keys * d;         // [Br]
  float* dot_s = lse_s + rows;            // [Br]: D
  const int64_t h = blockIdx.y, b = blockIdx.z;
  const int64_t k0 = static_cast<int64_t>(blockIdx.x) * keys;

  for (int64_t t = threadIdx.x; t < bias_floats; t += blockDim.x) {
    bias_s[t] = bias_table[t * p.heads + h];
    dbias_s[t] = 0.0f;
  }
  for (int64_t e = threadIdx.x; e < keys * d; e += blockDim.x) {
    const int64_t c = e / d, dd = e % d, j = k0 + c;
    const bool inside = j < p.k_len;
    k_s[c * (d + 1) + dd] = inside ? load_act(k, (b * p.k_len + j) * row_stride + h * d + dd) : 0.0f;
    v_s[c * (d + 1) + dd] = inside ? load_act(v, (b * p.k_len + j) * row_stride + h * d + dd) : 0.0f;
    dk_s[e] = 0.0f;  // dk_s, dv_s: element e always belongs to thread e % blockDim.x
    dv_s[e] = 0.0f;
  }
  const int64_t first_visible = attention_first_visible_key(p, key_mask, b, scratch);  // barriers publish the loads
  const float uniform = 1.0f / static_cast<float>(p.k_len);

  for (int64_t q0 = 0; q0 < p.q_len; q0 += rows) {
    // Causal: rows whose last visible position is before this key tile get P = 0 here,
    // unless fully masked (uniform P: dV still needs it). All-masked rows are a prefix.
    const int64_t last_row = (q0 + rows < p.q_len ? q0 + rows : p.q_len) - 1;
    if (p.causal && p.query_offset + last_row < k0 && !attention_row_all_masked(p, first_visible, q0)) continue;
    __syncthreads();  // the previous step's readers are done with q_s, do_s, pd_s, ds_s
    for (int64_t e = threadIdx.x; e < rows * d; e += blockDim.x) {
      const int64_t i = q0 + e / d;
      const int64_t offset = (b * p.q_len + i) * row_stride + h * d + e % d;
      q_s[e] = i < p.q_len ? load_act(q, offset) : 0.0f;
      do_s[e] = i < p.q_len ? load_act(dout, offset) : 0.0f;
    }
    for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
      const int64_t i = q0 + r;
      lse_s[r] = i < p.q_len ? row_lse[(b * p.heads + h) * p.q_len + i] : 0.0f;
      dot_s[r] = i < p.q_len ? row_dot[(b * p.heads + h) * p.q_len + i] : 0.0f;
    }
    __syncthreads();
    for (int64_t e = threadIdx.x; e < rows * keys; e += blockDim.x) {
      const int64_t r = e / keys, c = e % keys, i = q0 + r, j = k0 + c;
      float dropped = 0.0f, dscore = 0.0f;
      if (i < p.q_len && j < p.k_len) {
        const bool row_masked = attention_row_all_masked(p, first_visible, i);
        float prob = uniform;
        if (!row_masked) {
          prob = 0.0f;
          if (!attention_masked(p, key_mask, b, i, j)) {
            float dot = 0.0f;
            for (int64_t dd = 0; dd < d; ++dd) dot += q_s[r * d + dd] * k_s[c * (d + 1) + dd];
            float score = p.scale * dot;
            if (p.has_bias) score += bias_s[attention_bucket(p, i, j)];
            prob = expf(score - lse_s[r]);
            if (fabsf(prob) < FLT_MIN) prob = 0.0f;
          }
        }
        if (prob != 0.0f) {
          const float keep = attention_keep(p, b, h, i, j);
          dropped = prob * keep;
          if (!row_masked) {
            float dprob = 0.0f;  // dO . v_j, through dropout
            for (int64_t dd = 0; dd < d; ++dd) dprob += do_s[r * d + dd] * v_s[c * (d + 1) + dd];
            dscore = prob * (keep * dprob - dot_s[r]);
            if (want_dbias && dscore != 0.0f) atomicAdd(&dbias_s[attention_bucket(p, i, j)], dscore);
          }
        }
      }
      pd_s[e] = dropped;
      ds_s[e] = dscore;
    }
    __syncthreads();
    for (int64_t e = threadIdx.x; e < keys * d; e += blockDim.x) {
      const int64_t c = e / d, dd = e % d;
      float acc_v = 0.0f, acc_k = 0.0f;
      for (int64_t r = 0; r < rows; ++r) {
        acc_v += pd_s[r * keys + c] * do_s[r * d + dd];
        acc_k += ds_s[r * keys + c] * q_s[r * d + dd];
      }
      dv_s[e] += acc_v;
      dk_s[e] += p.scale * acc_k;
    }
    for (int64_t e = threadIdx.x; e < rows * d; e += blockDim.x) {
      const int64_t r = e / d, dd = e % d, i = q0 + r;
      if (i >= p.q_len) continue;
      float acc = 0.0f;
      for (int64_t c = 0; c < keys; ++c) acc += ds_s[r * keys + c] * k_s[c * (d + 1) + dd];
      if (acc != 0.0f) atomicAdd(&dq_accum[(b * p.q_len + i) * row_stride + h * d + dd], p.scale * acc);
    }
  }
  for (int64_t e = threadIdx.x; e < keys * d; e += blockDim.x) {  // each thread its own elements
    const int64_t c = e / d, dd = e % d, j = k0 + c;
    if (j >= p.k_len) continue;
    store_act(dk, (b * p.k_len + j) * row_stride + h * d + dd, dk_s[e]);
    store_act(dv, (b * p.k_len + j) * row_stride + h * d + dd, dv_s[e]);
  }
  if (want_dbias) {
    // Every dS partial is in: the last query step's partials were followed by a barrier, and
    // thread t zeroed dbias_s[t] itself.
    for (int64_t t = threadIdx.x; t < bias_floats; t += blockDim.x) {
      if (dbias_s[t] != 0.0f) atomicAdd(&dbias_table[t * p.heads + h], dbias_s[t]);
    }
  }
}

// The f32 dQ accumulator of a bf16 backward (see the top of this file): zeroed before the key
// tiles add to it, rounded into dq once after. One thread per element.
__global__ void attention_zero_kernel(int64_t count, float* x) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) x[i] = 0.0f;
}

template <typename T>
__global__ void attention_store_dq_kernel(int64_t count, const float* dq_accum, T* dq) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) store_act(dq, i, dq_accum[i]);
}

// --- launchers (kernels/launch.h) ---------------------------------------------------------------

inline unsigned attention_blocks(int64_t count, int64_t per_block) {
  return static_cast<unsigned>((count + per_block - 1) / per_block);
}

// What the forward saves for the backward: the row log-sum-exp, [batch, heads, q_len] (+inf
// marks a fully masked row), f32 whatever the activation type. Nothing k_len-sized: P is
// recomputed from it.
inline int64_t attention_lse_floats(const AttentionParams& p) { return p.batch * p.heads * p.q_len; }

// Whether the backward with activations of type T sums dQ in its own f32 buffer (bf16) or
// straight into dq (float).
template <typename T>
constexpr bool attention_dq_in_scratch() {
  return sizeof(T) != sizeof(float);
}

// Scratch of the backward launch with activations of type T: D = rowsum(dO * O),
// [batch, heads, q_len], then for bf16 the f32 dQ accumulator [batch, q_len, heads, head_dim].
template <typename T = float>
int64_t attention_backward_scratch_floats(const AttentionParams& p) {
  const int64_t row_dot = p.batch * p.heads * p.q_len;
  return row_dot + (attention_dq_in_scratch<T>() ? p.batch * p.q_len * p.heads * p.head_dim : 0);
}

// out (type T) and lse (attention_lse_floats, f32). Returns the tiles it used; tiles.rows == 0
// means head_dim and num_buckets do not fit the 48 KB of shared memory, and nothing was launched.
template <typename Launch, typename T>
AttentionForwardTiles launch_attention_forward(const Launch& launch, const AttentionParams& p, const T* q, const T* k,
                                               const T* v, const float* bias_table, const int32_t* key_mask, T* out,
                                               float* lse) {
  const AttentionForwardTiles tiles = attention_forward_tiles(p);
  if (tiles.rows == 0 || p.batch * p.heads * p.q_len == 0) return tiles;
  const dim3 grid(attention_blocks(p.q_len, tiles.rows), static_cast<unsigned>(p.heads), static_cast<unsigned>(p.batch));
  launch(attention_forward_kernel<T>, grid, dim3(kAttentionThreads), tiles.shared_bytes, p, tiles.rows, q, k, v,
         bias_table, key_mask, out, lse);
  return tiles;
}

// D = rowsum(dO * O) into the front of `scratch` (attention_backward_scratch_floats<T>), then
// one block per key tile. With T = float, dq must hold zeros (every key tile adds to it with
// atomics); with bf16, dq is overwritten (the sum runs in the scratch's f32 accumulator, which
// the launch zeroes and finally rounds into dq). dk and dv are overwritten; dbias_table (when
// not null, f32) accumulates. Returns the tiles; tiles.keys == 0: they do not fit, nothing was
// launched.
template <typename Launch, typename T>
AttentionBackwardTiles launch_attention_backward(const Launch& launch, const AttentionParams& p, const T* dout,
                                                 const T* q, const T* k, const T* v, const T* out,
                                                 const float* bias_table, const int32_t* key_mask, const float* lse,
                                                 float* scratch, T* dq, T* dk, T* dv, float* dbias_table) {
  const AttentionBackwardTiles tiles = attention_backward_tiles(p);
  const int64_t rows = p.batch * p.heads * p.q_len;
  if (tiles.keys == 0 || rows == 0 || p.k_len == 0) return tiles;
  float* row_dot = scratch;
  const int64_t dq_count = p.batch * p.q_len * p.heads * p.head_dim;
  float* dq_accum = nullptr;
  if constexpr (attention_dq_in_scratch<T>()) {
    dq_accum = scratch + rows;
    launch(attention_zero_kernel, dim3(attention_blocks(dq_count, kAttentionThreads)), dim3(kAttentionThreads), 0,
           dq_count, dq_accum);
  } else {
    dq_accum = dq;
  }
  launch(attention_row_dot_kernel<T>, dim3(attention_blocks(rows, kAttentionThreads)), dim3(kAttentionThreads), 0, p,
         dout, out, row_dot);
  const dim3 grid(attention_blocks(p.k_len, tiles.keys), static_cast<unsigned>(p.heads), static_cast<unsigned>(p.batch));
  launch(attention_backward_kernel<T>, grid, dim3(kAttentionThreads), tiles.shared_bytes, p, tiles.keys, tiles.rows,
         dout, q, k, v, bias_table, key_mask, lse, static_cast<const float*>(row_dot), dq_accum, dk, dv, dbias_table);
  if constexpr (attention_dq_in_scratch<T>()) {
    launch(attention_store_dq_kernel<T>, dim3(attention_blocks(dq_count, kAttentionThreads)), dim3(kAttentionThreads), 0,
           dq_count, static_cast<const float*>(dq_accum), dq);
  }
  return tiles;
}

}  // namespace la3::kernels
