#include "engine/ops/attention.h"

#include <algorithm>

#include "engine/autograd/tape.h"
#include "engine/backend.h"
#include "engine/ops/op_checks.h"
#include "kernels/dropout_key.cuh"

namespace la3::ops {

namespace {

constexpr const char* kOp = "attention";

}  // namespace

// Any nonzero value attends, whatever the dtype: a plain cast would turn an f32 0.5 or an
// i64 2^32 into 0 and silently mask the key.
Tensor key_mask_as_flags(const Tensor& mask) {
  if (mask.dtype() == DType::kI32) return mask.contiguous();  // already what the backends read
  if (!mask.host_accessible()) {
    // Converted on the host (a [batch, k_len] mask is small); models convert once per
    // forward pass instead of once per attention call.
    return key_mask_as_flags(mask.to_device(Device::cpu())).to_device(mask.device());
  }
  const Tensor dense = mask.contiguous();
  Tensor flags = Tensor::empty(dense.shape(), DType::kI32, dense.device());  // [batch, k_len]
  int32_t* out = flags.data<int32_t>();
  const int64_t count = dense.numel();
  if (dense.dtype() == DType::kI64) {
    const int64_t* in = dense.data<int64_t>();
    for (int64_t i = 0; i < count; ++i) out[i] = in[i] != 0 ? 1 : 0;
  } else {
    const float* in = dense.data<float>();
    for (int64_t i = 0; i < count; ++i) out[i] = in[i] != 0.0f ? 1 : 0;
  }
  return flags;
}

namespace {

// The bucket function needs at least one exact bucket per side (transformers divides by
// log(max_distance / max_exact), so max_exact 0 fails there) and max_distance above the
// exact range (max_distance == max_exact divides by log(1) = 0; below it the logarithmic term
// turns negative and produces buckets < 0, outside the table).
void check_bucket_config(const AttentionOptions& options) {
  const int buckets_per_side = options.bidirectional ? options.num_buckets / 2 : options.num_buckets;
  const int max_exact = buckets_per_side / 2;
  if (max_exact < 1 || options.max_distance <= max_exact) {
    Fail(ErrorKind::kInvalidArgument, kOp, ": unusable relative-position buckets: num_buckets ", options.num_buckets,
         (options.bidirectional ? " (bidirectional)" : " (causal)"), " gives ", max_exact,
         " exact bucket(s) per side and max_distance ", options.max_distance,
         " must exceed that; need num_buckets >= ", options.bidirectional ? 4 : 2,
         " and max_distance > num_buckets / ", options.bidirectional ? 4 : 2);
  }
}

// The dropout element keys (kernels/dropout_key.cuh) must fit their fields: absolute query
// positions < 2^16, keys <= 2^16, global rows (batch items times heads) < 2^32.
void check_dropout_keys(const kernels::AttentionParams& p, const Tensor& q, const Tensor& k) {
  if (p.query_offset + p.q_len >= kernels::kDropoutPositionLimit || p.k_len > kernels::kDropoutMaxWidth) {
    Fail(ErrorKind::kInvalidArgument, kOp, ": dropout keys need query_offset + q_len < ", kernels::kDropoutPositionLimit,
         " and k_len <= ", kernels::kDropoutMaxWidth, "; got query_offset ", p.query_offset, ", q ", q.describe(),
         ", k ", k.describe());
  }
  const int64_t row_offset = p.dropout.row_offset;
  if (row_offset < 0 || row_offset > kernels::kDropoutRowLimit / std::max<int64_t>(p.heads, 1) - p.batch) {
    Fail(ErrorKind::kInvalidArgument, kOp, ": dropout row_offset ", row_offset, " with q ", q.describe(),
         " must keep (row_offset + batch) * heads <= ", kernels::kDropoutRowLimit);
  }
}

}  // namespace

Tensor attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const Tensor& bias_table_in,
                 const Tensor& key_mask_in, const AttentionOptions& options) {
  // f32 or bf16 activations (all three of one type); the output and the q, k, v gradients
  // have that type, the bias table and its gradient stay f32 (engine/backend_ops.h).
  check_activation(kOp, "q", q_in);
  check_activation(kOp, "k", k_in);
  check_activation(kOp, "v", v_in);
  check_same_dtype(kOp, "q", q_in, "k", k_in);
  check_same_dtype(kOp, "q", q_in, "v", v_in);
  check_rank(kOp, "q", q_in, 4);  // [batch, q_len, heads, head_dim]
  check_rank(kOp, "k", k_in, 4);  // [batch, k_len, heads, head_dim]
  check_rank(kOp, "v", v_in, 4);  // [batch, k_len, heads, head_dim]
  check_same_device(kOp, {&q_in, &k_in, &v_in, &bias_table_in, &key_mask_in});
  check_same_shape(kOp, "k", k_in, "v", v_in);
  const char* const dimension_names[] = {"batch", "len", "heads", "head_dim"};
  for (int dim : {0, 2, 3}) {
    if (q_in.size(dim) != k_in.size(dim)) {
      Fail(ErrorKind::kInvalidArgument, kOp, ": q ", q_in.describe(), " and k ", k_in.describe(),
           " must agree on batch, heads and head_dim (both are [batch, len, heads, head_dim]); ",
           dimension_names[dim], " differs: ", q_in.size(dim), " vs ", k_in.size(dim));
    }
  }
  if (options.query_offset < 0) {
    Fail(ErrorKind::kInvalidArgument, kOp, ": query_offset must be >= 0, got ", options.query_offset, " (q ",
         q_in.describe(), ", k ", k_in.describe(), ")");
  }
  if (!(options.dropout.p >= 0.0f && options.dropout.p < 1.0f)) {  // also rejects NaN
    Fail(ErrorKind::kInvalidArgument, kOp, ": dropout probability must be in [0, 1), got ", options.dropout.p);
  }

  kernels::AttentionParams p;
  p.batch = q_in.size(0);
  p.q_len = q_in.size(1);
  p.heads = q_in.size(2);
  p.head_dim = q_in.size(3);
  p.k_len = k_in.size(1);
  p.scale = options.scale;
  p.causal = options.causal;
  p.query_offset = options.query_offset;
  p.bidirectional = options.bidirectional;
  p.num_buckets = options.num_buckets;
  p.max_distance = options.max_distance;
  p.has_bias = bias_table_in.defined();
  p.has_key_mask = key_mask_in.defined();
  if (options.training && options.dropout.p > 0.0f) {  // else p.dropout.p stays 0
    p.dropout = options.dropout;
    check_dropout_keys(p, q_in, k_in);
  }

  if (p.has_bias) {
    check_f32(kOp, "bias_table", bias_table_in);
    if (bias_table_in.shape() != Shape{options.num_buckets, p.heads}) {
      Fail(ErrorKind::kInvalidArgument, kOp, ": bias_table ", bias_table_in.describe(),
           " must be [num_buckets, heads] = [", options.num_buckets, ", ", p.heads, "] for q ", q_in.describe());
    }
    check_bucket_config(options);
  }
  if (p.has_key_mask) {
    const DType mask_dtype = key_mask_in.dtype();
    if (mask_dtype != DType::kI32 && mask_dtype != DType::kI64 && mask_dtype != DType::kF32) {
      Fail(ErrorKind::kInvalidArgument, kOp, ": key_mask must be i32, i64 or f32 (nonzero = attend), got ",
           key_mask_in.describe());
    }
    if (key_mask_in.shape() != Shape{p.batch, p.k_len}) {
      Fail(ErrorKind::kInvalidArgument, kOp, ": key_mask ", key_mask_in.describe(), " must be [batch, k_len] = [",
           p.batch, ", ", p.k_len, "] for k ", k_in.describe());
    }
  }

  // Contiguous copies for the kernels; the tape records the original tensors.
  const Tensor q = q_in.contiguous();  // [batch, q_len, heads, head_dim]
  const Tensor k = k_in.contiguous();  // [batch, k_len, heads, head_dim]
  const Tensor v = v_in.contiguous();  // [batch, k_len, heads, head_dim]
  const Tensor bias_table = p.has_bias ? bias_table_in.contiguous() : Tensor();       // [num_buckets, heads]
  const Tensor key_mask = p.has_key_mask ? key_mask_as_flags(key_mask_in) : Tensor();  // i32 [batch, k_len]
  const DType act = q.dtype();
  Tensor out = Tensor::empty(q.shape(), act, q.device());  // [batch, q_len, heads, head_dim]
  // What the backward needs, as the backend chose it (engine/backend_ops.h): the CPU's
  // probabilities, the CUDA backends' row log-sum-exp. Opaque here; kept until backward.
  Backend& backend = backend_for(q.device());
  Tensor saved = Tensor::empty({backend.attention_saved_elements(p)}, DType::kF32, q.device());
  backend.attention_forward(p, act, q.raw_data(), k.raw_data(), v.raw_data(),
                            p.has_bias ? bias_table.data<float>() : nullptr,
                            p.has_key_mask ? key_mask.data<int32_t>() : nullptr, out.raw_data(), saved.data<float>());

  if (should_record({&q_in, &k_in, &v_in, &bias_table_in})) {
    // The table gradient costs a reduction over batch and positions; skip it for a frozen table.
    const bool need_dbias = p.has_bias && bias_table_in.requires_grad();
    record_op(kOp, {q_in, k_in, v_in, bias_table_in}, out,
              [p, act, q, k, v, out, bias_table, key_mask, saved, need_dbias](const Tensor& dout_in) {
                const Tensor dout = dout_in.to(act).contiguous();  // [batch, q_len, heads, head_dim]
                Tensor dq = Tensor::empty_like(q), dk = Tensor::empty_like(k), dv = Tensor::empty_like(v);
                // The backend accumulates into the table gradient, so it starts from zero.
                Tensor dbias = need_dbias ? Tensor::zeros_like(bias_table) : Tensor();  // [num_buckets, heads]
                backend_for(q.device()).attention_backward(
                    p, act, dout.raw_data(), q.raw_data(), k.raw_data(), v.raw_data(), out.raw_data(),
                    p.has_bias ? bias_table.data<float>() : nullptr, p.has_key_mask ? key_mask.data<int32_t>() : nullptr,
                    saved.data<float>(), dq.raw_data(), dk.raw_data(), dv.raw_data(),
                    need_dbias ? dbias.data<float>() : nullptr);
                return std::vector<Tensor>{dq, dk, dv, dbias};
              });
  }
  return out;
}

}  // namespace la3::ops
