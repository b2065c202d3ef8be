// Token cross-entropy fused with log-softmax (f32 or bf16 logits, kernels/bf16.cuh; fp32 arithmetic): one block per row. Forward gives
// each row's loss and log-sum-exp; backward recomputes softmax from the saved log-sum-exp
// (the [rows, vocab] probabilities are never stored). The CUDA counterpart of
// engine/cpu/cross_entropy_cpu.cc, also the base of the k+1-caption losses (token_log_probs
// uses these kernels with a per-row weight of -g).
#pragma once

#include <cfloat>
#include <cstdint>

#include "kernels/bf16.cuh"
#include "kernels/op_params.h"
#include "kernels/block_reduce.cuh"
#include "kernels/launch.h"
#include "kernels/simt/simt.h"

namespace la3::kernels {

constexpr unsigned int kCrossEntropyThreads = 256;

template <typename T>
__global__ void cross_entropy_forward_kernel(CrossEntropyParams p, const T* logits, const int64_t* labels,
                                             float* row_loss, float* row_lse) {
  LA3_SHARED(float, scratch, [kCrossEntropyThreads / 32]);
  const int64_t row = blockIdx.x;
  const T* z = logits + row * p.vocab;
  float local_max = -FLT_MAX;
  for (int64_t c = threadIdx.x; c < p.vocab; c += blockDim.x) local_max = fmaxf(local_max, load_act(z, c));
  const float max_value = block_max(local_max, scratch);
  float local_sum = 0.0f;
  for (int64_t c = threadIdx.x; c < p.vocab; c += blockDim.x) local_sum += expf(load_act(z, c) - max_value);
  const float sum = block_sum(local_sum, scratch);
  if (threadIdx.x == 0) {
    const float log_sum = logf(sum);
    row_lse[row] = max_value + log_sum;
    const int64_t label = labels[row];
    row_loss[row] = label == p.ignore_index ? 0.0f : (max_value - load_act(z, label)) + log_sum;
  }
}

// dlogits[r] = weight[r] * (softmax(z_r) - onehot(label_r)); 0 for ignored rows.
template <typename T>
__global__ void cross_entropy_backward_kernel(CrossEntropyParams p, const T* logits, const int64_t* labels,
                                              const float* row_lse, const float* row_weight, T* dlogits) {
  const int64_t row = blockIdx.x;
  const T* z = logits + row * p.vocab;
  T* dz = dlogits + row * p.vocab;
  const int64_t label = labels[row];
  const float weight = label == p.ignore_index ? 0.0f : row_weight[row];
  const float lse = row_lse[row];
  for (int64_t c = threadIdx.x; c < p.vocab; c += blockDim.x) {
    float g = weight == 0.0f ? 0.0f : weight * expf(load_act(z, c) - lse);
    if (fabsf(g) < FLT_MIN) g = 0.0f;  // no subnormals into the next GEMM (engine/cpu/denormals.h)
    if (c == label) g -= weight;
    store_act(dz, c, g);
  }
}

// --- launchers (kernels/launch.h): one block per row -------------------------------------------

template <typename Launch, typename T>
void launch_cross_entropy_forward(const Launch& launch, const CrossEntropyParams& p, const T* logits,
                                  const int64_t* labels, float* row_loss, float* row_lse) {
  if (p.rows > 0) {
    launch(cross_entropy_forward_kernel<T>, dim3(static_cast<unsigned>(p.rows)), dim3(kCrossEntropyThreads), 0, p, logits,
           labels, row_loss, row_lse);
  }
}
template <typename Launch, typename T>
void launch_cross_entropy_backward(const Launch& launch, const CrossEntropyParams& p, const T* logits,
                                   const int64_t* labels, const float* row_lse, const float* row_weight,
                                   T* dlogits) {
  if (p.rows > 0) {
    launch(cross_entropy_backward_kernel<T>, dim3(static_cast<unsigned>(p.rows)), dim3(kCrossEntropyThreads), 0, p, logits,
           labels, row_lse, row_weight, dlogits);
  }
}

}  // namespace la3::kernels
