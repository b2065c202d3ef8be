// The k+1-caption aggregated loss of docs/ARCHITECTURE.md (modes mean, token_mixture,
// sequence_mixture), fused with the vocabulary softmax. Logits [tokens = rows * length, vocab]
// and dlogits are f32 or bf16 activations (kernels/bf16.cuh: fp32 arithmetic, one rounding per
// stored dlogit); log p, lse, token weights and the loss are f32. The [tokens, vocab]
// probabilities are never stored. The kernels:
//
//   caption_token_log_prob_kernel   one block per token: online log-sum-exp over the vocabulary
//                                   (one read of the logits) -> log p(y) (0 where ignored) and
//                                   the lse saved for backward.
//   caption_count_tokens_kernel +   mode mean with a gradient: the weights are known up front
//   caption_mean_fused_kernel       (1 / counted tokens), so one kernel per token gives log p(y)
//                                   AND dlogits = (softmax - onehot) / tokens (the gradient of
//                                   the loss for an upstream gradient of 1).
//   caption_combine_kernel          one block per group: gathers the group's rows (in row order,
//                                   so sums are deterministic), applies the mode's formula in
//                                   double, writes per token weight = d loss_sum / d log p and
//                                   the group's (loss, tokens) partial.
//   caption_final_kernel            one block: sums the partials in a fixed order -> the loss
//                                   scalar and 1 / normaliser (no float atomics).
//   caption_backward_kernel         one block per token: dlogits = s * w * (onehot - softmax),
//                                   recomputed from the saved lse; s = upstream * 1 / normaliser,
//                                   both read on the device.
//   sum_to_scalar_kernel,           device-side reductions for cross_entropy: a deterministic sum
//   scale_by_device_scalar_kernel   to a device scalar, and x *= a device scalar.
//
// The normaliser is the CPU reference's (engine/cpu/caption_loss_cpu.cc): target tokens counted
// once per group (the mean over the group's rows for sequence_mixture), so k = 0 is plain token
// cross-entropy in every mode; or CaptionLossParams::normaliser when the caller gives one (the
// global batch's, for data parallelism and gradient accumulation).
#pragma once

#include <cfloat>
#include <cstdint>

#include "kernels/bf16.cuh"
#include "kernels/op_params.h"
#include "kernels/launch.h"
#include "kernels/simt/simt.h"

