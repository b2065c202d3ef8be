// cuDNN's attention, as the baseline of bench/kernels_bench.cu's attention rows (built only
// when CUDA and cuDNN are found; LA3_HAVE_CUDNN).
//
// The cuDNN call that covers T5's attention without a graph library is the multi-head
// attention API (cudnnMultiHeadAttnForward / BackwardData) with every projection disabled:
// scores q.k without scaling (smScaler 1), softmax, times v, fp32 data and compute, default math
// (no TF32), no dropout. Heads are mapped onto cuDNN's beam dimension with the one-to-one query
// map, so the layout [batch, len, heads, head_dim] is used in place, exactly as our kernels
// read it. What this API cannot take is an additive bias, so only T5's cross-attention (no
// relative-position bias) and bias-free causal self-attention are comparable; the benchmark
// runs our kernel on the same bias-free problems. cuDNN's fused flash SDPA needs the backend
// graph API (cudnn-frontend, not installed); it is not used.
#pragma once

#include <cuda_runtime.h>

#include <memory>
#include <string>

namespace la3::bench {

struct CudnnAttentionShape {
  int batch = 0, heads = 0, q_len = 0, k_len = 0, head_dim = 0;
  bool causal = false;
};

class CudnnAttention {
 public:
  // Builds the descriptors and buffers on `stream`; throws std::runtime_error naming the
  // cuDNN call and its status when cuDNN refuses (no GPU, unsupported configuration).
  CudnnAttention(const CudnnAttentionShape& shape, cudaStream_t stream);
  ~CudnnAttention();
  CudnnAttention(const CudnnAttention&) = delete;
  CudnnAttention& operator=(const CudnnAttention&) = delete;

  // Training-mode forward (fills the reserve space the backward reads).
  void forward(const float* q, const float* k, const float* v, float* out);
  // dq, dk, dv for the last forward's inputs.
  void backward(const float* dout, const float* q, const float* k, const float* v, float* dq, float* dk, float* dv);

  // cuDNN's version as "major.minor.patch".
  static std::string version();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace la3::bench
