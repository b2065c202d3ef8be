#include "model/t5_model.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "engine/autograd/tape.h"
#include "engine/error.h"
#include "engine/ops/activation.h"
#include "engine/ops/attention.h"
#include "engine/ops/cross_entropy.h"
#include "engine/ops/dropout.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/embedding.h"
#include "engine/ops/matmul.h"
#include "engine/ops/reshape.h"
#include "engine/ops/rmsnorm.h"
#include "kernels/philox.cuh"
#include "model/t5_decoding.h"

namespace la3 {

namespace {

// Dropout sites get fixed Philox streams so a step's masks are reproducible on every backend.
namespace stream {
constexpr uint32_t kEncoderEmbedding = 1;
constexpr uint32_t kEncoderFinal = 2;
constexpr uint32_t kDecoderEmbedding = 3;
constexpr uint32_t kDecoderFinal = 4;
// Per block: base + 16 * block + site.
constexpr uint32_t kEncoderBlockBase = 1u << 16;
constexpr uint32_t kDecoderBlockBase = 2u << 16;
constexpr uint32_t kSelfAttention = 0;    // +0 probabilities, +1 output
constexpr uint32_t kCrossAttention = 2;   // +2 probabilities, +3 output
constexpr uint32_t kFeedForward = 4;      // +4 inner activation, +5 output
}  // namespace stream

std::string encoder_block(int64_t i) { return absl::StrCat("encoder.block.", i, "."); }
std::string decoder_block(int64_t i) { return absl::StrCat("decoder.block.", i, "."); }

void add_attention_shapes(std::map<std::string, Shape>& shapes, const std::string& prefix, const T5Config& c,
                          bool with_bias) {
  shapes[prefix + "q.weight"] = {c.inner_dim(), c.d_model};
  shapes[prefix + "k.weight"] = {c.inner_dim(), c.d_model};
  shapes[prefix + "v.weight"] = {c.inner_dim(), c.d_model};
  shapes[prefix + "o.weight"] = {c.d_model, c.inner_dim()};
  if (with_bias) shapes[prefix + "relative_attention_bias.weight"] = {c.relative_attention_num_buckets, c.num_heads};
}

void add_feed_forward_shapes(std::map<std::string, Shape>& shapes, const std::string& prefix, const T5Config& c) {
  if (c.feed_forward == FeedForwardKind::kGatedGelu) {
    shapes[prefix + "wi_0.weight"] = {c.d_ff, c.d_model};
    shapes[prefix + "wi_1.weight"] = {c.d_ff, c.d_model};
  } else {
    shapes[prefix + "wi.weight"] = {c.d_ff, c.d_model};
  }
  shapes[prefix + "wo.weight"] = {c.d_model, c.d_ff};
}

// Standard normal draws from Philox (Box-Muller), keyed by (seed, parameter index, element).
Tensor normal_tensor(const Shape& shape, double std_dev, uint64_t seed, uint32_t stream_id) {
  Tensor t = Tensor::empty(shape, DType::kF32);
  float* data = t.data<float>();
  const int64_t n = t.numel();
  constexpr double kTwoPi = 6.283185307179586;
  for (int64_t i = 0; i < n; i += 2) {
    const uint64_t index = static_cast<uint64_t>(i);
    // u1 in (0, 1]: never log(0).
    const double u1 = 1.0 - kernels::philox_uniform(seed, 0, stream_id, index);
    const double u2 = kernels::philox_uniform(seed, 0, stream_id, index + 1);
    const double radius = std::sqrt(-2.0 * std::log(u1));
    data[i] = static_cast<float>(std_dev * radius * std::cos(kTwoPi * u2));
    if (i + 1 < n) data[i + 1] = static_cast<float>(std_dev * radius * std::sin(kTwoPi * u2));
  }
  return t;
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::map<std::string, Shape> t5_parameter_shapes(const T5Config& c) {
  std::map<std::string, Shape> shapes;
  shapes["shared.weight"] = {c.vocab_size, c.d_model};
  if (!c.tie_word_embeddings) shapes["lm_head.weight"] = {c.vocab_size, c.d_model};
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string b = encoder_block(i);
    add_attention_shapes(shapes, b + "layer.0.SelfAttention.", c, i == 0);
    shapes[b + "layer.0.layer_norm.weight"] = {c.d_model};
    add_feed_forward_shapes(shapes, b + "layer.1.DenseReluDense.", c);
    shapes[b + "layer.1.layer_norm.weight"] = {c.d_model};
  }
  shapes["encoder.final_layer_norm.weight"] = {c.d_model};
  for (int64_t i = 0; i < c.num_decoder_layers; ++i) {
    const std::string b = decoder_block(i);
    add_attention_shapes(shapes, b + "layer.0.SelfAttention.", c, i == 0);
    shapes[b + "layer.0.layer_norm.weight"] = {c.d_model};
    add_attention_shapes(shapes, b + "layer.1.EncDecAttention.", c, false);
    shapes[b + "layer.1.layer_norm.weight"] = {c.d_model};
    add_feed_forward_shapes(shapes, b + "layer.2.DenseReluDense.", c);
    shapes[b + "layer.2.layer_norm.weight"] = {c.d_model};
  }
  shapes["decoder.final_layer_norm.weight"] = {c.d_model};
  return shapes;
}

absl::StatusOr<T5Model> T5Model::create(const T5Config& config, uint64_t seed) {
  if (absl::Status s = validate_t5_config(config); !s.ok()) return s;
  const double factor = config.initializer_factor;
  const double d_model = static_cast<double>(config.d_model);
  std::map<std::string, Tensor> parameters;
  uint32_t stream_id = 0;
  for (const auto& [name, shape] : t5_parameter_shapes(config)) {
    ++stream_id;
    if (ends_with(name, "layer_norm.weight")) {
      parameters[name] = Tensor::full(shape, factor);
      continue;
    }
    double std_dev = factor;  // shared.weight, lm_head.weight
    if (ends_with(name, ".q.weight")) {
      std_dev = factor / std::sqrt(d_model * static_cast<double>(config.d_kv));
    } else if (ends_with(name, ".k.weight") || ends_with(name, ".v.weight") ||
               ends_with(name, "relative_attention_bias.weight") || ends_with(name, "wi.weight") ||
               ends_with(name, "wi_0.weight") || ends_with(name, "wi_1.weight")) {
      std_dev = factor / std::sqrt(d_model);
    } else if (ends_with(name, ".o.weight")) {
      std_dev = factor / std::sqrt(static_cast<double>(config.inner_dim()));
    } else if (ends_with(name, "wo.weight")) {
      std_dev = factor / std::sqrt(static_cast<double>(config.d_ff));
    }
    parameters[name] = normal_tensor(shape, std_dev, seed, stream_id);
  }
  return T5Model(config, std::move(parameters));
}

absl::StatusOr<T5Model> T5Model::from_tensors(const T5Config& config, std::map<std::string, Tensor> tensors) {
  if (absl::Status s = validate_t5_config(config); !s.ok()) return s;
  const std::map<std::string, Shape> expected = t5_parameter_shapes(config);
  std::map<std::string, Tensor> parameters;
  for (const auto& [name, shape] : expected) {
    auto found = tensors.find(name);
    if (found == tensors.end()) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint is missing parameter \"", name, "\" of shape ",
                                                     shape_string(shape)));
    }
    const Tensor& tensor = found->second;
    if (tensor.shape() != shape) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint parameter \"", name, "\" is ", tensor.describe(),
                                                     " but the config needs ", shape_string(shape)));
    }
    if (!is_floating(tensor.dtype())) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint parameter \"", name, "\" has dtype ",
                                                     dtype_name(tensor.dtype()), "; expected f32 or bf16"));
    }
    parameters[name] = tensor.to(DType::kF32).contiguous().clone();
    tensors.erase(found);
  }
  // Copies of tied weights that some checkpoints carry; anything else is unexpected.
  // Original T5 conversions also carry a relative attention bias for the first decoder
  // cross-attention, which T5 never uses (only self-attention has one): transformers drops
  // it on load (_keys_to_ignore_on_load_unexpected), and so do we, after checking its shape.
  constexpr const char* kUnusedCrossAttentionBias = "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight";
  if (auto unused = tensors.find(kUnusedCrossAttentionBias); unused != tensors.end()) {
    if (unused->second.shape() != Shape{config.relative_attention_num_buckets, config.num_heads}) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint parameter \"", kUnusedCrossAttentionBias, "\" is ",
                                                     unused->second.describe(), " but should be [",
                                                     config.relative_attention_num_buckets, ", ", config.num_heads, "]"));
    }
    tensors.erase(unused);
  }
  for (const auto& [name, tensor] : tensors) {
    const bool tied_copy = name == "encoder.embed_tokens.weight" || name == "decoder.embed_tokens.weight" ||
                           (config.tie_word_embeddings && name == "lm_head.weight");
    if (!tied_copy) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint has parameter \"", name, "\" ", tensor.describe(),
                                                     " that this T5 config does not use"));
    }
    if (tensor.shape() != Shape{config.vocab_size, config.d_model}) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint parameter \"", name, "\" is ", tensor.describe(),
                                                     " but should be a copy of shared.weight"));
    }
  }
  return T5Model(config, std::move(parameters));
}