namespace la3::kernels {

constexpr unsigned int kCaptionTokenThreads = 256;    // vocabulary passes: one block per token
constexpr unsigned int kCaptionCombineThreads = 128;  // one block per group
constexpr unsigned int kCaptionReduceThreads = 256;   // single-block reductions

// Dynamic shared memory of caption_combine_kernel: per member row a double score, a double
// token count and an int row index.
inline constexpr size_t caption_combine_shared_bytes(int64_t max_group_rows) {
  return static_cast<size_t>(max_group_rows) * (2 * sizeof(double) + sizeof(int));
}
// The largest group the combine kernel takes within the default 48 KB of shared memory, with
// the kernel's static scratch (warp_counts and scratch, one int and one double per warp).
constexpr int64_t kCaptionMaxGroupRows = 2048;
constexpr size_t kCaptionCombineStaticSharedBytes = kCaptionCombineThreads / 32 * (sizeof(int) + sizeof(double));
static_assert(kCaptionCombineStaticSharedBytes + caption_combine_shared_bytes(kCaptionMaxGroupRows) <=
                  kMaxSharedBytesPerBlock,
              "caption_combine_kernel with kCaptionMaxGroupRows rows exceeds the shared memory of a block");

// Online log-sum-exp of one thread: running max and the sum of exp(z - max).
struct LseState {
  float max;
  float sum;
};

__device__ __forceinline__ void lse_add(LseState& state, float z) {
  if (z > state.max) {
    state.sum = state.sum * expf(state.max - z) + 1.0f;
    state.max = z;
  } else {
    state.sum += expf(z - state.max);
  }
}

// Commutative (bit for bit): every lane of an xor-shuffle tree ends with the same state.
__device__ __forceinline__ LseState lse_merge(LseState a, LseState b) {
  const float m = fmaxf(a.max, b.max);
  return LseState{m, a.sum * expf(a.max - m) + b.sum * expf(b.max - m)};
}

// Block-wide merge: warps reduce with xor shuffles, warp 0 merges the warps' states, and the
// result goes to every thread through shared memory. scratch: 2 * (blockDim.x / 32) + 2 floats,
// not to be written again in the kernel (no trailing barrier).
__device__ __forceinline__ LseState block_lse(LseState state, float* scratch) {
  for (int offset = 16; offset > 0; offset /= 2) {
    const LseState other{__shfl_xor_sync(0xffffffffu, state.max, offset), __shfl_xor_sync(0xffffffffu, state.sum, offset)};
    state = lse_merge(state, other);
  }
  const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  if (lane == 0) {
    scratch[warp] = state.max;
    scratch[warps + warp] = state.sum;
  }
  __syncthreads();
  if (warp == 0) {
    LseState total{-FLT_MAX, 0.0f};
    if (lane < warps) total = LseState{scratch[lane], scratch[warps + lane]};
    for (int offset = 16; offset > 0; offset /= 2) {
      const LseState other{__shfl_xor_sync(0xffffffffu, total.max, offset), __shfl_xor_sync(0xffffffffu, total.sum, offset)};
      total = lse_merge(total, other);
    }
    if (lane == 0) {
      scratch[2 * warps] = total.max;
      scratch[2 * warps + 1] = total.sum;
    }
  }
  __syncthreads();
  return LseState{scratch[2 * warps], scratch[2 * warps + 1]};  // scratch is not reused afterwards
}

// Threads per block of the vocabulary kernels: enough warps to cover the vocabulary, at most
// kCaptionTokenThreads (small vocabularies, as in tests, need not idle 8 warps).
inline unsigned caption_token_threads(int64_t vocab) {
  const int64_t warps = (vocab + 31) / 32;
  return static_cast<unsigned>(32 * (warps < 1 ? 1 : (warps > kCaptionTokenThreads / 32 ? kCaptionTokenThreads / 32 : warps)));
}

// Sum over the block in double, fixed tree (deterministic); every thread gets the result.
// scratch: blockDim.x / 32 doubles.
__device__ __forceinline__ double block_sum_double(double value, double* scratch) {
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  double total = lane < blockDim.x / 32 ? scratch[lane] : 0.0;
  for (int offset = 16; offset > 0; offset /= 2) total += __shfl_xor_sync(0xffffffffu, total, offset);
  __syncthreads();
  return total;
}

// log p(label) and the row's lse of one token; grid = tokens, block = caption_token_threads(vocab).
template <typename T>
__global__ void caption_token_log_prob_kernel(CaptionLossParams p, const T* logits, const int64_t* labels,
                                              float* log_prob, float* lse) {
  LA3_SHARED(float, scratch, [2 * kCaptionTokenThreads / 32 + 2]);
  const int64_t token = blockIdx.x;
  const T* z = logits + token * p.vocab;
  LseState state{-FLT_MAX, 0.0f};
  for (int64_t c = threadIdx.x; c < p.vocab; c += blockDim.x) lse_add(state, load_act(z, c));
  state = block_lse(state, scratch);
  if (threadIdx.x == 0) {
    const float log_sum = logf(state.sum);
    lse[token] = state.max + log_sum;
    const int64_t label = labels[token];
    // (z[y] - max) - log(sum), not z[y] - lse: see engine/cpu/cross_entropy_cpu.cc.
    log_prob[token] = label == p.ignore_index ? 0.0f : (load_act(z, label) - state.max) - log_sum;
  }
}

// Counted tokens of mode mean -> inverse_tokens[0] = 1 / max(count, 1), or 1 / p.normaliser when
// the caller gives one (then nothing is counted); one block.
__global__ void caption_count_tokens_kernel(CaptionLossParams p, const int64_t* labels, float* inverse_tokens) {
  if (p.normaliser > 0.0) {
    if (threadIdx.x == 0) inverse_tokens[0] = static_cast<float>(1.0 / p.normaliser);
    return;
  }
  LA3_SHARED(double, scratch, [kCaptionReduceThreads / 32]);
  const int64_t tokens = p.rows * p.length;
  double count = 0.0;
  for (int64_t i = threadIdx.x; i < tokens; i += blockDim.x) count += labels[i] != p.ignore_index ? 1.0 : 0.0;
  count = block_sum_double(count, scratch);
  if (threadIdx.x == 0) inverse_tokens[0] = static_cast<float>(1.0 / (count > 0.0 ? count : 1.0));
}

// Mode mean, forward and backward in one kernel per token: log p(y) and
// dlogits = (softmax - onehot) * inverse_tokens (0 for ignored tokens).
template <typename T>
__global__ void caption_mean_fused_kernel(CaptionLossParams p, const T* logits, const int64_t* labels,
                                          const float* inverse_tokens, float* log_prob, T* dlogits) {
  LA3_SHARED(float, scratch, [2 * kCaptionTokenThreads / 32 + 2]);
  const int64_t token = blockIdx.x;
  const T* z = logits + token * p.vocab;
  T* dz = dlogits + token * p.vocab;
  LseState state{-FLT_MAX, 0.0f};
  for (int64_t c = threadIdx.x; c < p.vocab; c += blockDim.x) lse_add(state, load_act(z, c));
  state = block_lse(state, scratch);
  const float log_sum = logf(state.sum);
  const float lse = state.max + log_sum;
  const int64_t label = labels[token];
  const bool ignored = label == p.ignore_index;
  if (threadIdx.x == 0) log_prob[token] = ignored ? 0.0f : (load_act(z, label) - state.max) - log_sum;
  const float weight = ignored ? 0.0f : inverse_tokens[0];
  for (int64_t c = threadIdx.x; c < p.vocab; c += blockDim.x) {
    float g = weight == 0.0f ? 0.0f : weight * expf(load_act(z, c) - lse);
    if (fabsf(g) < FLT_MIN) g = 0.0f;  // no subnormals into the next GEMM (engine/cpu/denormals.h)
    if (c == label) g -= weight;
    store_act(dz, c, g);
  }
}

// One block per group (grid = p.groups, block = kCaptionCombineThreads, dynamic shared memory
// caption_combine_shared_bytes(p.max_group_rows)). token_weight may be null (no gradient).
// partials[2 g] = the group's loss contribution, partials[2 g + 1] = its target tokens.
__global__ void caption_combine_kernel(CaptionLossParams p, const float* log_prob, const int64_t* labels,
                                       const int64_t* group, float* token_weight, double* partials) {
  LA3_SHARED(int, warp_counts, [kCaptionCombineThreads / 32]);
  LA3_SHARED(double, scratch, [kCaptionCombineThreads / 32]);
  LA3_DYNAMIC_SHARED(unsigned char, shared_bytes);
  double* scores = reinterpret_cast<double*>(shared_bytes);  // [max_group_rows]
  double* counts = scores + p.max_group_rows;                 // [max_group_rows]
  int* members = reinterpret_cast<int*>(counts + p.max_group_rows);
  const int64_t g = blockIdx.x;
  const int64_t length = p.length;
  const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;

  // The group's rows in row order: a ballot per warp, then the warps' counts in order.
  int64_t found = 0;  // the same in every thread
  for (int64_t base = 0; base < p.rows; base += blockDim.x) {
    const int64_t r = base + threadIdx.x;
    const bool mine = r < p.rows && group[r] == g;
    const unsigned ballot = __ballot_sync(0xffffffffu, mine);
    if (lane == 0) warp_counts[warp] = __popc(ballot);
    __syncthreads();
    int64_t slot = found + __popc(ballot & ((1u << lane) - 1u));
    for (unsigned w = 0; w < warps; ++w) {
      if (w < warp) slot += warp_counts[w];
      found += warp_counts[w];
    }
    if (mine && slot < p.max_group_rows) members[slot] = static_cast<int>(r);
    __syncthreads();  // warp_counts is rewritten by the next chunk
  }
  const int64_t n = found < p.max_group_rows ? found : p.max_group_rows;  // n == found after validation
  const double k_plus_one = static_cast<double>(n);

  double loss = 0.0, tokens = 0.0;  // this thread's share of the group's sums
  if (p.mode == CaptionLossMode::kMean) {
    for (int64_t i = threadIdx.x; i < n * length; i += blockDim.x) {
      const int64_t index = members[i / length] * length + i % length;
      const bool counted = labels[index] != p.ignore_index;
      if (counted) {
        loss -= log_prob[index];
        tokens += 1.0;
      }
      if (token_weight != nullptr) token_weight[index] = counted ? -1.0f : 0.0f;
    }
  } else if (p.mode == CaptionLossMode::kTokenMixture) {
    // One thread per position t: log p_t = logsumexp_j log p_j(y_t) - log(k + 1).
    const int64_t first = n > 0 ? members[0] : 0;
    for (int64_t t = threadIdx.x; t < length; t += blockDim.x) {
      const bool counted = n > 0 && labels[first * length + t] != p.ignore_index;
      if (!counted) {
        if (token_weight != nullptr) {
          for (int64_t j = 0; j < n; ++j) token_weight[members[j] * length + t] = 0.0f;
        }
        continue;
      }
      double max_value = -INFINITY;
      for (int64_t j = 0; j < n; ++j) max_value = fmax(max_value, static_cast<double>(log_prob[members[j] * length + t]));
      double sum = 0.0;
      for (int64_t j = 0; j < n; ++j) sum += exp(static_cast<double>(log_prob[members[j] * length + t]) - max_value);
      const double total = max_value + log(sum);
      loss -= total - log(k_plus_one);
      tokens += 1.0;
      // d(-log p_t) / d log p_j = -softmax_j over the group's rows.
      if (token_weight != nullptr) {
        for (int64_t j = 0; j < n; ++j) {
          const int64_t index = members[j] * length + t;
          token_weight[index] = static_cast<float>(-exp(static_cast<double>(log_prob[index]) - total));
        }
      }
    }
  } else {
    // sequence_mixture: one warp per member row sums its caption score s_j and length.
    for (int64_t j = warp; j < n; j += warps) {
      const int64_t row = members[j];
      double s = 0.0, c = 0.0;
      for (int64_t t = lane; t < length; t += 32) {
        if (labels[row * length + t] != p.ignore_index) {
          s += log_prob[row * length + t];
          c += 1.0;
        }
      }
      for (int offset = 16; offset > 0; offset /= 2) {
        s += __shfl_xor_sync(0xffffffffu, s, offset);
        c += __shfl_xor_sync(0xffffffffu, c, offset);
      }
      if (lane == 0) {
        scores[j] = s;
        counts[j] = c;
      }
    }
    __syncthreads();
    // Every thread evaluates the group's log-sum-exp of the scores in the same order.
    double max_value = -INFINITY, length_sum = 0.0;
    for (int64_t j = 0; j < n; ++j) {
      max_value = fmax(max_value, scores[j]);
      length_sum += counts[j];
    }
    double sum = 0.0;
    for (int64_t j = 0; j < n; ++j) sum += exp(scores[j] - max_value);
    const double total = max_value + log(sum);
    if (threadIdx.x == 0 && n > 0) {
      loss = -(total - log(k_plus_one));
      tokens = length_sum / k_plus_one;
    }
    if (token_weight != nullptr) {
      for (int64_t i = threadIdx.x; i < n * length; i += blockDim.x) {
        const int64_t j = i / length;
        const int64_t index = members[j] * length + i % length;
        // d L_g / d log p_j(t) = -posterior_j = -softmax_j(s) for every counted token of row j.
        token_weight[index] = labels[index] != p.ignore_index ? static_cast<float>(-exp(scores[j] - total)) : 0.0f;
      }
    }
  }
  loss = block_sum_double(loss, scratch);
  tokens = block_sum_double(tokens, scratch);
  if (threadIdx.x == 0) {
    partials[2 * g] = loss;
    partials[2 * g + 1] = tokens;
  }
}

// One block: loss[0] = sum of the group losses / normaliser (0 when it is 0) and
// inverse_tokens[0] = 1 / normaliser (1 when it is 0), summed in a fixed order. The normaliser
// is p.normaliser when the caller gives one, else the batch's target tokens: their sum runs
// over the groups in id order in one thread, the CPU reference's order, so it is bit for bit
// the value ops::caption_loss_normaliser returns (sequence_mixture adds fractions, whose sum
// depends on the order; G additions once per step).
__global__ void caption_final_kernel(CaptionLossParams p, const double* partials, float* loss,
                                     float* inverse_tokens) {
  LA3_SHARED(double, scratch, [kCaptionReduceThreads / 32]);
  double loss_sum = 0.0;
  for (int64_t g = threadIdx.x; g < p.groups; g += blockDim.x) loss_sum += partials[2 * g];
  loss_sum = block_sum_double(loss_sum, scratch);
  if (threadIdx.x == 0) {
    double normaliser = p.normaliser;
    if (!(normaliser > 0.0)) {
      normaliser = 0.0;
      for (int64_t g = 0; g < p.groups; ++g) normaliser += partials[2 * g + 1];
    }
    loss[0] = normaliser > 0.0 ? static_cast<float>(loss_sum / normaliser) : 0.0f;
    inverse_tokens[0] = static_cast<float>(1.0 / (normaliser > 0.0 ? normaliser : 1.0));
  }
}

// dlogits = s * token_weight * (onehot(y) - softmax(z)), the gradient of s * sum_i w_i log p_i,
// with s = upstream[0] * inverse_tokens[0] (either pointer may be null = 1); 0 for ignored
// tokens. One block per token; softmax recomputed from the saved lse.
template <typename T>
__global__ void caption_backward_kernel(CaptionLossParams p, const T* logits, const int64_t* labels,
                                        const float* lse, const float* token_weight, const float* upstream,
                                        const float* inverse_tokens, T* dlogits) {
  const int64_t token = blockIdx.x;
  const T* z = logits + token * p.vocab;
  T* dz = dlogits + token * p.vocab;
  const int64_t label = labels[token];
  float coef = 0.0f;  // d / d z = coef * (softmax - onehot)
  if (label != p.ignore_index) {
    coef = -token_weight[token];
    if (upstream != nullptr) coef *= upstream[0];
    if (inverse_tokens != nullptr) coef *= inverse_tokens[0];
  }
  const float row_lse = lse[token];
  for (int64_t c = threadIdx.x; c < p.vocab; c += blockDim.x) {
    float g = coef == 0.0f ? 0.0f : coef * expf(load_act(z, c) - row_lse);
    if (fabsf(g) < FLT_MIN) g = 0.0f;
    if (c == label) g -= coef;
    store_act(dz, c, g);
  }
}

// out[0] = alpha * sum(x), accumulated in double in a fixed order; one block.
__global__ void sum_to_scalar_kernel(int64_t count, const float* x, double alpha, float* out) {
  LA3_SHARED(double, scratch, [kCaptionReduceThreads / 32]);
  double sum = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) sum += x[i];
  sum = block_sum_double(sum, scratch);
  if (threadIdx.x == 0) out[0] = static_cast<float>(alpha * sum);
}

