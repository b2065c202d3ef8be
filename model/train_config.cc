#include "model/train_config.h"

#include "engine/device.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/io/file_io.h"

namespace la3 {

namespace {

// Reads the keys of one YAML mapping, remembering which were consumed so the rest can be
// reported as unknown.
// "file:line" of every key the document sets, so range errors name where the value is.
using KeyLines = std::map<std::string, int64_t>;

class Section {
 public:
  Section(const YAML::Node& node, std::string path, const std::string& source, KeyLines& lines)
      : node_(node), path_(std::move(path)), source_(source), lines_(lines) {}

  absl::Status check_is_map() const {
    if (node_ && !node_.IsNull() && !node_.IsMap()) {
      return absl::InvalidArgumentError(absl::StrCat(source_, ": ", path_.empty() ? "the document" : path_,
                                                     " must be a mapping of keys to values"));
    }
    return absl::OkStatus();
  }

  template <typename T>
  absl::Status read(const std::string& key, T& out) {
    known_.insert(key);
    if (!node_ || !node_.IsMap() || !node_[key]) return absl::OkStatus();
    const YAML::Node value = node_[key];
    lines_[key_path(key)] = value.Mark().line + 1;
    try {
      if (!value.IsScalar()) throw YAML::Exception(YAML::Mark::null_mark(), "not a scalar");
      out = value.as<T>();
    } catch (const YAML::Exception&) {
      return absl::InvalidArgumentError(absl::StrCat(source_, ":", value.Mark().line + 1, ": ", key_path(key),
                                                     " has an invalid value '", YAML::Dump(value), "'"));
    }
    return absl::OkStatus();
  }

  // Reads a string and maps it through `parse` (returning StatusOr<E>).
  template <typename E, typename Parse>
  absl::Status read_enum(const std::string& key, E& out, Parse parse) {
    std::string text;
    if (absl::Status s = read(key, text); !s.ok()) return s;
    if (text.empty()) return absl::OkStatus();
    absl::StatusOr<E> parsed = parse(text);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source_, ":", lines_[key_path(key)], ": ", key_path(key), ": ", parsed.status().message()));
    }
    out = *parsed;
    return absl::OkStatus();
  }

  absl::Status check_unknown_keys() const {
    if (!node_ || !node_.IsMap()) return absl::OkStatus();
    for (const auto& entry : node_) {
      // A sequence or mapping as a key ("[a, b]: 1", "? {a: 1}") has no name: as<std::string>()
      // would throw out of the parser (found by the fuzz targets in fuzz/).
      if (!entry.first.IsScalar()) {
        return absl::InvalidArgumentError(absl::StrCat(source_, ":", entry.first.Mark().line + 1, ": a key of ",
                                                       path_.empty() ? "the document" : path_,
                                                       " must be a plain name, not a list or mapping"));
      }
      const std::string key = entry.first.as<std::string>();
      if (!known_.count(key)) {
        return absl::InvalidArgumentError(absl::StrCat(source_, ":", entry.first.Mark().line + 1, ": unknown key '",
                                                       key_path(key), "' (known keys: ", absl::StrJoin(known_, ", "), ")"));
      }
    }
    return absl::OkStatus();
  }

  std::string key_path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  YAML::Node child(const std::string& key) {
    known_.insert(key);
    return node_ && node_.IsMap() ? node_[key] : YAML::Node();
  }

 private:
  YAML::Node node_;
  std::string path_;
  const std::string& source_;
  KeyLines& lines_;
  std::set<std::string> known_;
};

absl::Status require(bool ok, const std::string& source, const std::string& what) {
  return ok ? absl::OkStatus() : absl::InvalidArgumentError(absl::StrCat(source, ": ", what));
}

}  // namespace

void TrainConfig::resolve_paths(const std::string& base) {
  auto resolve = [&](std::string& path) {
    if (!path.empty() && std::filesystem::path(path).is_relative()) path = (std::filesystem::path(base) / path).string();
  };
  resolve(train_path);
  resolve(validation_path);
  resolve(tokenizer_path);
  resolve(init_checkpoint);
}