T5Model T5Model::to_device(Device target) const {
  std::map<std::string, Tensor> moved;
  for (const auto& [name, tensor] : parameters_) {
    moved[name] = tensor.device() == target ? tensor.clone() : tensor.to_device(target);
  }
  return T5Model(config_, std::move(moved));
}

std::vector<Tensor> T5Model::parameter_list() const {
  std::vector<Tensor> list;
  for (const auto& entry : parameters_) list.push_back(entry.second);
  return list;
}

int64_t T5Model::parameter_count() const {
  int64_t count = 0;
  for (const auto& entry : parameters_) count += entry.second.numel();
  return count;
}

void T5Model::set_requires_grad(bool required) const {
  for (const auto& entry : parameters_) entry.second.set_requires_grad(required);
}

const Tensor& T5Model::parameter(const std::string& name) const {
  auto found = parameters_.find(name);
  if (found == parameters_.end()) Fail(ErrorKind::kInternal, "T5Model: no parameter \"", name, "\"");
  return found->second;
}

Tensor T5Model::apply_dropout(const Tensor& x, uint32_t stream_id, const T5ForwardOptions& options) const {
  if (!options.training || config_.dropout_rate == 0.0f) return x;
  kernels::DropoutParams p;
  p.p = config_.dropout_rate;
  p.seed = options.seed;
  p.step = options.step;
  p.stream = stream_id;
  p.row_offset = static_cast<int64_t>(options.dropout_row_offset);
  return ops::dropout(x, p, true);
}

