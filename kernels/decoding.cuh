// Incremental-decoding kernels (kernels/decoding_params.h has the contracts): the
// key/value cache write, the in-place beam reorder, the logits processors and top-k. The
// CUDA counterparts of engine/cpu/decoding_cpu.cc; with them a decoding step leaves the
// vocabulary-sized scores on the device and reads back k ids and scores per group.
#pragma once

#include <cmath>
#include <cstdint>

#include <algorithm>

#include "kernels/bf16.cuh"
#include "kernels/block_reduce.cuh"
#include "kernels/decoding_params.h"
#include "kernels/launch.h"
#include "kernels/simt/simt.h"

namespace la3::kernels {

constexpr unsigned int kDecodingThreads = 256;

// The cached keys/values and the logits are activations: T = float or uint16_t (bf16 bits).
// Scores after process_logits are f32 whatever T is.

// One thread per copied element.
template <typename T>
__global__ void cache_write_kernel(CacheWriteParams p, const T* src, T* dst) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.rows * p.width) return;
  const int64_t r = i / p.width, e = i % p.width;
  dst[r * p.dst_row_stride + p.dst_offset + e] = src[i];
}

// Grid (column tiles, groups, segments). Each thread owns one column of one group: it stages
// the group's values of that column in its own slice of shared memory, then writes them back
// permuted. No other thread touches the slice, so no barrier is needed; shared memory is
// group * blockDim.x floats.
template <typename T>
__global__ void reorder_rows_kernel(RowReorderParams p, const int64_t* source_rows, T* data) {
  LA3_DYNAMIC_SHARED(T, staged);
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= p.width) return;
  const int64_t first = static_cast<int64_t>(blockIdx.y) * p.group;
  T* segment = data + static_cast<int64_t>(blockIdx.z) * p.segment_stride;
  for (int64_t g = 0; g < p.group; ++g) staged[g * blockDim.x + threadIdx.x] = segment[(first + g) * p.row_stride + e];
  for (int64_t g = 0; g < p.group; ++g) {
    const int64_t source = source_rows[first + g] - first;
    segment[(first + g) * p.row_stride + e] = staged[source * blockDim.x + threadIdx.x];
  }
}

__device__ __forceinline__ bool decoding_token_ok(int64_t token, int64_t vocab) { return token >= 0 && token < vocab; }

