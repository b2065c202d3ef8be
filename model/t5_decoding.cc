#include "model/t5_decoding.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "engine/allocator.h"
#include "engine/autograd/tape.h"
#include "engine/backend.h"
#include "engine/ops/activation.h"
#include "engine/ops/attention.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/embedding.h"
#include "engine/ops/matmul.h"
#include "engine/ops/reshape.h"
#include "engine/ops/rmsnorm.h"

namespace la3 {

namespace {

// Copies bytes between two buffers of one device (a memcpy on the host, a device copy on a
// GPU device: the cache never leaves the model's device).
void copy_bytes(Device device, void* dst, const void* src, size_t bytes) {
  if (allocator_for(device).host_accessible()) {
    std::memcpy(dst, src, bytes);
  } else {
    backend_for(device).copy_on_device(dst, src, bytes);
  }
}

}  // namespace

Tensor gather_rows(const Tensor& tensor, const std::vector<int64_t>& rows) {
  const Tensor source = tensor.contiguous();
  Shape shape = source.shape();
  const int64_t row_elements = source.numel() / std::max<int64_t>(shape[0], 1);
  shape[0] = static_cast<int64_t>(rows.size());
  Tensor out = Tensor::empty(shape, source.dtype(), source.device());
  const size_t row_bytes = static_cast<size_t>(row_elements) * dtype_size(source.dtype());
  const char* in = static_cast<const char*>(source.raw_data());
  char* dst = static_cast<char*>(out.raw_data());
  for (size_t r = 0; r < rows.size(); ++r) {
    if (rows[r] < 0 || rows[r] >= source.size(0)) {
      Fail(ErrorKind::kOutOfRange, "gather_rows: row ", rows[r], " outside ", source.describe());
    }
    copy_bytes(source.device(), dst + r * row_bytes, in + static_cast<size_t>(rows[r]) * row_bytes, row_bytes);
  }
  return out;
}

namespace {

// [rows, t, heads, d] + [rows, 1, heads, d] -> [rows, t + 1, heads, d].
Tensor append_step(const Tensor& cache, const Tensor& step) {
  if (!cache.defined()) return step.contiguous();
  const int64_t rows = cache.size(0), t = cache.size(1);
  const int64_t per_step = cache.size(2) * cache.size(3);
  Tensor out = Tensor::empty({rows, t + 1, cache.size(2), cache.size(3)}, DType::kF32, cache.device());
  const Tensor dense_step = step.contiguous();
  const float* old_data = cache.data<float>();
  const float* step_data = dense_step.data<float>();
  float* dst = out.data<float>();
  const Device device = cache.device();
  for (int64_t r = 0; r < rows; ++r) {
    copy_bytes(device, dst + r * (t + 1) * per_step, old_data + r * t * per_step, sizeof(float) * static_cast<size_t>(t * per_step));
    copy_bytes(device, dst + (r * (t + 1) + t) * per_step, step_data + r * per_step, sizeof(float) * static_cast<size_t>(per_step));
  }
  return out;
}

std::vector<int64_t> repeat_rows(int64_t batch, int64_t copies) {
  std::vector<int64_t> rows;
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t c = 0; c < copies; ++c) rows.push_back(b);
  }
  return rows;
}

}  // namespace

T5DecodingCache T5Decoder::start(const Tensor& encoder_hidden, const Tensor& encoder_mask, int64_t copies) const {
  NoGradGuard no_grad;
  const T5Config& c = model_.config();
  const int64_t batch = encoder_hidden.size(0), src = encoder_hidden.size(1);
  const std::vector<int64_t> rows = repeat_rows(batch, copies);
  T5DecodingCache cache;
  cache.rows = batch * copies;
  if (encoder_mask.defined()) cache.encoder_mask = gather_rows(encoder_mask.to(DType::kI64), rows);
  for (int64_t i = 0; i < c.num_decoder_layers; ++i) {
    const std::string prefix = absl::StrCat("decoder.block.", i, ".layer.1.EncDecAttention.");
    const Tensor k = ops::reshape(ops::linear(encoder_hidden, model_.parameter(prefix + "k.weight")), {batch, src, c.num_heads, c.d_kv});
    const Tensor v = ops::reshape(ops::linear(encoder_hidden, model_.parameter(prefix + "v.weight")), {batch, src, c.num_heads, c.d_kv});
    cache.cross_keys.push_back(copies == 1 ? k : gather_rows(k, rows));
    cache.cross_values.push_back(copies == 1 ? v : gather_rows(v, rows));
  }
  cache.self_keys.resize(static_cast<size_t>(c.num_decoder_layers));
  cache.self_values.resize(static_cast<size_t>(c.num_decoder_layers));
  return cache;
}