T5KeyValues T5Model::project_key_values(const std::string& prefix, const Tensor& source) const {
  const int64_t batch = source.size(0), length = source.size(1);
  // Projections produce [batch, len, heads * d_kv]; viewing them as [batch, len, heads, d_kv]
  // is the layout ops::attention takes, so no transpose is materialised.
  const Shape shape{batch, length, config_.num_heads, config_.d_kv};
  return T5KeyValues{ops::reshape(ops::linear(source, parameter(prefix + "k.weight")), shape),
                     ops::reshape(ops::linear(source, parameter(prefix + "v.weight")), shape)};
}

Tensor T5Model::attention_block(const std::string& prefix, const Tensor& hidden, const T5KeyValues& key_values,
                                const Tensor& bias_table, const Tensor& key_mask, bool causal, bool bidirectional,
                                int64_t query_offset, uint32_t dropout_stream, const T5ForwardOptions& options) const {
  const int64_t batch = hidden.size(0), q_len = hidden.size(1);
  const int64_t heads = config_.num_heads, d_kv = config_.d_kv;
  const Tensor q = ops::reshape(ops::linear(hidden, parameter(prefix + "q.weight")), {batch, q_len, heads, d_kv});
  ops::AttentionOptions attention_options;
  attention_options.scale = 1.0f;  // T5 has no 1/sqrt(d_kv)
  attention_options.causal = causal;
  attention_options.bidirectional = bidirectional;
  attention_options.query_offset = query_offset;
  attention_options.num_buckets = config_.relative_attention_num_buckets;
  attention_options.max_distance = config_.relative_attention_max_distance;
  attention_options.training = options.training;
  attention_options.dropout.p = config_.dropout_rate;
  attention_options.dropout.seed = options.seed;
  attention_options.dropout.step = options.step;
  attention_options.dropout.stream = dropout_stream;
  attention_options.dropout.row_offset = static_cast<int64_t>(options.dropout_row_offset);
  const Tensor context =
      ops::attention(q, key_values.keys, key_values.values, bias_table, key_mask, attention_options);  // [b, q_len, heads, d_kv]
  return ops::linear(ops::reshape(context, {batch, q_len, heads * d_kv}), parameter(prefix + "o.weight"));
}