// x[i] *= scalar[0] for a device scalar (x f32 or bf16); returns at once when it is 1 (the usual
// upstream gradient of a loss), so that case costs one read per block. Grid-stride.
template <typename T>
__global__ void scale_by_device_scalar_kernel(int64_t count, const float* scalar, T* x) {
  const float s = scalar[0];
  if (s == 1.0f) return;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    store_act(x, i, load_act(x, i) * s);
  }
}

// --- launchers (kernels/launch.h) ---------------------------------------------------------------

// The vocabulary kernels take one block per token: rows * length must fit one grid dimension.
inline bool caption_tokens_fit(const CaptionLossParams& p) { return p.rows * p.length <= 0x7fffffff; }
inline dim3 caption_token_grid(const CaptionLossParams& p) { return dim3(static_cast<unsigned>(p.rows * p.length)); }

template <typename Launch, typename T>
void launch_caption_log_probs(const Launch& launch, const CaptionLossParams& p, const T* logits,
                              const int64_t* labels, float* log_prob, float* lse) {
  if (p.rows * p.length == 0) return;
  launch(caption_token_log_prob_kernel<T>, caption_token_grid(p), dim3(caption_token_threads(p.vocab)), 0, p, logits,
         labels, log_prob, lse);
}

// The token count (one block), then log p and dlogits in one pass per token.
template <typename Launch, typename T>
void launch_caption_mean_fused(const Launch& launch, const CaptionLossParams& p, const T* logits,
                               const int64_t* labels, float* log_prob, float* inverse_tokens, T* dlogits) {
  launch(caption_count_tokens_kernel, dim3(1), dim3(kCaptionReduceThreads), 0, p, labels, inverse_tokens);
  if (p.rows * p.length == 0) return;
  launch(caption_mean_fused_kernel<T>, caption_token_grid(p), dim3(caption_token_threads(p.vocab)), 0, p, logits, labels,
         static_cast<const float*>(inverse_tokens), log_prob, dlogits);
}

