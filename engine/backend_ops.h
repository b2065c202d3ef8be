// The op list: one entry per kernel method of a device backend, with its contract.
//
// engine/backend.h declares each entry as a pure virtual method of la3::Backend, and every
// backend class (engine/cpu/cpu_backend.h, engine/cuda/cuda_backend.h) declares it as an
// override, all from this one list, so adding an op is one entry here plus its files:
// engine/ops/<op>.cc (validation, allocation, tape), engine/cpu/<op>_cpu.cc and
// engine/cuda/<op>_cuda.cc (with its kernel and launcher in kernels/<op>.cuh). A backend that
// does not implement an entry does not link; one that misspells it does not compile.
//
// Usage: define LA3_BACKEND_OP(return_type, name, parameter_list) and include this file;
// it undefines the macro at its end. `parameter_list` is parenthesised and may carry a
// trailing `const`. No include guard: each includer expands the list once.
//
// Conventions: an op that touches activations takes their element type `DType act` (f32, or
// bf16 on the CUDA devices, which the CPU backend refuses) and its activation buffers, and
// their gradients, as `void*` of that type; everything else is f32 whatever `act` is: weights,
// parameter gradients, statistics (rstd, log-sum-exp, saved attention state), losses and
// optimizer state. Arithmetic is fp32 inside every kernel (kernels/bf16.cuh, load_act/store_act:
// one rounding per stored bf16 value). Ids and labels are int64; masks int32. Every pointer is to contiguous memory on the backend's device.
// "_backward" methods that produce a parameter gradient ACCUMULATE into it (+=) so shared
// parameters (tied embeddings, the relative-position table of every layer) need no extra
// buffers; activation gradients are overwritten.

#ifndef LA3_BACKEND_OP
#error "define LA3_BACKEND_OP(return_type, name, parameter_list) before including engine/backend_ops.h"
#endif

// --- GEMM (engine/cpu/gemm_cpu.cc, engine/cuda/gemm_cuda.cc) -----------------------------
// Row-major strided batched C = alpha op(A) op(B) + beta C.
LA3_BACKEND_OP(void, gemm, (const kernels::GemmParams& p, const float* a, const float* b, float* c))

// --- elementwise ------------------------------------------------------------------------
// Every buffer is of type `act` (a, b, out and their gradients).
LA3_BACKEND_OP(void, add_forward, (const kernels::BinaryParams& p, DType act, const void* a, const void* b, void* out))
// da = dout (when da != nullptr); db += sum of dout over the broadcast repetitions.
LA3_BACKEND_OP(void, add_backward, (const kernels::BinaryParams& p, DType act, const void* dout, void* da, void* db))
LA3_BACKEND_OP(void, mul_forward, (const kernels::BinaryParams& p, DType act, const void* a, const void* b, void* out))
// da = dout * b; db += sum over repetitions of dout * a (either may be nullptr).
LA3_BACKEND_OP(void, mul_backward,
               (const kernels::BinaryParams& p, DType act, const void* dout, const void* a, const void* b, void* da,
                void* db))
// out = alpha * x (in place allowed). x and out of type `act` (f32 for parameter gradients).
LA3_BACKEND_OP(void, scale, (int64_t count, DType act, float alpha, const void* x, void* out))
// y += alpha * x (the tape's gradient accumulation), both of type `act`.
LA3_BACKEND_OP(void, axpy, (int64_t count, DType act, float alpha, const void* x, void* y))
LA3_BACKEND_OP(void, fill, (int64_t count, DType act, float value, void* out))
// out = in converted from type `from` to type `to` (f32 <-> bf16 round to nearest even; the
// same type copies). Tensor::to on a device that the host cannot read goes through it.
LA3_BACKEND_OP(void, convert, (int64_t count, DType from, const void* in, DType to, void* out))

// --- activations ------------------------------------------------------------------------
LA3_BACKEND_OP(void, relu_forward, (int64_t count, const float* x, float* out))
LA3_BACKEND_OP(void, relu_backward, (int64_t count, const float* dout, const float* x, float* dx))
// gelu_new = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
LA3_BACKEND_OP(void, gelu_new_forward, (int64_t count, const float* x, float* out))
LA3_BACKEND_OP(void, gelu_new_backward, (int64_t count, const float* dout, const float* x, float* dx))
// Gated-GELU FFN product: out = gelu_new(gate) * linear.
LA3_BACKEND_OP(void, gated_gelu_forward, (int64_t count, const float* gate, const float* linear, float* out))
LA3_BACKEND_OP(void, gated_gelu_backward,
               (int64_t count, const float* dout, const float* gate, const float* linear, float* dgate,
                float* dlinear))