Tensor T5Model::attention_sublayer(const std::string& prefix, const Tensor& hidden, const Tensor& key_value_source,
                                   const Tensor& bias_table, const Tensor& key_mask, bool causal, bool bidirectional,
                                   uint32_t dropout_stream, const T5ForwardOptions& options) const {
  // k and v projected from their sources first, then q: the order decode() records them in.
  auto run = [this, prefix, bias_table, causal, bidirectional, dropout_stream, options](
                 const Tensor& q_source, const Tensor& k_source, const Tensor& v_source, const Tensor& mask) {
    const int64_t batch = k_source.size(0), length = k_source.size(1);
    const Shape shape{batch, length, config_.num_heads, config_.d_kv};
    const T5KeyValues key_values{ops::reshape(ops::linear(k_source, parameter(prefix + "k.weight")), shape),
                                 ops::reshape(ops::linear(v_source, parameter(prefix + "v.weight")), shape)};
    return attention_block(prefix, q_source, key_values, bias_table, mask, causal, bidirectional, /*query_offset=*/0,
                           dropout_stream, options);
  };
  if (options.recompute != T5ForwardOptions::Recompute::kAttention || !options.training) {
    return run(hidden, key_value_source, key_value_source, key_mask);
  }
  std::vector<Tensor> leaves;
  for (const char* name : {"q.weight", "k.weight", "v.weight", "o.weight"}) leaves.push_back(parameter(prefix + name));
  if (bias_table.defined()) leaves.push_back(bias_table);
  // The sources as separate inputs, in the order the unrecomputed backward reaches their
  // projections (q, v, k: the reverse of the forward), so each source's gradient is summed in
  // the same order. The closure holds the model by pointer: the tape outlives no model it records.
  return checkpoint("recompute attention", {hidden, key_value_source, key_value_source, key_mask}, leaves,
                    [run](const std::vector<Tensor>& in) { return run(in[0], in[2], in[1], in[3]); });
}

Tensor T5Model::feed_forward(const std::string& prefix, const Tensor& hidden, uint32_t dropout_stream,
                             const T5ForwardOptions& options) const {
  Tensor inner;
  if (config_.feed_forward == FeedForwardKind::kGatedGelu) {
    inner = ops::gated_gelu(ops::linear(hidden, parameter(prefix + "wi_0.weight")),
                            ops::linear(hidden, parameter(prefix + "wi_1.weight")));
  } else {
    inner = ops::relu(ops::linear(hidden, parameter(prefix + "wi.weight")));
  }
  inner = apply_dropout(inner, dropout_stream, options);
  return ops::linear(inner, parameter(prefix + "wo.weight"));
}

bool T5Model::recompute_blocks(const T5ForwardOptions& options) {
  return options.training && options.recompute == T5ForwardOptions::Recompute::kBlock;
}

std::vector<Tensor> T5Model::block_leaves(const std::string& prefix) const {
  // The block's pre-attention norm weight is applied by the previous block's last add (outside
  // this block's node), so it is not one of the node's leaves.
  std::vector<Tensor> leaves;
  for (const auto& [name, tensor] : parameters_) {
    if (name.rfind(prefix, 0) == 0 && name != prefix + "layer.0.layer_norm.weight") leaves.push_back(tensor);
  }
  return leaves;
}

