// CudaBackend: fused T5 attention (kernels/attention.cuh: tiled, FlashAttention-2 style).
#include "engine/cuda/cuda_backend.h"
#include "engine/error.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/attention.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

// The saved state is the row log-sum-exp, [batch, heads, q_len]: the backward kernel
// recomputes the probabilities from it, so nothing k_len-sized is stored.
int64_t CudaBackend::attention_saved_elements(const kernels::AttentionParams& p) const {
  return kernels::attention_lse_floats(p);
}

void CudaBackend::attention_forward(const kernels::AttentionParams& p, const float* q, const float* k, const float* v,
                                    const float* bias_table, const int32_t* key_mask, float* out, float* lse) {
  if (p.batch * p.heads * p.q_len == 0) return;
  if (p.k_len == 0) Fail(ErrorKind::kInvalidArgument, name(), " attention: no keys");
  const kernels::AttentionForwardTiles tiles =
      kernels::launch_attention_forward(StreamLaunch{stream_}, p, q, k, v, bias_table, key_mask, out, lse);
  if (tiles.rows == 0) {
    Fail(ErrorKind::kInvalidArgument, name(), " attention: head_dim ", p.head_dim, " with ", p.num_buckets,
         " buckets does not fit the forward kernel's tiles in 48 KB of shared memory (head_dim <= 128 always does)");
  }
}

// dq is accumulated by every key tile (atomics), so it starts from zero; dk and dv are
// written by the one block that owns each key tile. The only workspace is
// D = rowsum(dout * out), [batch, heads, q_len].
void CudaBackend::attention_backward(const kernels::AttentionParams& p, const float* dout, const float* q,
                                     const float* k, const float* v, const float* out, const float* bias_table,
                                     const int32_t* key_mask, const float* lse, float* dq, float* dk, float* dv,
                                     float* dbias_table) {
  const int64_t kv = p.batch * p.k_len * p.heads * p.head_dim;
  if (p.batch * p.heads * p.q_len == 0) {
    fill(kv, DType::kF32, 0.0f, dk);  // no query: no gradient reaches k or v
    fill(kv, DType::kF32, 0.0f, dv);
    return;
  }
  if (p.k_len == 0) Fail(ErrorKind::kInvalidArgument, name(), " attention backward: no keys");
  if (kernels::attention_backward_tiles(p).keys == 0) {
    Fail(ErrorKind::kInvalidArgument, name(), " attention backward: head_dim ", p.head_dim, " with ", p.num_buckets,
         " buckets does not fit the backward kernel's tiles in 48 KB of shared memory (head_dim <= 128 always does)");
  }
  fill(p.batch * p.q_len * p.heads * p.head_dim, DType::kF32, 0.0f, dq);
  DeviceScratch row_dot(*allocator_, static_cast<size_t>(kernels::attention_backward_scratch_floats(p)) * sizeof(float));
  kernels::launch_attention_backward(StreamLaunch{stream_}, p, dout, q, k, v, out, bias_table, key_mask, lse,
                                     row_dot.as<float>(), dq, dk, dv, dbias_table);
}

}  // namespace la3::LA3_CUDA_FLAVOUR
