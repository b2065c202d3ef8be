// CudaBackend: fused T5 attention (kernels/attention.cuh: tiled, FlashAttention-2 style), on
// f32 or bf16 activations.
#include "engine/cuda/act_dispatch.h"
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

void CudaBackend::attention_forward(const kernels::AttentionParams& p, DType act, const void* q, const void* k,
                                    const void* v, const float* bias_table, const int32_t* key_mask, void* out,
                                    float* lse) {
  if (p.batch * p.heads * p.q_len == 0) return;
  if (p.k_len == 0) Fail(ErrorKind::kInvalidArgument, name(), " attention: no keys");
  kernels::AttentionForwardTiles tiles;
  with_act_type("attention_forward", act, [&](auto tag) {
    using T = decltype(tag);
    tiles = kernels::launch_attention_forward(StreamLaunch{stream_}, p, static_cast<const T*>(q),
                                              static_cast<const T*>(k), static_cast<const T*>(v), bias_table,
                                              key_mask, static_cast<T*>(out), lse);
  });
  if (tiles.rows == 0) {
    Fail(ErrorKind::kInvalidArgument, name(), " attention: head_dim ", p.head_dim, " with ", p.num_buckets,
         " buckets does not fit the forward kernel's tiles in 48 KB of shared memory (head_dim <= 128 always does)");
  }
}

// With f32 activations dq is accumulated by every key tile (atomics), so it starts from zero;
// with bf16 the launch sums dq in an f32 accumulator of its scratch and overwrites dq. dk and
// dv are written by the one block that owns each key tile. The only workspace is
// D = rowsum(dout * out), [batch, heads, q_len] (and the bf16 dq accumulator).
void CudaBackend::attention_backward(const kernels::AttentionParams& p, DType act, const void* dout, const void* q,
                                     const void* k, const void* v, const void* out, const float* bias_table,
                                     const int32_t* key_mask, const float* lse, void* dq, void* dk, void* dv,
                                     float* dbias_table) {
  const int64_t kv = p.batch * p.k_len * p.heads * p.head_dim;
  if (p.batch * p.heads * p.q_len == 0) {
    fill(kv, act, 0.0f, dk);  // no query: no gradient reaches k or v
    fill(kv, act, 0.0f, dv);
    return;
  }
  if (p.k_len == 0) Fail(ErrorKind::kInvalidArgument, name(), " attention backward: no keys");
  if (kernels::attention_backward_tiles(p).keys == 0) {
    Fail(ErrorKind::kInvalidArgument, name(), " attention backward: head_dim ", p.head_dim, " with ", p.num_buckets,
         " buckets does not fit the backward kernel's tiles in 48 KB of shared memory (head_dim <= 128 always does)");
  }
  with_act_type("attention_backward", act, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!kernels::attention_dq_in_scratch<T>()) fill(p.batch * p.q_len * p.heads * p.head_dim, act, 0.0f, dq);
    DeviceScratch scratch(*allocator_,
                          static_cast<size_t>(kernels::attention_backward_scratch_floats<T>(p)) * sizeof(float));
    kernels::launch_attention_backward(StreamLaunch{stream_}, p, static_cast<const T*>(dout), static_cast<const T*>(q),
                                       static_cast<const T*>(k), static_cast<const T*>(v), static_cast<const T*>(out),
                                       bias_table, key_mask, lse, scratch.as<float>(), static_cast<T*>(dq),
                                       static_cast<T*>(dk), static_cast<T*>(dv), dbias_table);
  });
}

}  // namespace la3::LA3_CUDA_FLAVOUR