ops::AddRmsNorm T5Model::encoder_block_forward(int64_t i, const Tensor& hidden, const Tensor& normed, const Tensor& table,
                                               const Tensor& key_mask, const Tensor& next_norm,
                                               const T5ForwardOptions& options) const {
  const float eps = config_.layer_norm_epsilon;
  const std::string b = encoder_block(i);
  const uint32_t site = stream::kEncoderBlockBase + 16u * static_cast<uint32_t>(i);
  const Tensor attended = attention_sublayer(b + "layer.0.SelfAttention.", normed, normed, table, key_mask,
                                             /*causal=*/false, /*bidirectional=*/true, site + stream::kSelfAttention, options);
  const ops::AddRmsNorm after_attention = ops::add_rmsnorm(
      hidden, apply_dropout(attended, site + stream::kSelfAttention + 1, options), parameter(b + "layer.1.layer_norm.weight"), eps);
  const Tensor ff = feed_forward(b + "layer.1.DenseReluDense.", after_attention.normed, site + stream::kFeedForward, options);
  const Tensor branch = apply_dropout(ff, site + stream::kFeedForward + 1, options);
  if (!next_norm.defined()) return ops::AddRmsNorm{ops::add(after_attention.sum, branch), Tensor()};
  return ops::add_rmsnorm(after_attention.sum, branch, next_norm, eps);
}

