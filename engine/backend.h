// The device backend interface: one virtual method per kernel an op needs.
//
// An op (engine/ops/<op>.cc) validates its tensors, allocates outputs, and calls
// backend_for(device).<op>_forward/_backward with raw pointers and a kernels/op_params.h
// struct. Each backend implements every method (they are pure virtual, so a backend that
// forgets one does not compile): CpuBackend in engine/cpu/<op>_cpu.cc, the CUDA backends
// (real and SIMT-emulated, the same kernel source) in their own folders.
//
// Conventions: all floating buffers are f32 (activations, weights, gradients); ids and labels
// are int64; masks int32. Every pointer is to contiguous memory on the backend's device.
// "_backward" methods that produce a parameter gradient ACCUMULATE into it (+=) so shared
// parameters (tied embeddings, the relative-position table of every layer) need no extra
// buffers; activation gradients are overwritten.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/device.h"
#include "kernels/op_params.h"

namespace la3 {

// How a backend runs GEMMs (what torch.backends.cuda.matmul settings choose).
enum class GemmPrecision {
  // bf16 operands, fp32 accumulation and output: the training default of the CUDA backends
  // (docs/CUDA.md, Precision). cuda-emu rounds the operands to bf16 the same way before its
  // CPU GEMM.
  kBf16,
  // fp32 operands and accumulation (no TF32): what the CPU backend always does; on the CUDA
  // backends, for exact comparisons.
  kFp32,
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string name() const = 0;

  // --- memory ---------------------------------------------------------------------------
  // Copies between host memory and this backend's memory, and within it. They are ordered
  // after every kernel queued before them; copy_to_host returns when the bytes are on the
  // host. The defaults are memcpy, right for backends whose memory the host can address.
  virtual void copy_to_host(void* host_dst, const void* device_src, size_t bytes);
  virtual void copy_from_host(void* device_dst, const void* host_src, size_t bytes);
  virtual void copy_on_device(void* device_dst, const void* device_src, size_t bytes);
  // Waits for all queued work (no-op on the CPU).
  virtual void synchronize() {}
  // The CPU backend is fp32 only and ignores this.
  virtual void set_gemm_precision(GemmPrecision /*precision*/) {}
  virtual GemmPrecision gemm_precision() const { return GemmPrecision::kFp32; }

  // --- GEMM ---------------------------------------------------------------------------
  virtual void gemm(const kernels::GemmParams& p, const float* a, const float* b, float* c) = 0;

  // --- elementwise --------------------------------------------------------------------
  virtual void add_forward(const kernels::BinaryParams& p, const float* a, const float* b, float* out) = 0;
  // da = dout (when da != nullptr); db += sum of dout over the broadcast repetitions.
  virtual void add_backward(const kernels::BinaryParams& p, const float* dout, float* da, float* db) = 0;
  virtual void mul_forward(const kernels::BinaryParams& p, const float* a, const float* b, float* out) = 0;
  // da = dout * b; db += sum over repetitions of dout * a (either may be nullptr).
  virtual void mul_backward(const kernels::BinaryParams& p, const float* dout, const float* a,
                            const float* b, float* da, float* db) = 0;
  // out = alpha * x (in place allowed).
  virtual void scale(int64_t count, float alpha, const float* x, float* out) = 0;
  // y += alpha * x.
  virtual void axpy(int64_t count, float alpha, const float* x, float* y) = 0;
  virtual void fill(int64_t count, float value, float* out) = 0;

  // --- activations --------------------------------------------------------------------
  virtual void relu_forward(int64_t count, const float* x, float* out) = 0;
  virtual void relu_backward(int64_t count, const float* dout, const float* x, float* dx) = 0;
  // gelu_new = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  virtual void gelu_new_forward(int64_t count, const float* x, float* out) = 0;
  virtual void gelu_new_backward(int64_t count, const float* dout, const float* x, float* dx) = 0;
  // Gated-GELU FFN product: out = gelu_new(gate) * linear.
  virtual void gated_gelu_forward(int64_t count, const float* gate, const float* linear, float* out) = 0;
  virtual void gated_gelu_backward(int64_t count, const float* dout, const float* gate,
                                   const float* linear, float* dgate, float* dlinear) = 0;

