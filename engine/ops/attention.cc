#include "engine/ops/attention.h"

#include "engine/autograd/tape.h"
#include "engine/backend.h"
#include "engine/ops/op_checks.h"

namespace la3::ops {

namespace {

constexpr const char* kOp = "attention";

// A key mask of any numeric dtype as contiguous int32 (nonzero = attend).
Tensor key_mask_as_int32(const Tensor& mask) {
  if (mask.dtype() == DType::kI32) return mask.contiguous();
  if (is_integer(mask.dtype())) return mask.to(DType::kI32).contiguous();
  // Float masks: any nonzero value attends (a plain cast would turn 0.5 into 0).
  const Tensor dense = mask.to(DType::kF32).contiguous();
  Tensor out = Tensor::empty(dense.shape(), DType::kI32, dense.device());
  const float* in = dense.data<float>();
  int32_t* flags = out.data<int32_t>();
  for (int64_t i = 0; i < dense.numel(); ++i) flags[i] = in[i] != 0.0f ? 1 : 0;
  return out;
}

}  // namespace

Tensor attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const Tensor& bias_table_in,
                 const Tensor& key_mask_in, const AttentionOptions& options) {
  check_f32(kOp, "q", q_in);
  check_f32(kOp, "k", k_in);
  check_f32(kOp, "v", v_in);
  check_rank(kOp, "q", q_in, 4);
  check_rank(kOp, "k", k_in, 4);
  check_rank(kOp, "v", v_in, 4);
  check_same_device(kOp, {&q_in, &k_in, &v_in, &bias_table_in, &key_mask_in});
  check_same_shape(kOp, "k", k_in, "v", v_in);
  if (q_in.size(0) != k_in.size(0) || q_in.size(2) != k_in.size(2) || q_in.size(3) != k_in.size(3)) {
    Fail(ErrorKind::kInvalidArgument, kOp, ": q ", q_in.describe(), " and k ", k_in.describe(),
         " must agree on batch, heads and head_dim ([batch, len, heads, head_dim])");
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
  if (options.query_offset < 0) Fail(ErrorKind::kInvalidArgument, kOp, ": query_offset must be >= 0, got ", options.query_offset);
  if (!(options.dropout.p >= 0.0f && options.dropout.p < 1.0f)) {
    Fail(ErrorKind::kInvalidArgument, kOp, ": dropout probability must be in [0, 1), got ", options.dropout.p);
  }
  if (options.training) p.dropout = options.dropout;  // else p.dropout.p stays 0
  if (p.has_bias) {
    check_f32(kOp, "bias_table", bias_table_in);
    if (options.num_buckets < 2 || options.max_distance < 1) {
      Fail(ErrorKind::kInvalidArgument, kOp, ": num_buckets (", options.num_buckets, ") must be >= 2 and max_distance (",
           options.max_distance, ") >= 1");
    }
    if (bias_table_in.shape() != Shape{options.num_buckets, p.heads}) {
      Fail(ErrorKind::kInvalidArgument, kOp, ": bias_table ", bias_table_in.describe(), " must be [num_buckets, heads] = [",
           options.num_buckets, ", ", p.heads, "]");
    }
  }
  if (p.has_key_mask && key_mask_in.shape() != Shape{p.batch, p.k_len}) {
    Fail(ErrorKind::kInvalidArgument, kOp, ": key_mask ", key_mask_in.describe(), " must be [batch, k_len] = [", p.batch,
         ", ", p.k_len, "] for k ", k_in.describe());
  }

  const Tensor q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
  const Tensor bias_table = p.has_bias ? bias_table_in.contiguous() : Tensor();
  const Tensor key_mask = p.has_key_mask ? key_mask_as_int32(key_mask_in) : Tensor();
  Tensor out = Tensor::empty(q.shape(), DType::kF32, q.device());                           // [b, q_len, heads, d]
  Tensor probs = Tensor::empty({p.batch, p.heads, p.q_len, p.k_len}, DType::kF32, q.device());  // pre-dropout
  const int32_t* mask_data = p.has_key_mask ? key_mask.data<int32_t>() : nullptr;
  backend_for(q.device()).attention_forward(p, q.data<float>(), k.data<float>(), v.data<float>(),
                                            p.has_bias ? bias_table.data<float>() : nullptr, mask_data,
                                            out.data<float>(), probs.data<float>());

  if (should_record({&q_in, &k_in, &v_in, &bias_table_in})) {
    record_op(kOp, {q_in, k_in, v_in, bias_table_in}, out,
              [p, q, k, v, bias_table, key_mask, probs](const Tensor& dout_in) {
                const Tensor dout = dout_in.contiguous();
                Tensor dq = Tensor::empty_like(q), dk = Tensor::empty_like(k), dv = Tensor::empty_like(v);
                Tensor dbias = p.has_bias ? Tensor::zeros_like(bias_table) : Tensor();
                backend_for(q.device()).attention_backward(
                    p, dout.data<float>(), q.data<float>(), k.data<float>(), v.data<float>(),
                    p.has_key_mask ? key_mask.data<int32_t>() : nullptr, probs.data<float>(), dq.data<float>(),
                    dk.data<float>(), dv.data<float>(), p.has_bias ? dbias.data<float>() : nullptr);
                return std::vector<Tensor>{dq, dk, dv, dbias};
              });
  }
  return out;
}

}  // namespace la3::ops