// --- RMSNorm ----------------------------------------------------------------------------
// rstd [rows] is saved for backward.
LA3_BACKEND_OP(void, rmsnorm_forward,
               (const kernels::RmsNormParams& p, const float* x, const float* weight, float* out, float* rstd))
LA3_BACKEND_OP(void, rmsnorm_backward,
               (const kernels::RmsNormParams& p, const float* dout, const float* x, const float* weight,
                const float* rstd, float* dx, float* dweight))
// The residual add fused with the pre-norm that follows it in every T5 sublayer:
// sum = residual + branch (the new residual stream) and out = rmsnorm(sum), one pass.
// Bit-identical to add_forward followed by rmsnorm_forward. Backward is rmsnorm_backward
// on `sum` (the add passes its gradient through).
LA3_BACKEND_OP(void, add_rmsnorm_forward,
               (const kernels::RmsNormParams& p, const float* residual, const float* branch, const float* weight,
                float* sum, float* out, float* rstd))
// RMSNorm on bf16 activations (uint16_t bits, round to nearest even): fp32 weight, fp32
// statistics, rstd and dweight. `branch` and `sum` may be null (no fused residual add);
// with a branch, the sum is rounded to bf16 before it is normalised (what an unfused bf16
// add would store). dweight, when not null, accumulates.
LA3_BACKEND_OP(void, rmsnorm_forward_bf16,
               (const kernels::RmsNormParams& p, const uint16_t* x, const uint16_t* branch, const float* weight,
                uint16_t* sum, uint16_t* out, float* rstd))
LA3_BACKEND_OP(void, rmsnorm_backward_bf16,
               (const kernels::RmsNormParams& p, const uint16_t* dout, const uint16_t* x, const float* weight,
                const float* rstd, uint16_t* dx, float* dweight))

// --- softmax ----------------------------------------------------------------------------
LA3_BACKEND_OP(void, softmax_forward, (const kernels::SoftmaxParams& p, const float* x, float* out))
LA3_BACKEND_OP(void, softmax_backward,
               (const kernels::SoftmaxParams& p, const float* dout, const float* out, float* dx))

// --- attention --------------------------------------------------------------------------
// Saved state: the forward leaves in `saved` what its backward needs, and the backend alone
// decides what that is and how large (attention_saved_elements floats, an opaque buffer the op
// allocates and keeps until backward). The CPU backend keeps the probabilities
// [batch, heads, q_len, k_len]; the CUDA backends keep only the row log-sum-exp
// [batch, heads, q_len] and recompute the probabilities, so on them nothing k_len-squared is
// ever allocated, in forward or backward.
LA3_BACKEND_OP(int64_t, attention_saved_elements, (const kernels::AttentionParams& p) const)
// bias_table and key_mask may be nullptr when the params say they are absent.
// q, k, v and out are of type `act`; bias_table and `saved` are f32 whatever `act` is.
LA3_BACKEND_OP(void, attention_forward,
               (const kernels::AttentionParams& p, DType act, const void* q, const void* k, const void* v,
                const float* bias_table, const int32_t* key_mask, void* out, float* saved))
// dq, dk, dv are overwritten; dbias_table (when non-null) is accumulated. key_mask is
// needed to recognise fully masked rows, which get no gradient; bias_table lets a backend
// recompute the scores instead of saving probabilities. `saved` is what this backend's forward
// wrote. `out` is the forward's output ([batch, q_len, heads, head_dim]): a tiled backend needs
// rowsum(dout * out) (FlashAttention-2's D) without the full probability rows. dout, q, k, v,
// out, dq, dk and dv are of type `act`; bias_table, saved and dbias_table are f32.
LA3_BACKEND_OP(void, attention_backward,
               (const kernels::AttentionParams& p, DType act, const void* dout, const void* q, const void* k,
                const void* v, const void* out, const float* bias_table, const int32_t* key_mask,
                const float* saved, void* dq, void* dk, void* dv, float* dbias_table))

// --- embedding --------------------------------------------------------------------------
LA3_BACKEND_OP(void, embedding_forward,
               (const kernels::EmbeddingParams& p, const int64_t* ids, const float* table, float* out))
LA3_BACKEND_OP(void, embedding_backward,
               (const kernels::EmbeddingParams& p, const int64_t* ids, const float* dout, float* dtable))

// --- dropout ----------------------------------------------------------------------------
// out = x * keep / (1 - p); backward is the same function applied to dout.
LA3_BACKEND_OP(void, dropout_forward, (const kernels::DropoutParams& p, int64_t count, const float* x, float* out))

// --- cross-entropy ----------------------------------------------------------------------
// Per-row loss (0 for ignored rows) and log-sum-exp (saved for backward).
LA3_BACKEND_OP(void, cross_entropy_forward,
               (const kernels::CrossEntropyParams& p, const float* logits, const int64_t* labels, float* row_loss,
                float* row_lse))