  // --- normalisation and softmax -------------------------------------------------------
  // rstd [rows] is saved for backward.
  virtual void rmsnorm_forward(const kernels::RmsNormParams& p, const float* x, const float* weight,
                               float* out, float* rstd) = 0;
  virtual void rmsnorm_backward(const kernels::RmsNormParams& p, const float* dout, const float* x,
                                const float* weight, const float* rstd, float* dx, float* dweight) = 0;
  // The residual add fused with the pre-norm that follows it in every T5 sublayer:
  // sum = residual + branch (the new residual stream) and out = rmsnorm(sum), one pass.
  // Bit-identical to add_forward followed by rmsnorm_forward. Backward is rmsnorm_backward
  // on `sum` (the add passes its gradient through).
  virtual void add_rmsnorm_forward(const kernels::RmsNormParams& p, const float* residual, const float* branch,
                                   const float* weight, float* sum, float* out, float* rstd) = 0;
  // RMSNorm on bf16 activations (uint16_t bits, round to nearest even): fp32 weight, fp32
  // statistics, rstd and dweight. `branch` and `sum` may be null (no fused residual add);
  // with a branch, the sum is rounded to bf16 before it is normalised (what an unfused bf16
  // add would store). dweight, when not null, accumulates.
  virtual void rmsnorm_forward_bf16(const kernels::RmsNormParams& p, const uint16_t* x, const uint16_t* branch,
                                    const float* weight, uint16_t* sum, uint16_t* out, float* rstd) = 0;
  virtual void rmsnorm_backward_bf16(const kernels::RmsNormParams& p, const uint16_t* dout, const uint16_t* x,
                                     const float* weight, const float* rstd, uint16_t* dx, float* dweight) = 0;
  virtual void softmax_forward(const kernels::SoftmaxParams& p, const float* x, float* out) = 0;
  virtual void softmax_backward(const kernels::SoftmaxParams& p, const float* dout, const float* out,
                                float* dx) = 0;

  // --- attention ------------------------------------------------------------------------
  // bias_table and key_mask may be nullptr when the params say they are absent.
  virtual void attention_forward(const kernels::AttentionParams& p, const float* q, const float* k,
                                 const float* v, const float* bias_table, const int32_t* key_mask,
                                 float* out, float* probs) = 0;
  // dq, dk, dv are overwritten; dbias_table (when non-null) is accumulated. key_mask is
  // needed to recognise fully masked rows, which get no gradient; bias_table lets a backend
  // recompute the scores instead of reading saved probabilities. `probs` is the buffer the
  // forward filled ([batch, heads, q_len, k_len]; a backend may keep other saved state in it).
  // `out` is the forward's output ([batch, q_len, heads, head_dim]): a tiled backend needs
  // rowsum(dout * out) (FlashAttention-2's D) without the full probability rows.
  virtual void attention_backward(const kernels::AttentionParams& p, const float* dout, const float* q,
                                  const float* k, const float* v, const float* out, const float* bias_table,
                                  const int32_t* key_mask, const float* probs, float* dq, float* dk, float* dv,
                                  float* dbias_table) = 0;

  // --- embedding, dropout, loss -------------------------------------------------------
  virtual void embedding_forward(const kernels::EmbeddingParams& p, const int64_t* ids, const float* table,
                                 float* out) = 0;
  virtual void embedding_backward(const kernels::EmbeddingParams& p, const int64_t* ids, const float* dout,
                                  float* dtable) = 0;
  // out = x * keep / (1 - p); backward is the same function applied to dout.
  virtual void dropout_forward(const kernels::DropoutParams& p, int64_t count, const float* x, float* out) = 0;
  // Per-row loss (0 for ignored rows) and log-sum-exp (saved for backward).
  virtual void cross_entropy_forward(const kernels::CrossEntropyParams& p, const float* logits,
                                     const int64_t* labels, float* row_loss, float* row_lse) = 0;
  // dlogits[r] = row_weight[r] * (softmax(logits[r]) - onehot(label[r])); 0 for ignored rows.
  virtual void cross_entropy_backward(const kernels::CrossEntropyParams& p, const float* logits,
                                      const int64_t* labels, const float* row_lse,
                                      const float* row_weight, float* dlogits) = 0;

