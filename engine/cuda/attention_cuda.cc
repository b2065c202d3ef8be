// CudaBackend: fused T5 attention (kernels/attention.cuh).
#include <algorithm>

#include "engine/cuda/cuda_backend.h"
#include "engine/error.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/attention.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

// The saved "probs" buffer of the backend contract ([batch, heads, q_len, k_len]) holds the
// kernels' row log-sum-exp in its first batch * heads * q_len floats: the CUDA kernels
// recompute the probabilities instead of storing them.
void CudaBackend::attention_forward(const kernels::AttentionParams& p, const float* q, const float* k, const float* v,
                                       const float* bias_table, const int32_t* key_mask, float* out, float* probs) {
  if (p.batch * p.heads * p.q_len == 0) return;
  if (p.k_len == 0) Fail(ErrorKind::kInvalidArgument, "cuda-emu attention: no keys");
  const dim3 grid(static_cast<unsigned>(p.q_len), static_cast<unsigned>(p.heads), static_cast<unsigned>(p.batch));
  launch_kernel(kernels::attention_forward_kernel, grid, dim3(kernels::kAttentionThreads),
               static_cast<size_t>(p.k_len) * sizeof(float), stream_, p, q, k, v, bias_table, key_mask, out, probs);
}
void CudaBackend::attention_backward(const kernels::AttentionParams& p, const float* dout, const float* q,
                                        const float* k, const float* v, const float* bias_table,
                                        const int32_t* key_mask, const float* probs, float* dq, float* dk, float* dv,
                                        float* dbias_table) {
  if (p.batch * p.heads * p.q_len == 0) return;
  const int64_t kv = p.batch * p.k_len * p.heads * p.head_dim;
  fill(kv, 0.0f, dk);
  fill(kv, 0.0f, dv);
  const dim3 grid(static_cast<unsigned>(p.q_len), static_cast<unsigned>(p.heads), static_cast<unsigned>(p.batch));
  launch_kernel(kernels::attention_backward_kernel, grid, dim3(kernels::kAttentionThreads),
               2 * static_cast<size_t>(p.k_len) * sizeof(float), stream_, p, dout, q, k, v, bias_table, key_mask, probs,
               dq, dk, dv, dbias_table);
}

}  // namespace la3::LA3_CUDA_FLAVOUR