absl::StatusOr<T5Config> TrainConfig::model_config(int64_t tokenizer_vocab) const {
  absl::StatusOr<T5Config> config = T5Config::preset(model_preset);
  if (!config.ok()) return config.status();
  if (model_preset == "tiny") config->vocab_size = std::max<int64_t>(tokenizer_vocab, 2);
  config->dropout_rate = dropout_rate;
  auto override_with = [](auto& field, auto value) {
    if (value > 0) field = value;
  };
  override_with(config->d_model, d_model);
  override_with(config->d_kv, d_kv);
  override_with(config->d_ff, d_ff);
  override_with(config->num_layers, num_layers);
  override_with(config->num_decoder_layers, num_decoder_layers);
  override_with(config->num_heads, num_heads);
  override_with(config->relative_attention_num_buckets, relative_attention_num_buckets);
  override_with(config->relative_attention_max_distance, relative_attention_max_distance);
  if (feed_forward == "relu") config->feed_forward = FeedForwardKind::kRelu;
  if (feed_forward == "gated-gelu") config->feed_forward = FeedForwardKind::kGatedGelu;
  if (absl::Status s = validate_t5_config(*config); !s.ok()) return s;
  return config;
}

absl::StatusOr<TrainConfig> parse_train_config(const std::string& yaml_text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& error) {
    return absl::InvalidArgumentError(absl::StrCat(source, ":", error.mark.line + 1, ": YAML syntax error: ", error.msg));
  }
  TrainConfig c;
  KeyLines lines;
  Section top(root, "", source, lines);
  if (absl::Status s = top.check_is_map(); !s.ok()) return s;

  Section model(top.child("model"), "model", source, lines);
  Section data(top.child("data"), "data", source, lines);
  Section loss(top.child("loss"), "loss", source, lines);
  Section optimizer(top.child("optimizer"), "optimizer", source, lines);
  Section schedule(top.child("schedule"), "schedule", source, lines);
  Section training(top.child("training"), "training", source, lines);
  Section run(top.child("run"), "run", source, lines);
  Section distributed(top.child("distributed"), "distributed", source, lines);
  std::string bad_rows = "fail";
  int64_t seed = static_cast<int64_t>(c.seed);
  for (absl::Status s : {
           top.check_unknown_keys(), model.check_is_map(), data.check_is_map(), loss.check_is_map(),
           optimizer.check_is_map(), schedule.check_is_map(), training.check_is_map(), run.check_is_map(),
           distributed.check_is_map(),
           model.read("preset", c.model_preset), model.read("init_checkpoint", c.init_checkpoint),
           model.read("dropout_rate", c.dropout_rate), model.read("d_model", c.d_model), model.read("d_kv", c.d_kv),
           model.read("d_ff", c.d_ff), model.read("num_layers", c.num_layers),
           model.read("num_decoder_layers", c.num_decoder_layers), model.read("num_heads", c.num_heads),
           model.read("relative_attention_num_buckets", c.relative_attention_num_buckets),
           model.read("relative_attention_max_distance", c.relative_attention_max_distance),
           model.read("feed_forward", c.feed_forward),
           data.read("train", c.train_path), data.read("validation", c.validation_path),
           data.read("tokenizer", c.tokenizer_path), data.read_enum("direction", c.direction, parse_direction),
           data.read("bad_rows", bad_rows), data.read("max_source_length", c.max_source_length),
           data.read("max_target_length", c.max_target_length),
           loss.read_enum("mode", c.loss, ops::parse_caption_loss), loss.read("k", c.k),
           optimizer.read("lr", c.lr), optimizer.read("beta1", c.beta1), optimizer.read("beta2", c.beta2),
           optimizer.read("eps", c.eps), optimizer.read("weight_decay", c.weight_decay),
           schedule.read_enum("kind", c.schedule, parse_schedule_kind), schedule.read("warmup_steps", c.warmup_steps),
           training.read("batch_size", c.batch_size), training.read("grad_accumulation", c.grad_accumulation),
           training.read("max_steps", c.max_steps), training.read("clip_grad_norm", c.clip_grad_norm),
           training.read("eval_every", c.eval_every), training.read("checkpoint_every", c.checkpoint_every),
           training.read("log_every", c.log_every), training.read("seed", seed), training.read("threads", c.threads),
           training.read("device", c.device), training.read("gemm_precision", c.gemm_precision),
           training.read("activations", c.activations),
           training.read("recompute", c.recompute),
           run.read("output_dir", c.output_dir), run.read("keep_checkpoints", c.keep_checkpoints),
           distributed.read("backend", c.dist_backend), distributed.read("bucket_mb", c.dist_bucket_mb),
           distributed.read("shard_optimizer", c.dist_shard_optimizer), distributed.read("timeout_s", c.dist_timeout_s),
           distributed.read("overlap", c.dist_overlap),
           model.check_unknown_keys(), data.check_unknown_keys(), loss.check_unknown_keys(),
           optimizer.check_unknown_keys(), schedule.check_unknown_keys(), training.check_unknown_keys(),
           run.check_unknown_keys(), distributed.check_unknown_keys()}) {
    if (!s.ok()) return s;
  }
  c.seed = static_cast<uint64_t>(seed);
  c.dropout_rate_set = root.IsMap() && root["model"].IsMap() && root["model"]["dropout_rate"].IsDefined();
  if (bad_rows == "fail") {
    c.bad_rows = BadRowPolicy::kFail;
  } else if (bad_rows == "skip") {
    c.bad_rows = BadRowPolicy::kSkip;
  } else {
    const auto it = lines.find("data.bad_rows");
    return absl::InvalidArgumentError(absl::StrCat(source, it == lines.end() ? "" : absl::StrCat(":", it->second),
                                                   ": data.bad_rows must be fail or skip, got '", bad_rows, "'"));
  }
  // "file:line" of the key when the document sets it, else "file" (a default is wrong).
  auto at = [&](const std::string& key) {
    const auto it = lines.find(key);
    return it == lines.end() ? source : absl::StrCat(source, ":", it->second);
  };
  auto finite = [&](const std::string& key, double value) {
    return require(std::isfinite(value), at(key),
                   absl::StrCat(key, " must be a finite number (.inf and .nan are not), got ", value));
  };
  for (absl::Status s : {
           finite("optimizer.lr", c.lr), finite("optimizer.beta1", c.beta1), finite("optimizer.beta2", c.beta2),
           finite("optimizer.eps", c.eps), finite("optimizer.weight_decay", c.weight_decay),
           finite("training.clip_grad_norm", c.clip_grad_norm), finite("model.dropout_rate", c.dropout_rate),
           finite("distributed.bucket_mb", c.dist_bucket_mb), finite("distributed.timeout_s", c.dist_timeout_s),
           require(c.init_checkpoint.empty() ? T5Config::preset(c.model_preset).ok() : true, at("model.preset"),
                   absl::StrCat("model.preset '", c.model_preset, "' is not a known preset")),
           require(c.dropout_rate >= 0.0f && c.dropout_rate < 1.0f, at("model.dropout_rate"), "model.dropout_rate must be in [0, 1)"),
           require(c.feed_forward.empty() || c.feed_forward == "relu" || c.feed_forward == "gated-gelu", at("model.feed_forward"),
                   absl::StrCat("model.feed_forward must be relu or gated-gelu, got '", c.feed_forward, "'")),
           require(c.max_source_length >= 2 && c.max_target_length >= 2,
                   at(c.max_source_length < 2 ? "data.max_source_length" : "data.max_target_length"),
                   "data.max_source_length and data.max_target_length must be >= 2"),
           require(c.k >= 0, at("loss.k"), "loss.k must be >= 0"),
           require(c.lr > 0.0, at("optimizer.lr"), "optimizer.lr must be positive"),
           require(c.beta1 >= 0.0 && c.beta1 < 1.0 && c.beta2 >= 0.0 && c.beta2 < 1.0,
                   at(c.beta1 >= 0.0 && c.beta1 < 1.0 ? "optimizer.beta2" : "optimizer.beta1"),
                   "optimizer.beta1 and optimizer.beta2 must be in [0, 1)"),
           require(c.eps >= 0.0 && c.weight_decay >= 0.0, at(c.eps >= 0.0 ? "optimizer.weight_decay" : "optimizer.eps"), "optimizer.eps and optimizer.weight_decay must be >= 0"),
           require(c.warmup_steps >= 0, at("schedule.warmup_steps"), "schedule.warmup_steps must be >= 0"),
           // "constant" is what it says; a ramp first is transformers' constant_with_warmup.
           require(c.schedule != ScheduleKind::kConstant || c.warmup_steps == 0, at("schedule.warmup_steps"),
                   absl::StrCat("schedule.kind constant with schedule.warmup_steps ", c.warmup_steps,
                                " would ramp the learning rate up first: write kind: constant_with_warmup for that, "
                                "or warmup_steps: 0 for a constant rate")),
           require(c.batch_size >= 1 && c.grad_accumulation >= 1,
                   at(c.batch_size >= 1 ? "training.grad_accumulation" : "training.batch_size"),
                   "training.batch_size and training.grad_accumulation must be >= 1"),
           require(c.max_steps >= 1, at("training.max_steps"), "training.max_steps must be >= 1"),
           require(c.clip_grad_norm >= 0.0, at("training.clip_grad_norm"), "training.clip_grad_norm must be >= 0 (0 = off)"),
           require(c.eval_every >= 0 && c.checkpoint_every >= 0 && c.log_every >= 1,
                   at(c.eval_every < 0 ? "training.eval_every" : c.checkpoint_every < 0 ? "training.checkpoint_every" : "training.log_every"),
                   "training.eval_every and checkpoint_every must be >= 0 (0 = off), log_every >= 1"),
           require(c.threads >= 0, at("training.threads"), "training.threads must be >= 0"),
           require(c.device == "auto" || parse_device(c.device).ok(), at("training.device"),
                   absl::StrCat("training.device '", c.device,
                                "': expected auto, cpu, cuda, cuda:N or cuda-emu (the CUDA backend under the SIMT "
                                "emulation)")),
           require(c.gemm_precision == "bf16" || c.gemm_precision == "fp32", at("training.gemm_precision"),
                   absl::StrCat("training.gemm_precision '", c.gemm_precision, "': expected bf16 or fp32")),
           require(c.activations == "f32" || c.activations == "bf16", at("training.activations"),
                   absl::StrCat("training.activations '", c.activations, "': expected f32 or bf16")),
           require(c.activations == "f32" || c.device != "cpu", at("training.activations"),
                   "training.activations bf16 needs a cuda or cuda-emu device (the cpu backend computes in f32)"),
           require(c.activations == "f32" || c.gemm_precision == "bf16", at("training.activations"),
                   "training.activations bf16 multiplies bf16 operands: training.gemm_precision must be bf16"),
           require(c.recompute == "none" || c.recompute == "attention" || c.recompute == "block", at("training.recompute"),
                   absl::StrCat("training.recompute '", c.recompute, "': expected none, attention or block")),
           require(!c.output_dir.empty(), at("run.output_dir"), "run.output_dir must not be empty"),
           require(c.keep_checkpoints >= 1, at("run.keep_checkpoints"), "run.keep_checkpoints must be >= 1"),
           require(c.dist_backend == "auto" || c.dist_backend == "nccl" || c.dist_backend == "mpi", at("distributed.backend"),
                   absl::StrCat("distributed.backend '", c.dist_backend, "': expected auto, nccl or mpi")),
           require(c.dist_bucket_mb > 0.0 && c.dist_bucket_mb <= 4096.0, at("distributed.bucket_mb"),
                   "distributed.bucket_mb must be in (0, 4096]"),
           require(c.dist_timeout_s > 0.0, at("distributed.timeout_s"), "distributed.timeout_s must be positive"),
       }) {
    if (!s.ok()) return s;
  }
  // The model's own checks (sizes that fit together), after the per-key ones above.
  if (c.init_checkpoint.empty()) {
    absl::StatusOr<T5Config> model_config = c.model_config(/*tokenizer_vocab=*/1);
    if (!model_config.ok()) return absl::InvalidArgumentError(absl::StrCat(source, ": ", model_config.status().message()));
  }
  return c;
}

