#include "model/t5_config.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace la3 {

using nlohmann::json;

absl::StatusOr<T5Config> T5Config::preset(const std::string& name) {
  T5Config c;
  if (name == "t5-small") {
    return c;  // transformers' T5Config defaults are t5-small
  }
  c.feed_forward = FeedForwardKind::kGatedGelu;
  c.tie_word_embeddings = false;
  if (name == "molt5-small") {
    c.d_model = 512; c.d_kv = 64; c.d_ff = 1024; c.num_heads = 6; c.num_layers = 8; c.num_decoder_layers = 8;
    return c;
  }
  if (name == "molt5-base") {
    c.d_model = 768; c.d_kv = 64; c.d_ff = 2048; c.num_heads = 12; c.num_layers = 12; c.num_decoder_layers = 12;
    return c;
  }
  if (name == "molt5-large") {
    c.d_model = 1024; c.d_kv = 64; c.d_ff = 2816; c.num_heads = 16; c.num_layers = 24; c.num_decoder_layers = 24;
    return c;
  }
  if (name == "tiny") {  // MolT5's architecture (gated-GELU, untied head) at demo size
    c.d_model = 64; c.d_kv = 16; c.d_ff = 128; c.num_heads = 4; c.num_layers = 2; c.num_decoder_layers = 2;
    return c;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown model preset '", name,
                                                 "': expected tiny, t5-small, molt5-small, molt5-base or molt5-large"));
}