// One block per row. Every branch depends on the parameters only, so every thread reaches
// every barrier.
template <typename T>
__global__ void process_logits_kernel(LogitsProcessParams p, const T* logits, const int64_t* history,
                                      const float* beam_scores, float* processed, float* log_probs) {
  LA3_SHARED(float, scratch, [kDecodingThreads / 32]);
  const int64_t row = blockIdx.x;
  const T* x = logits + row * p.vocab;
  float* out = processed + row * p.vocab;
  const int64_t* h = history + row * p.history_len;
  if (p.log_softmax != 0 || log_probs != nullptr) {
    float local_max = -INFINITY;
    for (int64_t c = threadIdx.x; c < p.vocab; c += blockDim.x) local_max = fmaxf(local_max, load_act(x, c));
    const float max_value = block_max(local_max, scratch);
    float local_sum = 0.0f;
    for (int64_t c = threadIdx.x; c < p.vocab; c += blockDim.x) local_sum += expf(load_act(x, c) - max_value);
    const float log_sum = logf(block_sum(local_sum, scratch));
    // Each thread reads and writes only its own columns, so `processed` may alias `logits`.
    for (int64_t c = threadIdx.x; c < p.vocab; c += blockDim.x) {
      const float value = load_act(x, c);
      if (log_probs != nullptr) log_probs[row * p.vocab + c] = value - max_value - log_sum;
      out[c] = p.log_softmax != 0 ? value - max_value - log_sum : value;
    }
  } else {
    for (int64_t c = threadIdx.x; c < p.vocab; c += blockDim.x) out[c] = load_act(x, c);
  }
  __syncthreads();
  if (p.repetition_penalty != 1.0f) {
    // The thread holding a token's first occurrence penalises it, so each distinct token once.
    for (int64_t i = threadIdx.x; i < p.history_len; i += blockDim.x) {
      const int64_t token = h[i];
      bool first = decoding_token_ok(token, p.vocab);
      for (int64_t j = 0; j < i && first; ++j) first = h[j] != token;
      if (first) {
        const float value = out[token];
        out[token] = value < 0.0f ? value * p.repetition_penalty : value / p.repetition_penalty;
      }
    }
    __syncthreads();
  }
  const int64_t n = p.no_repeat_ngram;
  if (n > 0 && p.history_len + 1 >= n) {
    // Thread per n-gram start; several may ban the same token (the same value is written).
    const int64_t prefix_start = p.history_len - (n - 1);
    for (int64_t start = threadIdx.x; start + n <= p.history_len; start += blockDim.x) {
      bool same = true;
      for (int64_t j = 0; j < n - 1 && same; ++j) same = h[start + j] == h[prefix_start + j];
      const int64_t banned = h[start + n - 1];
      if (same && decoding_token_ok(banned, p.vocab)) out[banned] = -INFINITY;
    }
    __syncthreads();
  }
  if (p.ban_eos != 0 && threadIdx.x == 0 && decoding_token_ok(p.eos, p.vocab)) out[p.eos] = -INFINITY;
  __syncthreads();
  if (p.temperature != 1.0 || beam_scores != nullptr) {
    const float add = beam_scores != nullptr ? beam_scores[row] : 0.0f;
    for (int64_t c = threadIdx.x; c < p.vocab; c += blockDim.x) {
      float value = out[c];
      if (p.temperature != 1.0) value = static_cast<float>(static_cast<double>(value) / p.temperature);
      if (beam_scores != nullptr) value += add;
      out[c] = value;
    }
  }
}

// torch.topk's order: a before b when higher, or equal and at a lower index.
__device__ __forceinline__ bool top_k_before(float a, int64_t a_index, float b, int64_t b_index) {
  return a > b || (a == b && a_index < b_index);
}

// The warp's best (value, index) in that order; every lane gets it.
__device__ __forceinline__ void warp_arg_best(float& value, int64_t& index) {
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other_value = __shfl_xor_sync(0xffffffffu, value, offset);
    const int64_t other_index = __shfl_xor_sync(0xffffffffu, index, offset);
    if (top_k_before(other_value, other_index, value, index)) {
      value = other_value;
      index = other_index;
    }
  }
}

// One block per group; k rounds, each a strided scan for the best score after the previous
// pick (in the order above) and a block-wide arg-best. k * n reads per group: meant for the
// small k of beam search (2 * beams) and top-k sampling.
__global__ void top_k_kernel(TopKParams p, const float* scores, const float* companion, int64_t* indices, float* values,
                             float* companion_values) {
  LA3_SHARED(float, warp_value, [kDecodingThreads / 32]);
  LA3_SHARED(int64_t, warp_index, [kDecodingThreads / 32]);
  LA3_SHARED(float, picked_value);
  LA3_SHARED(int64_t, picked_index);
  const int64_t group = blockIdx.x;
  const float* s = scores + group * p.n;
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  constexpr int64_t kNone = INT64_MAX;  // ranks after every index
  float previous_value = INFINITY;
  int64_t previous_index = -1;
  for (int64_t j = 0; j < p.k; ++j) {
    float best_value = -INFINITY;
    int64_t best_index = kNone;
    for (int64_t c = threadIdx.x; c < p.n; c += blockDim.x) {
      const float value = s[c];
      if (top_k_before(previous_value, previous_index, value, c) && top_k_before(value, c, best_value, best_index)) {
        best_value = value;
        best_index = c;
      }
    }
    warp_arg_best(best_value, best_index);
    if (lane == 0) {
      warp_value[warp] = best_value;
      warp_index[warp] = best_index;
    }
    __syncthreads();
    if (warp == 0) {
      best_value = lane < warps ? warp_value[lane] : -INFINITY;
      best_index = lane < warps ? warp_index[lane] : kNone;
      warp_arg_best(best_value, best_index);
      if (lane == 0) {
        picked_value = best_value;
        picked_index = best_index;
        // Only NaN scores left: no index (-1), so the host can refuse it.
        const bool found = best_index != kNone;
        indices[group * p.k + j] = found ? best_index : -1;
        values[group * p.k + j] = best_value;
        if (companion != nullptr) companion_values[group * p.k + j] = found ? companion[group * p.n + best_index] : NAN;
      }
    }
    __syncthreads();
    previous_value = picked_value;
    previous_index = picked_index;
    __syncthreads();  // picked_* is rewritten by the next round
  }
}

