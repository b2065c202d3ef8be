// The CPU backend: the readable fp32 reference every other backend is checked against.
// GEMM goes to OpenBLAS; each op's loops live in engine/cpu/<op>_cpu.cc.
#pragma once

#include "engine/backend.h"

namespace la3 {

class CpuBackend final : public Backend {
 public:
  Device device() const override;
  std::string name() const override;
  void gemm(const kernels::GemmParams& p, const float* a, const float* b, float* c) override;
  void add_forward(const kernels::BinaryParams& p, const float* a, const float* b, float* out) override;
  void add_backward(const kernels::BinaryParams& p, const float* dout, float* da, float* db) override;
  void mul_forward(const kernels::BinaryParams& p, const float* a, const float* b, float* out) override;
  void mul_backward(const kernels::BinaryParams& p, const float* dout, const float* a, const float* b, float* da, float* db) override;
  void scale(int64_t count, float alpha, const float* x, float* out) override;
  void axpy(int64_t count, float alpha, const float* x, float* y) override;
  void fill(int64_t count, float value, float* out) override;
  void relu_forward(int64_t count, const float* x, float* out) override;
  void relu_backward(int64_t count, const float* dout, const float* x, float* dx) override;
  void gelu_new_forward(int64_t count, const float* x, float* out) override;
  void gelu_new_backward(int64_t count, const float* dout, const float* x, float* dx) override;
  void gated_gelu_forward(int64_t count, const float* gate, const float* linear, float* out) override;
  void gated_gelu_backward(int64_t count, const float* dout, const float* gate, const float* linear, float* dgate, float* dlinear) override;
  void rmsnorm_forward(const kernels::RmsNormParams& p, const float* x, const float* weight, float* out, float* rstd) override;
  void rmsnorm_backward(const kernels::RmsNormParams& p, const float* dout, const float* x, const float* weight, const float* rstd, float* dx, float* dweight) override;
  void add_rmsnorm_forward(const kernels::RmsNormParams& p, const float* residual, const float* branch, const float* weight, float* sum, float* out, float* rstd) override;
  void rmsnorm_forward_bf16(const kernels::RmsNormParams& p, const uint16_t* x, const uint16_t* branch, const float* weight, uint16_t* sum, uint16_t* out, float* rstd) override;
  void rmsnorm_backward_bf16(const kernels::RmsNormParams& p, const uint16_t* dout, const uint16_t* x, const float* weight, const float* rstd, uint16_t* dx, float* dweight) override;
  void softmax_forward(const kernels::SoftmaxParams& p, const float* x, float* out) override;
  void softmax_backward(const kernels::SoftmaxParams& p, const float* dout, const float* out, float* dx) override;
  void attention_forward(const kernels::AttentionParams& p, const float* q, const float* k, const float* v, const float* bias_table, const int32_t* key_mask, float* out, float* probs) override;
  void attention_backward(const kernels::AttentionParams& p, const float* dout, const float* q, const float* k, const float* v, const float* out, const float* bias_table, const int32_t* key_mask, const float* probs, float* dq, float* dk, float* dv, float* dbias_table) override;
  void embedding_forward(const kernels::EmbeddingParams& p, const int64_t* ids, const float* table, float* out) override;
  void embedding_backward(const kernels::EmbeddingParams& p, const int64_t* ids, const float* dout, float* dtable) override;
  void dropout_forward(const kernels::DropoutParams& p, int64_t count, const float* x, float* out) override;
  void cross_entropy_forward(const kernels::CrossEntropyParams& p, const float* logits, const int64_t* labels, float* row_loss, float* row_lse) override;
  void cross_entropy_backward(const kernels::CrossEntropyParams& p, const float* logits, const int64_t* labels, const float* row_lse, const float* row_weight, float* dlogits) override;
  double sum_of_squares(int64_t count, const float* x) override;
  using Backend::sum_of_squares;
  void caption_loss_log_probs(const kernels::CaptionLossParams& p, const float* logits, const int64_t* labels, float* log_prob, float* lse) override;
  void caption_loss_mean_fused(const kernels::CaptionLossParams& p, const float* logits, const int64_t* labels, float* log_prob, float* inverse_tokens, float* dlogits) override;
  void caption_loss_combine(const kernels::CaptionLossParams& p, const float* log_prob, const int64_t* labels, const int64_t* group, float* token_weight, float* loss, float* inverse_tokens) override;
  void caption_loss_backward(const kernels::CaptionLossParams& p, const float* logits, const int64_t* labels, const float* lse, const float* token_weight, const float* upstream, const float* inverse_tokens, float* dlogits) override;
  void sum_to_scalar(int64_t count, const float* x, double alpha, float* out) override;
  void scale_by_device_scalar(int64_t count, const float* scalar, float* x) override;
  void adamw_step(const kernels::AdamWParams& p, float* param, const float* grad, float* exp_avg, float* exp_avg_sq, uint16_t* param_bf16) override;
  void cast_to_bf16(int64_t count, const float* in, uint16_t* out) override;
  // ===== incremental decoding (engine/cpu/decoding_cpu.cc) =====
  void cache_write(const kernels::CacheWriteParams& p, const float* src, float* dst) override;
  void reorder_rows(const kernels::RowReorderParams& p, const int64_t* source_rows, float* data) override;
  void process_logits(const kernels::LogitsProcessParams& p, const float* logits, const int64_t* history, const float* beam_scores, float* processed, float* log_probs) override;
  void top_k(const kernels::TopKParams& p, const float* scores, const float* companion, int64_t* indices, float* values, float* companion_values) override;
  // ===== end of incremental decoding =====
};

// Threads OpenBLAS and the OpenMP loops may use (0 = leave the library defaults).
void set_cpu_threads(int threads);

}  // namespace la3