absl::StatusOr<TrainConfig> load_train_config(const std::string& path) {
  absl::StatusOr<std::string> text = read_file(path);
  if (!text.ok()) return text.status();
  absl::StatusOr<TrainConfig> config = parse_train_config(*text, path);
  if (!config.ok()) return config.status();
  return config;
}

std::string train_config_to_yaml(const TrainConfig& c) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "model" << YAML::Value << YAML::BeginMap << YAML::Key << "preset" << YAML::Value << c.model_preset
      << YAML::Key << "init_checkpoint" << YAML::Value << c.init_checkpoint << YAML::Key << "dropout_rate"
      << YAML::Value << c.dropout_rate;
  for (const auto& [key, value] : {std::pair<const char*, int64_t>{"d_model", c.d_model}, {"d_kv", c.d_kv},
                                   {"d_ff", c.d_ff}, {"num_layers", c.num_layers},
                                   {"num_decoder_layers", c.num_decoder_layers}, {"num_heads", c.num_heads},
                                   {"relative_attention_num_buckets", c.relative_attention_num_buckets},
                                   {"relative_attention_max_distance", c.relative_attention_max_distance}}) {
    if (value > 0) out << YAML::Key << key << YAML::Value << value;
  }
  if (!c.feed_forward.empty()) out << YAML::Key << "feed_forward" << YAML::Value << c.feed_forward;
  out << YAML::EndMap;
  out << YAML::Key << "data" << YAML::Value << YAML::BeginMap << YAML::Key << "train" << YAML::Value << c.train_path
      << YAML::Key << "validation" << YAML::Value << c.validation_path << YAML::Key << "tokenizer" << YAML::Value
      << c.tokenizer_path << YAML::Key << "direction" << YAML::Value << direction_name(c.direction) << YAML::Key
      << "bad_rows" << YAML::Value << (c.bad_rows == BadRowPolicy::kFail ? "fail" : "skip") << YAML::Key
      << "max_source_length" << YAML::Value << c.max_source_length << YAML::Key << "max_target_length" << YAML::Value
      << c.max_target_length << YAML::EndMap;
  out << YAML::Key << "loss" << YAML::Value << YAML::BeginMap << YAML::Key << "mode" << YAML::Value
      << ops::caption_loss_name(c.loss) << YAML::Key << "k" << YAML::Value << c.k << YAML::EndMap;
  out << YAML::Key << "optimizer" << YAML::Value << YAML::BeginMap << YAML::Key << "lr" << YAML::Value << c.lr
      << YAML::Key << "beta1" << YAML::Value << c.beta1 << YAML::Key << "beta2" << YAML::Value << c.beta2 << YAML::Key
      << "eps" << YAML::Value << c.eps << YAML::Key << "weight_decay" << YAML::Value << c.weight_decay << YAML::EndMap;
  const std::string kind = schedule_kind_name(c.schedule);
  out << YAML::Key << "schedule" << YAML::Value << YAML::BeginMap << YAML::Key << "kind" << YAML::Value << kind
      << YAML::Key << "warmup_steps" << YAML::Value << c.warmup_steps << YAML::EndMap;
  out << YAML::Key << "training" << YAML::Value << YAML::BeginMap << YAML::Key << "batch_size" << YAML::Value
      << c.batch_size << YAML::Key << "grad_accumulation" << YAML::Value << c.grad_accumulation << YAML::Key
      << "max_steps" << YAML::Value << c.max_steps << YAML::Key << "clip_grad_norm" << YAML::Value << c.clip_grad_norm
      << YAML::Key << "eval_every" << YAML::Value << c.eval_every << YAML::Key << "checkpoint_every" << YAML::Value
      << c.checkpoint_every << YAML::Key << "log_every" << YAML::Value << c.log_every << YAML::Key << "seed"
      << YAML::Value << c.seed << YAML::Key << "threads" << YAML::Value << c.threads << YAML::Key << "device"
      << YAML::Value << c.device << YAML::Key << "gemm_precision" << YAML::Value << c.gemm_precision << YAML::Key
      << "activations" << YAML::Value << c.activations << YAML::Key << "recompute" << YAML::Value << c.recompute << YAML::EndMap;
  out << YAML::Key << "distributed" << YAML::Value << YAML::BeginMap << YAML::Key << "backend" << YAML::Value
      << c.dist_backend << YAML::Key << "bucket_mb" << YAML::Value << c.dist_bucket_mb << YAML::Key
      << "shard_optimizer" << YAML::Value << c.dist_shard_optimizer << YAML::Key << "timeout_s" << YAML::Value
      << c.dist_timeout_s << YAML::Key << "overlap" << YAML::Value << c.dist_overlap << YAML::EndMap;
  out << YAML::Key << "run" << YAML::Value << YAML::BeginMap << YAML::Key << "output_dir" << YAML::Value << c.output_dir
      << YAML::Key << "keep_checkpoints" << YAML::Value << c.keep_checkpoints << YAML::EndMap;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace la3