// --- launchers (kernels/launch.h) ---------------------------------------------------------------

// The shared memory reorder_rows stages in: the per-block limit without opt-in, all dynamic
// (reorder_rows_kernel declares no static shared memory).
constexpr size_t kDecodingSharedBytes = kMaxSharedBytesPerBlock;

inline unsigned decoding_blocks(int64_t count, unsigned threads) {
  return static_cast<unsigned>(std::max<int64_t>((count + threads - 1) / threads, 1));
}

template <typename Launch, typename T>
void launch_cache_write(const Launch& launch, const CacheWriteParams& p, const T* src, T* dst) {
  if (p.rows * p.width == 0) return;
  launch(cache_write_kernel<T>, dim3(decoding_blocks(p.rows * p.width, kDecodingThreads)), dim3(kDecodingThreads), 0, p,
         src, dst);
}

// The threads per block reorder_rows uses for groups of `group` rows of T (each thread stages
// one column of its group in shared memory), or 0 when even 32 threads need more than 48 KiB.
template <typename T>
unsigned reorder_rows_threads(int64_t group) {
  for (unsigned threads = 128; threads >= 32; threads /= 2) {
    if (static_cast<size_t>(group) * threads * sizeof(T) <= kDecodingSharedBytes) return threads;
  }
  return 0;
}

// The caller checks reorder_rows_threads<T>(p.group) != 0 first (the backend names the error).
template <typename Launch, typename T>
void launch_reorder_rows(const Launch& launch, const RowReorderParams& p, const int64_t* source_rows, T* data) {
  if (p.segments == 0 || p.rows == 0 || p.width == 0) return;
  const unsigned threads = reorder_rows_threads<T>(p.group);
  const size_t shared = static_cast<size_t>(p.group) * threads * sizeof(T);
  launch(reorder_rows_kernel<T>,
         dim3(decoding_blocks(p.width, threads), static_cast<unsigned>(p.rows / p.group), static_cast<unsigned>(p.segments)),
         dim3(threads), shared, p, source_rows, data);
}

template <typename Launch, typename T>
void launch_process_logits(const Launch& launch, const LogitsProcessParams& p, const T* logits, const int64_t* history,
                           const float* beam_scores, float* processed, float* log_probs) {
  if (p.rows == 0) return;
  launch(process_logits_kernel<T>, dim3(static_cast<unsigned>(p.rows)), dim3(kDecodingThreads), 0, p, logits, history,
         beam_scores, processed, log_probs);
}

template <typename Launch>
void launch_top_k(const Launch& launch, const TopKParams& p, const float* scores, const float* companion,
                  int64_t* indices, float* values, float* companion_values) {
  if (p.groups == 0 || p.k == 0) return;
  launch(top_k_kernel, dim3(static_cast<unsigned>(p.groups)), dim3(kDecodingThreads), 0, p, scores, companion, indices,
         values, companion_values);
}

}  // namespace la3::kernels
