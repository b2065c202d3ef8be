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
// Row-major strided batched C = alpha op(A) op(B) + beta C. The element types are per operand
// (p.a_type, p.b_type, p.c_type; f32 by default): the CPU backend takes f32 only; the CUDA
// backends take bf16 A and B directly and an f32 operand beside a bf16 one through its registered
// bf16 copy (Backend::register_bf16_copy) or a cast, accumulate in fp32, and write C in f32 or
// bf16 (a bf16 C is read as bf16 when beta != 0). All-f32 GEMMs follow the GemmPrecision mode.
LA3_BACKEND_OP(void, gemm, (const kernels::GemmParams& p, const void* a, const void* b, void* c))

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
// Every buffer is of type `act` (inputs, outputs and their gradients).
LA3_BACKEND_OP(void, relu_forward, (int64_t count, DType act, const void* x, void* out))
LA3_BACKEND_OP(void, relu_backward, (int64_t count, DType act, const void* dout, const void* x, void* dx))
// gelu_new = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
LA3_BACKEND_OP(void, gelu_new_forward, (int64_t count, DType act, const void* x, void* out))
LA3_BACKEND_OP(void, gelu_new_backward, (int64_t count, DType act, const void* dout, const void* x, void* dx))
// Gated-GELU FFN product: out = gelu_new(gate) * linear.
LA3_BACKEND_OP(void, gated_gelu_forward,
               (int64_t count, DType act, const void* gate, const void* linear, void* out))
// dgate or dlinear may be nullptr (not wanted).
LA3_BACKEND_OP(void, gated_gelu_backward,
               (int64_t count, DType act, const void* dout, const void* gate, const void* linear, void* dgate,
                void* dlinear))

// --- RMSNorm ----------------------------------------------------------------------------
// x, residual, branch, sum, out, dout and dx are of type `act`; weight, rstd and dweight are
// f32 and every statistic is fp32. rstd [rows] is saved for backward. The CPU backend keeps
// bf16 RMSNorm too (the reference of the bf16 kernels). dweight (when not null) accumulates.
LA3_BACKEND_OP(void, rmsnorm_forward,
               (const kernels::RmsNormParams& p, DType act, const void* x, const float* weight, void* out,
                float* rstd))
LA3_BACKEND_OP(void, rmsnorm_backward,
               (const kernels::RmsNormParams& p, DType act, const void* dout, const void* x, const float* weight,
                const float* rstd, void* dx, float* dweight))
// The residual add fused with the pre-norm that follows it in every T5 sublayer:
// sum = residual + branch (the new residual stream) and out = rmsnorm(sum), one pass.
// Bit-identical to add_forward followed by rmsnorm_forward: with bf16 the sum is rounded to
// bf16 before it is normalised (what the unfused add stores). Backward is rmsnorm_backward
// on `sum` (the add passes its gradient through).
LA3_BACKEND_OP(void, add_rmsnorm_forward,
               (const kernels::RmsNormParams& p, DType act, const void* residual, const void* branch,
                const float* weight, void* sum, void* out, float* rstd))

// --- softmax ----------------------------------------------------------------------------
// x, out, dout and dx of type `act`; the row maximum and sums are fp32.
LA3_BACKEND_OP(void, softmax_forward, (const kernels::SoftmaxParams& p, DType act, const void* x, void* out))
LA3_BACKEND_OP(void, softmax_backward,
               (const kernels::SoftmaxParams& p, DType act, const void* dout, const void* out, void* dx))

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
// The table and its gradient are f32 (a weight); out and dout are of type `act`. dtable
// accumulates.
LA3_BACKEND_OP(void, embedding_forward,
               (const kernels::EmbeddingParams& p, DType act, const int64_t* ids, const float* table, void* out))
LA3_BACKEND_OP(void, embedding_backward,
               (const kernels::EmbeddingParams& p, DType act, const int64_t* ids, const void* dout, float* dtable))

// --- dropout ----------------------------------------------------------------------------
// out = x * keep / (1 - p); backward is the same function applied to dout. x and out of type
// `act`; the keep mask depends on the Philox key only, so it is the same for f32 and bf16.
LA3_BACKEND_OP(void, dropout_forward,
               (const kernels::DropoutParams& p, int64_t count, DType act, const void* x, void* out))

