// T5 hyper-parameters, with the field names and defaults of transformers' T5Config.
// Every size comes from here (d_kv is independent of d_model / num_heads; encoder and
// decoder depths may differ): nothing in model/ assumes the released sizes.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace la3 {

enum class FeedForwardKind {
  kRelu,       // T5 v1.0: wo(relu(wi x))
  kGatedGelu,  // T5.1.1 / MolT5: wo(gelu_new(wi_0 x) * wi_1 x)
};

struct T5Config {
  int64_t vocab_size = 32128;
  int64_t d_model = 512;
  int64_t d_kv = 64;
  int64_t d_ff = 2048;
  int64_t num_layers = 6;          // encoder blocks
  int64_t num_decoder_layers = 6;  // decoder blocks
  int64_t num_heads = 8;
  int relative_attention_num_buckets = 32;
  int relative_attention_max_distance = 128;
  float dropout_rate = 0.1f;
  float layer_norm_epsilon = 1e-6f;
  float initializer_factor = 1.0f;
  FeedForwardKind feed_forward = FeedForwardKind::kRelu;
  // v1.0 ties the LM head to the shared embedding and scales the decoder output by
  // d_model^-0.5 before it; v1.1 / MolT5 have a separate lm_head and no scaling.
  bool tie_word_embeddings = true;
  int64_t pad_token_id = 0;
  int64_t eos_token_id = 1;
  int64_t decoder_start_token_id = 0;

  int64_t inner_dim() const { return num_heads * d_kv; }

  // Named presets: "t5-small" (v1.0), "molt5-small", "molt5-base", "molt5-large" (T5.1.1
  // sizes as released for MolT5), "tiny" (for tests and the CPU demo).
  static absl::StatusOr<T5Config> preset(const std::string& name);
};

// Checks every field (positive sizes, bucket count even and >= 2, ids inside the vocabulary).
absl::Status validate_t5_config(const T5Config& config);

// Reads a Hugging Face config.json (T5 / MT5 / MolT5). Keys we do not model are ignored,
// as transformers does; a wrong type or an unsupported feed_forward_proj is an error naming
// `source` and the key.
absl::StatusOr<T5Config> t5_config_from_hf_json(const std::string& json_text, const std::string& source);

// Writes a config.json that T5ForConditionalGeneration.from_pretrained accepts.
std::string t5_config_to_hf_json(const T5Config& config);

}  // namespace la3