// dlogits[r] = row_weight[r] * (softmax(logits[r]) - onehot(label[r])); 0 for ignored rows.
LA3_BACKEND_OP(void, cross_entropy_backward,
               (const kernels::CrossEntropyParams& p, const float* logits, const int64_t* labels,
                const float* row_lse, const float* row_weight, float* dlogits))

// --- the k+1-caption loss (docs/ARCHITECTURE.md; kernels/caption_loss.cuh) ----------------
// Token = (row, position) of logits [rows, length, vocab]. Vocabulary pass: log_prob[i] =
// log softmax(logits[i])[labels[i]] (0 where ignored) and lse[i] saved for backward.
LA3_BACKEND_OP(void, caption_loss_log_probs,
               (const kernels::CaptionLossParams& p, const float* logits, const int64_t* labels, float* log_prob,
                float* lse))
// Mode mean with a gradient, one pass: log_prob as above, inverse_tokens[0] = 1 / max(counted
// tokens, 1) (1 / p.normaliser when that is > 0) and dlogits = (softmax - onehot) *
// inverse_tokens (the loss gradient for an upstream gradient of 1; 0 for ignored tokens).
LA3_BACKEND_OP(void, caption_loss_mean_fused,
               (const kernels::CaptionLossParams& p, const float* logits, const int64_t* labels, float* log_prob,
                float* inverse_tokens, float* dlogits))
// Combines log_prob per group in the mode's formula: loss[0] = sum_g L_g / N (0 when N is 0),
// inverse_tokens[0] = 1 / N (1 when N is 0), and (when token_weight is not null)
// token_weight[i] = d sum_g L_g / d log_prob[i]. N = p.normaliser when > 0, else the batch's
// target tokens (summed over the groups in id order). The sums are deterministic.
LA3_BACKEND_OP(void, caption_loss_combine,
               (const kernels::CaptionLossParams& p, const float* log_prob, const int64_t* labels,
                const int64_t* group, float* token_weight, float* loss, float* inverse_tokens))
// dlogits[i] = s * token_weight[i] * (onehot(labels[i]) - softmax(logits[i])), the gradient
// of s * sum_i token_weight[i] * log_prob[i], with s = upstream[0] * inverse_tokens[0] read
// on the device (a null pointer counts as 1); 0 for ignored tokens.
LA3_BACKEND_OP(void, caption_loss_backward,
               (const kernels::CaptionLossParams& p, const float* logits, const int64_t* labels, const float* lse,
                const float* token_weight, const float* upstream, const float* inverse_tokens, float* dlogits))
// out[0] = alpha * sum(x) accumulated in double in a fixed order (a device scalar: the
// loss reductions never copy to the host).
LA3_BACKEND_OP(void, sum_to_scalar, (int64_t count, const float* x, double alpha, float* out))
// x[i] *= scalar[0], the scalar read on the device (an upstream gradient).
LA3_BACKEND_OP(void, scale_by_device_scalar, (int64_t count, const float* scalar, float* x))

// --- reductions -------------------------------------------------------------------------
// sum(x[i]^2) accumulated in double (the global gradient norm for clipping). Backend also
// has an overload over several buffers (Backend::Span), written by hand in backend.h.
LA3_BACKEND_OP(double, sum_of_squares, (int64_t count, const float* x))

// --- optimizer --------------------------------------------------------------------------
// When param_bf16 is not null it receives the updated weights rounded to bf16 (the copy a
// bf16 GEMM reads; see Backend::register_bf16_copy).
LA3_BACKEND_OP(void, adamw_step,
               (const kernels::AdamWParams& p, float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                uint16_t* param_bf16))

// --- incremental decoding (engine/ops/decoding.h; kernels/decoding_params.h) ----------------
// The key/value cache write of one new position per row.
LA3_BACKEND_OP(void, cache_write, (const kernels::CacheWriteParams& p, const float* src, float* dst))
// Beam reordering of cached rows in place: new row r = old row source_rows[r] (within groups).
LA3_BACKEND_OP(void, reorder_rows, (const kernels::RowReorderParams& p, const int64_t* source_rows, float* data))
// The logits processors (and log-softmax for beam search) into `processed` (may be `logits`);
// log_probs, when not null, receives log_softmax(logits). beam_scores may be null.
LA3_BACKEND_OP(void, process_logits,
               (const kernels::LogitsProcessParams& p, const float* logits, const int64_t* history,
                const float* beam_scores, float* processed, float* log_probs))
// Top k of each group: indices and values [groups, k]; companion_values[g, j] =
// companion[g, indices[g, j]] when companion is not null.
LA3_BACKEND_OP(void, top_k,
               (const kernels::TopKParams& p, const float* scores, const float* companion, int64_t* indices,
                float* values, float* companion_values))

#undef LA3_BACKEND_OP