Tensor T5Model::encode(const Tensor& input_ids, const Tensor& attention_mask, const T5ForwardOptions& options) const {
  if (!input_ids.defined() || input_ids.rank() != 2) {
    Fail(ErrorKind::kInvalidArgument, "T5Model::encode: input_ids must be [batch, src_len], got ", input_ids.describe());
  }
  if (attention_mask.defined() && attention_mask.shape() != input_ids.shape()) {
    Fail(ErrorKind::kInvalidArgument, "T5Model::encode: attention_mask ", attention_mask.describe(),
         " does not match input_ids ", input_ids.describe());
  }
  const float eps = config_.layer_norm_epsilon;
  const Tensor key_mask = attention_mask.defined() ? ops::key_mask_as_flags(attention_mask) : Tensor();
  const ops::IdCheck id_check = options.ids_checked_by_caller ? ops::IdCheck::kByCaller : ops::IdCheck::kByOp;
  Tensor hidden = apply_dropout(ops::embedding(parameter("shared.weight"), input_ids, id_check, options.activations),
                                stream::kEncoderEmbedding, options);
  const Tensor& table = parameter("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
  // Every residual add is fused with the pre-norm that reads its sum (ops::add_rmsnorm); the
  // weight of the norm after block i's feed-forward is block i+1's first norm, or the final one.
  auto norm_after = [&](int64_t next_block) -> const Tensor& {
    return next_block < config_.num_layers ? parameter(encoder_block(next_block) + "layer.0.layer_norm.weight")
                                           : parameter("encoder.final_layer_norm.weight");
  };
  Tensor normed = ops::rmsnorm(hidden, norm_after(0), eps);
  for (int64_t i = 0; i < config_.num_layers; ++i) {
    if (recompute_blocks(options)) {
      // One tape node per block that keeps only its inputs; the norm after the block's last
      // residual add is the next block's and stays outside (unfused: the same arithmetic).
      std::vector<Tensor> leaves = block_leaves(encoder_block(i));
      if (i > 0) leaves.push_back(table);
      hidden = checkpoint("recompute encoder block", {hidden, normed, key_mask}, leaves,
                          [this, i, table, options](const std::vector<Tensor>& in) {
                            return encoder_block_forward(i, in[0], in[1], table, in[2], Tensor(), options).sum;
                          });
      normed = ops::rmsnorm(hidden, norm_after(i + 1), eps);
    } else {
      const ops::AddRmsNorm out = encoder_block_forward(i, hidden, normed, table, key_mask, norm_after(i + 1), options);
      hidden = out.sum;
      normed = out.normed;
    }
  }
  hidden = normed;  // the final layer norm's output
  return apply_dropout(hidden, stream::kEncoderFinal, options);
}

Tensor T5Model::decode(const Tensor& decoder_input_ids, const Tensor& encoder_hidden, const Tensor& encoder_mask,
                       const T5ForwardOptions& options) const {
  if (!decoder_input_ids.defined() || decoder_input_ids.rank() != 2) {
    Fail(ErrorKind::kInvalidArgument, "T5Model::decode: decoder_input_ids must be [batch, tgt_len], got ",
         decoder_input_ids.describe());
  }
  if (!encoder_hidden.defined() || encoder_hidden.rank() != 3 || encoder_hidden.size(0) != decoder_input_ids.size(0) ||
      encoder_hidden.size(2) != config_.d_model) {
    Fail(ErrorKind::kInvalidArgument, "T5Model::decode: encoder_hidden ", encoder_hidden.describe(),
         " does not match decoder_input_ids ", decoder_input_ids.describe(), " and d_model ", config_.d_model);
  }
  return decoder_forward(decoder_input_ids, encoder_hidden, encoder_mask, options, nullptr);
}

ops::AddRmsNorm T5Model::decoder_block_forward(int64_t i, const Tensor& hidden, const Tensor& normed,
                                               const Tensor& encoder_hidden, const Tensor& encoder_mask,
                                               const Tensor& table, const Tensor& next_norm,
                                               const T5ForwardOptions& options, T5DecodingCache* cache) const {
  const float eps = config_.layer_norm_epsilon;
  // With a cache, the new positions follow the cached ones (causal attention and the
  // relative-position buckets count from there).
  const int64_t query_offset = cache != nullptr ? cache->steps : 0;
  const std::string b = decoder_block(i);
  const uint32_t site = stream::kDecoderBlockBase + 16u * static_cast<uint32_t>(i);
  const std::string self_prefix = b + "layer.0.SelfAttention.";
  // Teacher forcing (no cache) goes through attention_sublayer, which may recompute in
  // backward; a decoding step attends over the cached keys/values.
  const Tensor self_attended =
      cache == nullptr
          ? attention_sublayer(self_prefix, normed, normed, table, Tensor(), /*causal=*/true,
                               /*bidirectional=*/false, site + stream::kSelfAttention, options)
          : attention_block(self_prefix, normed, cache->store_self(i, project_key_values(self_prefix, normed)), table,
                            Tensor(), /*causal=*/true, /*bidirectional=*/false, query_offset,
                            site + stream::kSelfAttention, options);
  const ops::AddRmsNorm after_self = ops::add_rmsnorm(hidden, apply_dropout(self_attended, site + stream::kSelfAttention + 1, options),
                                                      parameter(b + "layer.1.layer_norm.weight"), eps);
  // Cross-attention has no relative-position bias in T5.
  const std::string cross_prefix = b + "layer.1.EncDecAttention.";
  const Tensor cross =
      cache == nullptr
          ? attention_sublayer(cross_prefix, after_self.normed, encoder_hidden, Tensor(), encoder_mask,
                               /*causal=*/false, /*bidirectional=*/true, site + stream::kCrossAttention, options)
          : attention_block(cross_prefix, after_self.normed, cache->cross(i), Tensor(), encoder_mask,
                            /*causal=*/false, /*bidirectional=*/true, /*query_offset=*/0,
                            site + stream::kCrossAttention, options);
  const ops::AddRmsNorm after_cross = ops::add_rmsnorm(after_self.sum, apply_dropout(cross, site + stream::kCrossAttention + 1, options),
                                                       parameter(b + "layer.2.layer_norm.weight"), eps);
  const Tensor ff = feed_forward(b + "layer.2.DenseReluDense.", after_cross.normed, site + stream::kFeedForward, options);
  const Tensor branch = apply_dropout(ff, site + stream::kFeedForward + 1, options);
  if (!next_norm.defined()) return ops::AddRmsNorm{ops::add(after_cross.sum, branch), Tensor()};
  return ops::add_rmsnorm(after_cross.sum, branch, next_norm, eps);
}

Tensor T5Model::decoder_forward(const Tensor& decoder_input_ids, const Tensor& encoder_hidden, const Tensor& encoder_mask,
                                const T5ForwardOptions& options, T5DecodingCache* cache) const {
  const float eps = config_.layer_norm_epsilon;
  const ops::IdCheck id_check = options.ids_checked_by_caller ? ops::IdCheck::kByCaller : ops::IdCheck::kByOp;
  Tensor hidden = apply_dropout(ops::embedding(parameter("shared.weight"), decoder_input_ids, id_check, options.activations),
                                stream::kDecoderEmbedding, options);
  const Tensor& table = parameter("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
  // Residual adds fused with the following pre-norm, as in encode().
  auto norm_after = [&](int64_t next_block) -> const Tensor& {
    return next_block < config_.num_decoder_layers
               ? parameter(decoder_block(next_block) + "layer.0.layer_norm.weight")
               : parameter("decoder.final_layer_norm.weight");
  };
  Tensor normed = ops::rmsnorm(hidden, norm_after(0), eps);
  for (int64_t i = 0; i < config_.num_decoder_layers; ++i) {
    if (cache == nullptr && recompute_blocks(options)) {
      // As in encode(): one node per block, the following norm outside it.
      std::vector<Tensor> leaves = block_leaves(decoder_block(i));
      if (i > 0) leaves.push_back(table);
      hidden = checkpoint("recompute decoder block", {hidden, normed, encoder_hidden, encoder_mask}, leaves,
                          [this, i, table, options](const std::vector<Tensor>& in) {
                            return decoder_block_forward(i, in[0], in[1], in[2], in[3], table, Tensor(), options, nullptr).sum;
                          });
      normed = ops::rmsnorm(hidden, norm_after(i + 1), eps);
    } else {
      const ops::AddRmsNorm out =
          decoder_block_forward(i, hidden, normed, encoder_hidden, encoder_mask, table, norm_after(i + 1), options, cache);
      hidden = out.sum;
      normed = out.normed;
    }
  }
  hidden = normed;  // the final layer norm's output
  hidden = apply_dropout(hidden, stream::kDecoderFinal, options);
  if (config_.tie_word_embeddings) {
    // v1.0: rescale before the tied LM head (transformers: sequence_output * model_dim**-0.5).
    hidden = ops::scale(hidden, static_cast<float>(std::pow(static_cast<double>(config_.d_model), -0.5)));
    return ops::linear(hidden, parameter("shared.weight"));
  }
  return ops::linear(hidden, parameter("lm_head.weight"));
}

Tensor T5Model::logits(const Tensor& input_ids, const Tensor& attention_mask, const Tensor& labels,
                       const T5ForwardOptions& options) const {
  // Converted once for the encoder's and the decoder's cross-attention layers.
  const Tensor key_mask = attention_mask.defined() ? ops::key_mask_as_flags(attention_mask) : Tensor();
  const Tensor encoded = encode(input_ids, key_mask, options);
  const Tensor decoder_inputs =
      shift_right(labels, config_.decoder_start_token_id, config_.pad_token_id).to_device(labels.device());
  return decode(decoder_inputs, encoded, key_mask, options);
}

Tensor T5Model::loss(const Tensor& input_ids, const Tensor& attention_mask, const Tensor& labels,
                     const T5ForwardOptions& options) const {
  return ops::cross_entropy(logits(input_ids, attention_mask, labels, options), labels);
}

Tensor shift_right(const Tensor& labels, int64_t decoder_start_token_id, int64_t pad_token_id) {
  if (!labels.defined() || labels.rank() != 2 || !is_integer(labels.dtype())) {
    Fail(ErrorKind::kInvalidArgument, "shift_right: labels must be integer [batch, len], got ", labels.describe());
  }
  if (!labels.host_accessible()) {
    return shift_right(labels.to_device(Device::cpu()), decoder_start_token_id, pad_token_id).to_device(labels.device());
  }
  const Tensor source = labels.to(DType::kI64).contiguous();
  const int64_t batch = source.size(0), length = source.size(1);
  Tensor shifted = Tensor::empty({batch, length}, DType::kI64);
  const int64_t* in = source.data<int64_t>();
  int64_t* out = shifted.data<int64_t>();
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t t = 0; t < length; ++t) {
      const int64_t value = t == 0 ? decoder_start_token_id : in[b * length + t - 1];
      out[b * length + t] = value == -100 ? pad_token_id : value;
    }
  }
  return shifted;
}

}  // namespace la3