  // --- the k+1-caption loss (docs/ARCHITECTURE.md; kernels/caption_loss.cuh) -----------------
  // Token = (row, position) of logits [rows, length, vocab]. Vocabulary pass: log_prob[i] =
  // log softmax(logits[i])[labels[i]] (0 where ignored) and lse[i] saved for backward.
  virtual void caption_loss_log_probs(const kernels::CaptionLossParams& p, const float* logits, const int64_t* labels,
                                      float* log_prob, float* lse) = 0;
  // Mode mean with a gradient, one pass: log_prob as above, inverse_tokens[0] = 1 / max(counted
  // tokens, 1) (1 / p.normaliser when that is > 0) and dlogits = (softmax - onehot) *
  // inverse_tokens (the loss gradient for an upstream gradient of 1; 0 for ignored tokens).
  virtual void caption_loss_mean_fused(const kernels::CaptionLossParams& p, const float* logits,
                                       const int64_t* labels, float* log_prob, float* inverse_tokens,
                                       float* dlogits) = 0;
  // Combines log_prob per group in the mode's formula: loss[0] = sum_g L_g / N (0 when N is 0),
  // inverse_tokens[0] = 1 / N (1 when N is 0), and (when token_weight is not null)
  // token_weight[i] = d sum_g L_g / d log_prob[i]. N = p.normaliser when > 0, else the batch's
  // target tokens (summed over the groups in id order). The sums are deterministic.
  virtual void caption_loss_combine(const kernels::CaptionLossParams& p, const float* log_prob, const int64_t* labels,
                                    const int64_t* group, float* token_weight, float* loss,
                                    float* inverse_tokens) = 0;
  // dlogits[i] = s * token_weight[i] * (onehot(labels[i]) - softmax(logits[i])), the gradient
  // of s * sum_i token_weight[i] * log_prob[i], with s = upstream[0] * inverse_tokens[0] read
  // on the device (a null pointer counts as 1); 0 for ignored tokens.
  virtual void caption_loss_backward(const kernels::CaptionLossParams& p, const float* logits, const int64_t* labels,
                                     const float* lse, const float* token_weight, const float* upstream,
                                     const float* inverse_tokens, float* dlogits) = 0;

  // --- reductions -----------------------------------------------------------------------
  // sum(x[i]^2) accumulated in double (the global gradient norm for clipping).
  virtual double sum_of_squares(int64_t count, const float* x) = 0;
  // The sum over several buffers (the global gradient norm over every parameter). The
  // default adds the single-buffer sums; the CUDA backends queue every reduction and read the
  // partials back with one copy (one synchronisation per step instead of one per tensor).
  struct Span {
    const float* data;
    int64_t count;
  };
  virtual double sum_of_squares(const std::vector<Span>& spans) {
    double sum = 0.0;
    for (const Span& span : spans) sum += sum_of_squares(span.count, span.data);
    return sum;
  }
  // The same reduction left on the device: queues it and writes partial sums into
  // `partials` (device memory of this backend, sum_of_squares_partial_count(spans) doubles)
  // without synchronising; their sum in index order is sum_of_squares(spans) exactly. A
  // trainer copies them back together with its loss: one synchronisation per step for both.
  // The default (host-accessible memory) writes the one total.
  virtual int64_t sum_of_squares_partial_count(const std::vector<Span>& /*spans*/) const { return 1; }
  virtual void sum_of_squares_partials(const std::vector<Span>& spans, double* partials) {
    partials[0] = sum_of_squares(spans);
  }
  // out[0] = alpha * sum(x) accumulated in double in a fixed order (a device scalar: the
  // loss reductions never copy to the host).
  virtual void sum_to_scalar(int64_t count, const float* x, double alpha, float* out) = 0;
  // x[i] *= scalar[0], the scalar read on the device (an upstream gradient).
  virtual void scale_by_device_scalar(int64_t count, const float* scalar, float* x) = 0;

  // --- optimizer ------------------------------------------------------------------------
  // When param_bf16 is not null it receives the updated weights rounded to bf16 (the copy a
  // bf16 GEMM reads; see register_bf16_copy).
  virtual void adamw_step(const kernels::AdamWParams& p, float* param, const float* grad, float* exp_avg,
                          float* exp_avg_sq, uint16_t* param_bf16) = 0;
  // Casts `count` floats to bf16 (round to nearest even) on this device.
  virtual void cast_to_bf16(int64_t count, const float* in, uint16_t* out) = 0;

  // --- bf16 weight copies ---------------------------------------------------------------
  // `copy` holds the bf16 rounding of the fp32 `master` (count elements) and the caller keeps
  // it so (AdamW writes both in one pass). A bf16 GEMM whose operand lies inside `master` reads
  // the copy instead of casting the operand again: the same bits, 2 bytes per element read
  // instead of 4 read + 2 written + 2 read. Registering the same master again replaces the
  // copy. Backends without bf16 GEMMs ignore this.
  virtual void register_bf16_copy(const float* /*master*/, const uint16_t* /*copy*/, int64_t /*count*/) {}
  virtual void unregister_bf16_copy(const float* /*master*/) {}
  // How many GEMM operands were cast to bf16, and how many were read from a registered copy,
  // since the backend was created (for tests and benchmarks).
  struct GemmOperandCounts {
    int64_t cast = 0;
    int64_t from_copy = 0;
  };
  virtual GemmOperandCounts gemm_operand_counts() const { return {}; }
};

// The backend of a device; throws EngineError(kUnimplemented) when it is not available.
Backend& backend_for(Device device);

// Installs a backend (not owned; lives for the whole process). The CPU backend is built in.
void register_backend(DeviceType type, Backend* backend);

}  // namespace la3