// Scratch of the combine launch: a (loss, tokens) partial per group, in doubles.
inline int64_t caption_combine_scratch_doubles(const CaptionLossParams& p) { return 2 * (p.groups > 1 ? p.groups : 1); }

// One block per group (p.max_group_rows <= kCaptionMaxGroupRows) writing its partial into
// `partials` (caption_combine_scratch_doubles), then one block summing them in group order.
template <typename Launch>
void launch_caption_combine(const Launch& launch, const CaptionLossParams& p, const float* log_prob,
                            const int64_t* labels, const int64_t* group, float* token_weight, float* loss,
                            float* inverse_tokens, double* partials) {
  if (p.groups > 0) {
    launch(caption_combine_kernel, dim3(static_cast<unsigned>(p.groups)), dim3(kCaptionCombineThreads),
           caption_combine_shared_bytes(p.max_group_rows), p, log_prob, labels, group, token_weight, partials);
  }
  launch(caption_final_kernel, dim3(1), dim3(kCaptionReduceThreads), 0, p, static_cast<const double*>(partials), loss,
         inverse_tokens);
}

template <typename Launch, typename T>
void launch_caption_backward(const Launch& launch, const CaptionLossParams& p, const T* logits,
                             const int64_t* labels, const float* lse, const float* token_weight,
                             const float* upstream, const float* inverse_tokens, T* dlogits) {
  if (p.rows * p.length == 0) return;
  launch(caption_backward_kernel<T>, caption_token_grid(p), dim3(caption_token_threads(p.vocab)), 0, p, logits, labels, lse,
         token_weight, upstream, inverse_tokens, dlogits);
}

template <typename Launch>
void launch_sum_to_scalar(const Launch& launch, int64_t count, const float* x, double alpha, float* out) {
  launch(sum_to_scalar_kernel, dim3(1), dim3(kCaptionReduceThreads), 0, count, x, alpha, out);
}

template <typename Launch, typename T>
void launch_scale_by_device_scalar(const Launch& launch, int64_t count, const float* scalar, T* x) {
  if (count == 0) return;
  int64_t blocks = (count + kCaptionReduceThreads - 1) / kCaptionReduceThreads;
  blocks = blocks < 1 ? 1 : (blocks > 1024 ? 1024 : blocks);
  launch(scale_by_device_scalar_kernel<T>, dim3(static_cast<unsigned>(blocks)), dim3(kCaptionReduceThreads), 0, count,
         scalar, x);
}

}  // namespace la3::kernels