absl::Status validate_t5_config(const T5Config& c) {
  auto positive = [](const char* key, int64_t value) -> absl::Status {
    if (value <= 0) return absl::InvalidArgumentError(absl::StrCat("model config: ", key, " must be positive, got ", value));
    return absl::OkStatus();
  };
  for (const auto& [key, value] : {std::pair<const char*, int64_t>{"vocab_size", c.vocab_size},
                                   {"d_model", c.d_model}, {"d_kv", c.d_kv}, {"d_ff", c.d_ff},
                                   {"num_layers", c.num_layers}, {"num_decoder_layers", c.num_decoder_layers},
                                   {"num_heads", c.num_heads},
                                   {"relative_attention_max_distance", c.relative_attention_max_distance}}) {
    if (absl::Status s = positive(key, value); !s.ok()) return s;
  }
  if (c.relative_attention_num_buckets < 4 || c.relative_attention_num_buckets % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model config: relative_attention_num_buckets must be even and >= 4, got ", c.relative_attention_num_buckets));
  }
  if (!(c.dropout_rate >= 0.0f && c.dropout_rate < 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("model config: dropout_rate must be in [0, 1), got ", c.dropout_rate));
  }
  if (!(c.layer_norm_epsilon > 0.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("model config: layer_norm_epsilon must be positive, got ",
                                                   c.layer_norm_epsilon));
  }
  for (const auto& [key, value] : {std::pair<const char*, int64_t>{"pad_token_id", c.pad_token_id},
                                   {"eos_token_id", c.eos_token_id},
                                   {"decoder_start_token_id", c.decoder_start_token_id}}) {
    if (value < 0 || value >= c.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("model config: ", key, " = ", value, " is outside the vocabulary [0, ", c.vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

namespace {

template <typename T>
absl::Status read_number(const json& j, const char* key, T& out, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) return absl::OkStatus();
  if (!j[key].is_number()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": \"", key, "\" must be a number, got ", j[key].dump()));
  }
  out = j[key].get<T>();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<T5Config> t5_config_from_hf_json(const std::string& json_text, const std::string& source) {
  const json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  }
  if (j.contains("model_type") && j["model_type"].is_string()) {
    const std::string type = j["model_type"].get<std::string>();
    if (type != "t5" && type != "mt5") {
      return absl::InvalidArgumentError(absl::StrCat(source, ": model_type \"", type, "\" is not a T5 model"));
    }
  }
  T5Config c;
  c.num_decoder_layers = -1;  // defaults to num_layers, as in transformers
  absl::Status s;
  if (!(s = read_number(j, "vocab_size", c.vocab_size, source)).ok()) return s;
  if (!(s = read_number(j, "d_model", c.d_model, source)).ok()) return s;
  if (!(s = read_number(j, "d_kv", c.d_kv, source)).ok()) return s;
  if (!(s = read_number(j, "d_ff", c.d_ff, source)).ok()) return s;
  if (!(s = read_number(j, "num_layers", c.num_layers, source)).ok()) return s;
  if (!(s = read_number(j, "num_decoder_layers", c.num_decoder_layers, source)).ok()) return s;
  if (!(s = read_number(j, "num_heads", c.num_heads, source)).ok()) return s;
  if (!(s = read_number(j, "relative_attention_num_buckets", c.relative_attention_num_buckets, source)).ok()) return s;
  if (!(s = read_number(j, "relative_attention_max_distance", c.relative_attention_max_distance, source)).ok()) return s;
  if (!(s = read_number(j, "dropout_rate", c.dropout_rate, source)).ok()) return s;
  if (!(s = read_number(j, "layer_norm_epsilon", c.layer_norm_epsilon, source)).ok()) return s;
  if (!(s = read_number(j, "initializer_factor", c.initializer_factor, source)).ok()) return s;
  if (!(s = read_number(j, "pad_token_id", c.pad_token_id, source)).ok()) return s;
  if (!(s = read_number(j, "eos_token_id", c.eos_token_id, source)).ok()) return s;
  if (!(s = read_number(j, "decoder_start_token_id", c.decoder_start_token_id, source)).ok()) return s;
  if (c.num_decoder_layers < 0) c.num_decoder_layers = c.num_layers;
  if (j.contains("tie_word_embeddings")) {
    if (!j["tie_word_embeddings"].is_boolean()) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": \"tie_word_embeddings\" must be true or false"));
    }
    c.tie_word_embeddings = j["tie_word_embeddings"].get<bool>();
  }
  std::string projection = "relu";
  if (j.contains("feed_forward_proj")) {
    if (!j["feed_forward_proj"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": \"feed_forward_proj\" must be a string"));
    }
    projection = j["feed_forward_proj"].get<std::string>();
  }
  // transformers maps "gated-gelu" to the gated gelu_new activation.
  if (projection == "relu") {
    c.feed_forward = FeedForwardKind::kRelu;
  } else if (projection == "gated-gelu") {
    c.feed_forward = FeedForwardKind::kGatedGelu;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(source, ": feed_forward_proj \"", projection,
                                                   "\" is not supported (expected relu or gated-gelu)"));
  }
  if (absl::Status valid = validate_t5_config(c); !valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", valid.message()));
  }
  return c;
}

std::string t5_config_to_hf_json(const T5Config& c) {
  const bool gated = c.feed_forward == FeedForwardKind::kGatedGelu;
  json j = {
      {"architectures", {"T5ForConditionalGeneration"}},
      {"model_type", "t5"},
      {"vocab_size", c.vocab_size},
      {"d_model", c.d_model},
      {"d_kv", c.d_kv},
      {"d_ff", c.d_ff},
      {"num_layers", c.num_layers},
      {"num_decoder_layers", c.num_decoder_layers},
      {"num_heads", c.num_heads},
      {"relative_attention_num_buckets", c.relative_attention_num_buckets},
      {"relative_attention_max_distance", c.relative_attention_max_distance},
      {"dropout_rate", c.dropout_rate},
      {"layer_norm_epsilon", c.layer_norm_epsilon},
      {"initializer_factor", c.initializer_factor},
      {"feed_forward_proj", gated ? "gated-gelu" : "relu"},
      {"dense_act_fn", gated ? "gelu_new" : "relu"},
      {"is_gated_act", gated},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"pad_token_id", c.pad_token_id},
      {"eos_token_id", c.eos_token_id},
      {"decoder_start_token_id", c.decoder_start_token_id},
      {"is_encoder_decoder", true},
      {"use_cache", true},
  };
  return j.dump(2) + "\n";
}

}  // namespace la3