Tensor T5Decoder::step(T5DecodingCache& cache, const std::vector<int64_t>& tokens) const {
  NoGradGuard no_grad;
  const T5Config& c = model_.config();
  if (static_cast<int64_t>(tokens.size()) != cache.rows) {
    Fail(ErrorKind::kInvalidArgument, "decode step: ", tokens.size(), " tokens for ", cache.rows, " cache rows");
  }
  const int64_t rows = cache.rows, heads = c.num_heads, d_kv = c.d_kv;
  const float eps = c.layer_norm_epsilon;
  Tensor hidden = ops::embedding(model_.parameter("shared.weight"), Tensor::from_vector<int64_t>({rows, 1}, tokens, model_.device()));
  const Tensor& table = model_.parameter("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
  ops::AttentionOptions self_options;
  self_options.causal = true;
  self_options.bidirectional = false;
  self_options.query_offset = cache.steps;
  self_options.num_buckets = c.relative_attention_num_buckets;
  self_options.max_distance = c.relative_attention_max_distance;
  ops::AttentionOptions cross_options;
  // Residual adds fused with the pre-norm that follows them (ops::add_rmsnorm), as in
  // T5Model::decode: after block i's feed-forward comes block i+1's first norm or the final one.
  auto norm_after = [&](int64_t next_block) -> const Tensor& {
    return next_block < c.num_decoder_layers
               ? model_.parameter(absl::StrCat("decoder.block.", next_block, ".layer.0.layer_norm.weight"))
               : model_.parameter("decoder.final_layer_norm.weight");
  };
  Tensor normed = ops::rmsnorm(hidden, norm_after(0), eps);
  for (int64_t i = 0; i < c.num_decoder_layers; ++i) {
    const std::string b = absl::StrCat("decoder.block.", i, ".");
    const size_t layer = static_cast<size_t>(i);
    // Self-attention over the cache plus the new token.
    const std::string self_prefix = b + "layer.0.SelfAttention.";
    const Tensor q = ops::reshape(ops::linear(normed, model_.parameter(self_prefix + "q.weight")), {rows, 1, heads, d_kv});
    const Tensor k = ops::reshape(ops::linear(normed, model_.parameter(self_prefix + "k.weight")), {rows, 1, heads, d_kv});
    const Tensor v = ops::reshape(ops::linear(normed, model_.parameter(self_prefix + "v.weight")), {rows, 1, heads, d_kv});
    cache.self_keys[layer] = append_step(cache.self_keys[layer], k);
    cache.self_values[layer] = append_step(cache.self_values[layer], v);
    const Tensor context = ops::attention(q, cache.self_keys[layer], cache.self_values[layer], table, Tensor(), self_options);
    const ops::AddRmsNorm after_self = ops::add_rmsnorm(
        hidden, ops::linear(ops::reshape(context, {rows, 1, heads * d_kv}), model_.parameter(self_prefix + "o.weight")),
        model_.parameter(b + "layer.1.layer_norm.weight"), eps);
    hidden = after_self.sum;
    const Tensor& normed_cross = after_self.normed;
    // Cross-attention over the cached encoder keys/values.
    const std::string cross_prefix = b + "layer.1.EncDecAttention.";
    const Tensor cq = ops::reshape(ops::linear(normed_cross, model_.parameter(cross_prefix + "q.weight")), {rows, 1, heads, d_kv});
    const Tensor cross = ops::attention(cq, cache.cross_keys[layer], cache.cross_values[layer], Tensor(), cache.encoder_mask,
                                        cross_options);
    const ops::AddRmsNorm after_cross = ops::add_rmsnorm(
        hidden, ops::linear(ops::reshape(cross, {rows, 1, heads * d_kv}), model_.parameter(cross_prefix + "o.weight")),
        model_.parameter(b + "layer.2.layer_norm.weight"), eps);
    hidden = after_cross.sum;
    const Tensor& normed_ff = after_cross.normed;
    // Feed-forward.
    const std::string ff = b + "layer.2.DenseReluDense.";
    Tensor inner;
    if (c.feed_forward == FeedForwardKind::kGatedGelu) {
      inner = ops::gated_gelu(ops::linear(normed_ff, model_.parameter(ff + "wi_0.weight")),
                              ops::linear(normed_ff, model_.parameter(ff + "wi_1.weight")));
    } else {
      inner = ops::relu(ops::linear(normed_ff, model_.parameter(ff + "wi.weight")));
    }
    const ops::AddRmsNorm after_ff =
        ops::add_rmsnorm(hidden, ops::linear(inner, model_.parameter(ff + "wo.weight")), norm_after(i + 1), eps);
    hidden = after_ff.sum;
    normed = after_ff.normed;
  }
  hidden = normed;  // the final layer norm's output
  Tensor logits;
  if (c.tie_word_embeddings) {
    hidden = ops::scale(hidden, static_cast<float>(std::pow(static_cast<double>(c.d_model), -0.5)));
    logits = ops::linear(hidden, model_.parameter("shared.weight"));
  } else {
    logits = ops::linear(hidden, model_.parameter("lm_head.weight"));
  }
  ++cache.steps;
  return logits.view({rows, logits.size(-1)});
}

void T5Decoder::reorder(T5DecodingCache& cache, const std::vector<int64_t>& rows) {
  for (Tensor& t : cache.self_keys) t = gather_rows(t, rows);
  for (Tensor& t : cache.self_values) t = gather_rows(t, rows);
  // Cross K/V and the mask depend only on the input, which a beam never changes: beams are
  // reordered within their input's block, so those rows are already right.
}

}  // namespace la3