// --- cross-entropy ----------------------------------------------------------------------
// Per-row loss (0 for ignored rows) and log-sum-exp (saved for backward). logits and dlogits
// are of type `act`; row_loss, row_lse and row_weight are f32.
LA3_BACKEND_OP(void, cross_entropy_forward,
               (const kernels::CrossEntropyParams& p, DType act, const void* logits, const int64_t* labels,
                float* row_loss, float* row_lse))
// dlogits[r] = row_weight[r] * (softmax(logits[r]) - onehot(label[r])); 0 for ignored rows.
LA3_BACKEND_OP(void, cross_entropy_backward,
               (const kernels::CrossEntropyParams& p, DType act, const void* logits, const int64_t* labels,
                const float* row_lse, const float* row_weight, void* dlogits))

// --- the k+1-caption loss (docs/ARCHITECTURE.md; kernels/caption_loss.cuh) ----------------
// Token = (row, position) of logits [rows, length, vocab]. Vocabulary pass: log_prob[i] =
// log softmax(logits[i])[labels[i]] (0 where ignored) and lse[i] saved for backward. logits and
// dlogits (here and below) are of type `act`; log_prob, lse, token weights and the loss are f32.
LA3_BACKEND_OP(void, caption_loss_log_probs,
               (const kernels::CaptionLossParams& p, DType act, const void* logits, const int64_t* labels,
                float* log_prob, float* lse))
// Mode mean with a gradient, one pass: log_prob as above, inverse_tokens[0] = 1 / max(counted
// tokens, 1) (1 / p.normaliser when that is > 0) and dlogits = (softmax - onehot) *
// inverse_tokens (the loss gradient for an upstream gradient of 1; 0 for ignored tokens).
LA3_BACKEND_OP(void, caption_loss_mean_fused,
               (const kernels::CaptionLossParams& p, DType act, const void* logits, const int64_t* labels,
                float* log_prob, float* inverse_tokens, void* dlogits))
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
               (const kernels::CaptionLossParams& p, DType act, const void* logits, const int64_t* labels,
                const float* lse, const float* token_weight, const float* upstream, const float* inverse_tokens,
                void* dlogits))
// out[0] = alpha * sum(x) accumulated in double in a fixed order (a device scalar: the
// loss reductions never copy to the host).
LA3_BACKEND_OP(void, sum_to_scalar, (int64_t count, const float* x, double alpha, float* out))
// x[i] *= scalar[0], the scalar read on the device (an upstream gradient). x is of type `act`
// (it scales dlogits of the fused mean loss; f32 for the row weights and log-prob gradients);
// the scalar is f32.
LA3_BACKEND_OP(void, scale_by_device_scalar, (int64_t count, DType act, const float* scalar, void* x))

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
// The same update of `tensor_count` tensors at once (every tensor of the model in a step):
// each element bit-identical to adamw_step(p with count = tensors[k].count, tensors[k]...).
// p.count is ignored. The CUDA backends update up to kernels::kAdamWTensorsPerLaunch tensors
// per kernel launch (one launch per tensor would cost more than the update of a small tensor).
LA3_BACKEND_OP(void, adamw_step_multi,
               (const kernels::AdamWParams& p, const kernels::AdamWTensor* tensors, int64_t tensor_count))

// --- incremental decoding (engine/ops/decoding.h; kernels/decoding_params.h) ----------------
// The key/value cache write of one new position per row (src and dst of type act).
LA3_BACKEND_OP(void, cache_write, (const kernels::CacheWriteParams& p, DType act, const void* src, void* dst))
// Beam reordering of cached rows (of type act) in place: new row r = old row source_rows[r]
// (within groups).
LA3_BACKEND_OP(void, reorder_rows, (const kernels::RowReorderParams& p, DType act, const int64_t* source_rows, void* data))
// The logits processors (and log-softmax for beam search) of logits of type act into the f32
// `processed` (which may be `logits` when act is f32); log_probs (f32), when not null, receives
// log_softmax(logits). beam_scores may be null.
LA3_BACKEND_OP(void, process_logits,
               (const kernels::LogitsProcessParams& p, DType act, const void* logits, const int64_t* history,
                const float* beam_scores, float* processed, float* log_probs))
// Top k of each group of f32 scores: indices and values [groups, k]; companion_values[g, j] =
// companion[g, indices[g, j]] when companion is not null.
LA3_BACKEND_OP(void, top_k,
               (const kernels::TopKParams& p, const float* scores, const float* companion, int64_t* indices,
                float* values, float* companion_values))

#undef LA3_BACKEND_OP
