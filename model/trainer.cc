#include "model/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "data/batching.h"
#include "data/tokenizer.h"
#include "engine/autograd/tape.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/cuda/device_setup.h"
#include "engine/io/file_io.h"
#include "engine/io/safetensors.h"
#include "engine/ops/elementwise.h"
#include "engine/optim/adamw.h"
#include "model/t5_checkpoint.h"

namespace la3 {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Position {  // where in the data the next optimizer step starts
  int64_t step = 0;
  int64_t epoch = 0;
  int64_t batch = 0;  // index into the epoch's batch plan
};

absl::Status append_metrics(const std::string& path, const nlohmann::json& record) {
  std::ofstream out(path, std::ios::app);
  if (!out) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot append metrics"));
  out << record.dump() << "\n";
  out.flush();
  if (!out) return absl::DataLossError(absl::StrCat(path, ": write failed"));
  return absl::OkStatus();
}

// Writes the checkpoint into a sibling temporary directory and swaps it in, so a crash
// leaves either the previous checkpoint or the new one, never a mixture.
absl::Status save_checkpoint(const std::string& run_dir, const T5Model& model, const AdamW& optimizer,
                             const Position& position, uint64_t seed, const std::string& tokenizer_path) {
  const fs::path final_dir = fs::path(run_dir) / "checkpoint";
  const fs::path staging = fs::path(run_dir) / "checkpoint.tmp";
  const fs::path previous = fs::path(run_dir) / "checkpoint.old";
  std::error_code error;
  fs::remove_all(staging, error);
  if (absl::Status s = save_t5_checkpoint(model, staging.string()); !s.ok()) return s;
  // The tokenizer travels with the weights (as spiece.model in HF T5 directories), so
  // `engine generate --checkpoint DIR` needs nothing else.
  fs::copy_file(tokenizer_path, staging / "spiece.model", fs::copy_options::overwrite_existing, error);
  if (error) return absl::DataLossError(absl::StrCat("cannot copy ", tokenizer_path, " into the checkpoint: ", error.message()));
  std::map<std::string, Tensor> moments;
  size_t i = 0;
  for (const auto& [name, parameter] : model.parameters()) {
    moments["exp_avg." + name] = optimizer.exp_avg()[i];
    moments["exp_avg_sq." + name] = optimizer.exp_avg_sq()[i];
    ++i;
  }
  if (absl::Status s = write_safetensors((staging / "optimizer.safetensors").string(), moments); !s.ok()) return s;
  const nlohmann::json state = {{"step", position.step},      {"epoch", position.epoch},
                                {"batch", position.batch},    {"seed", seed},
                                {"optimizer_steps", optimizer.steps_taken()}};
  if (absl::Status s = write_file_atomically((staging / "state.json").string(), state.dump(2) + "\n"); !s.ok()) return s;
  fs::remove_all(previous, error);
  if (fs::exists(final_dir)) {
    fs::rename(final_dir, previous, error);
    if (error) return absl::DataLossError(absl::StrCat("cannot move ", final_dir.string(), " aside: ", error.message()));
  }
  fs::rename(staging, final_dir, error);
  if (error) return absl::DataLossError(absl::StrCat("cannot install checkpoint ", final_dir.string(), ": ", error.message()));
  fs::remove_all(previous, error);
  return absl::OkStatus();
}

absl::StatusOr<Position> restore_checkpoint(const std::string& run_dir, T5Model& model, AdamW& optimizer) {
  const fs::path dir = fs::path(run_dir) / "checkpoint";
  absl::StatusOr<T5Model> saved = load_t5_checkpoint(dir.string());
  if (!saved.ok()) return saved.status();
  for (const auto& [name, parameter] : model.parameters()) {
    auto found = saved->parameters().find(name);
    if (found == saved->parameters().end() || found->second.shape() != parameter.shape()) {
      return absl::InvalidArgumentError(absl::StrCat(dir.string(), ": parameter \"", name,
                                                     "\" does not match the configured model; resume with the same config"));
    }
    parameter.copy_from(found->second);
  }
  absl::StatusOr<SafetensorsContents> moments = read_safetensors((dir / "optimizer.safetensors").string());
  if (!moments.ok()) return moments.status();
  std::vector<Tensor> exp_avg, exp_avg_sq;
  for (const auto& [name, parameter] : model.parameters()) {
    auto m = moments->tensors.find("exp_avg." + name);
    auto v = moments->tensors.find("exp_avg_sq." + name);
    if (m == moments->tensors.end() || v == moments->tensors.end()) {
      return absl::InvalidArgumentError(absl::StrCat(dir.string(), "/optimizer.safetensors: no moments for \"", name, "\""));
    }
    exp_avg.push_back(m->second);
    exp_avg_sq.push_back(v->second);
  }
  absl::StatusOr<std::string> state_text = read_file((dir / "state.json").string());
  if (!state_text.ok()) return state_text.status();
  const nlohmann::json state = nlohmann::json::parse(*state_text, nullptr, false);
  if (state.is_discarded() || !state.contains("step") || !state.contains("epoch") || !state.contains("batch") ||
      !state.contains("optimizer_steps")) {
    return absl::InvalidArgumentError(absl::StrCat(dir.string(), "/state.json: missing step, epoch, batch or optimizer_steps"));
  }
  if (absl::Status s = optimizer.restore_state(state["optimizer_steps"].get<int64_t>(), exp_avg, exp_avg_sq); !s.ok()) {
    return s;
  }
  return Position{state["step"].get<int64_t>(), state["epoch"].get<int64_t>(), state["batch"].get<int64_t>()};
}

// The loss of one batch (differentiable when a tape is active).
Tensor batch_loss(const T5Model& model, const Batch& batch, ops::CaptionLoss mode, const T5ForwardOptions& forward) {
  // Batches are collated on the host; the model's device gets its own copy.
  const Device device = model.device();
  const Tensor labels = batch.labels.to_device(device);
  const Tensor logits = model.logits(batch.input_ids.to_device(device), batch.attention_mask.to_device(device), labels,
                                     forward);
  const Tensor group = Tensor::from_vector<int64_t>({static_cast<int64_t>(batch.group.size())}, batch.group, device);
  return ops::caption_loss_from_logits(logits, labels, group, mode);
}

double validation_loss(const T5Model& model, const std::vector<ExampleGroup>& groups, const TrainConfig& config) {
  NoGradGuard no_grad;
  BatchPlanOptions plan_options;
  plan_options.groups_per_batch = config.batch_size;
  plan_options.shuffle = false;
  double weighted = 0.0, tokens = 0.0;
  for (const std::vector<size_t>& members : make_batch_plan(groups, plan_options)) {
    const Batch batch = collate(groups, members);
    const double loss = batch_loss(model, batch, config.loss, {}).item();
    weighted += loss * static_cast<double>(batch.target_tokens);
    tokens += static_cast<double>(batch.target_tokens);
  }
  return tokens > 0.0 ? weighted / tokens : 0.0;
}

absl::StatusOr<std::vector<ExampleGroup>> load_groups(const std::string& path, const TrainConfig& config,
                                                      const Tokenizer& tokenizer, const TrainOptions& options,
                                                      const char* split) {
  ReadOptions read_options;
  read_options.bad_rows = config.bad_rows;
  ReadReport read_report;
  absl::StatusOr<std::vector<MoleculeRecord>> records = read_molecule_dataset(path, read_options, &read_report);
  if (!records.ok()) return records.status();
  if (records->empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": the ", split, " set has no molecules"));
  TokenizeOptions tokenize_options;
  tokenize_options.direction = config.direction;
  tokenize_options.max_rewrites = config.k;
  tokenize_options.caption_per_group = config.loss == ops::CaptionLoss::kMean;
  tokenize_options.max_source_length = config.max_source_length;
  tokenize_options.max_target_length = config.max_target_length;
  TokenizeReport report;
  absl::StatusOr<std::vector<ExampleGroup>> groups = tokenize_groups(*records, tokenizer, tokenize_options, &report);
  if (!groups.ok()) return groups.status();
  if (options.on_info) {
    options.on_info(absl::StrCat(split, ": ", records->size(), " molecules, ", report.examples, " examples in ",
                                 report.groups, " groups from ", path, "; ", read_report.rows_skipped,
                                 " bad rows skipped, ", read_report.backslashes_undone, " SMILES unescaped, ",
                                 report.sources_truncated, " sources and ", report.targets_truncated,
                                 " targets truncated"));
  }
  return groups;
}

absl::StatusOr<TrainSummary> train_impl(const TrainConfig& config, const TrainOptions& options) {
  set_cpu_threads(config.threads);
  absl::StatusOr<Tokenizer> tokenizer = Tokenizer::load(config.tokenizer_path);
  if (!tokenizer.ok()) return tokenizer.status();
  absl::StatusOr<std::vector<ExampleGroup>> train_groups =
      load_groups(config.train_path, config, *tokenizer, options, "train");
  if (!train_groups.ok()) return train_groups.status();
  absl::StatusOr<std::vector<ExampleGroup>> validation_groups =
      load_groups(config.validation_path, config, *tokenizer, options, "validation");
  if (!validation_groups.ok()) return validation_groups.status();

  absl::StatusOr<T5Model> model_or = [&]() -> absl::StatusOr<T5Model> {
    if (!config.init_checkpoint.empty()) return load_t5_checkpoint(config.init_checkpoint);
    absl::StatusOr<T5Config> model_config = config.model_config(tokenizer->vocab_size());
    if (!model_config.ok()) return model_config.status();
    return T5Model::create(*model_config, config.seed);
  }();
  if (!model_or.ok()) return model_or.status();
  absl::StatusOr<DeviceChoice> choice = activate_device(config.device);
  if (!choice.ok()) return choice.status();
  const Device device = choice->device;
  if (device.type != DeviceType::kCpu) {
    backend_for(device).set_gemm_precision(config.gemm_precision == "fp32" ? GemmPrecision::kFp32 : GemmPrecision::kBf16);
    *model_or = model_or->to_device(device);
  }
  T5Model& model = *model_or;
  if (model.config().vocab_size < tokenizer->vocab_size()) {
    return absl::InvalidArgumentError(absl::StrCat("the model's vocabulary (", model.config().vocab_size,
                                                   ") is smaller than the tokenizer's (", tokenizer->vocab_size(),
                                                   ", ", config.tokenizer_path, ")"));
  }
  model.set_requires_grad(true);
  AdamWOptions adamw_options{config.lr, config.beta1, config.beta2, config.eps, config.weight_decay};
  // On a CUDA device with bf16 GEMMs the update also writes bf16 weight copies that the GEMMs
  // read instead of casting the weights at every use (restore_state below refreshes them).
  adamw_options.bf16_weight_copies =
      device.type != DeviceType::kCpu && backend_for(device).gemm_precision() == GemmPrecision::kBf16;
  AdamW optimizer(model.parameter_list(), adamw_options);
  const LrSchedule schedule{config.schedule, config.lr, config.warmup_steps, config.max_steps};

  std::error_code error;
  fs::create_directories(config.output_dir, error);
  if (error) return absl::PermissionDeniedError(absl::StrCat("cannot create ", config.output_dir, ": ", error.message()));
  const std::string metrics_path = (fs::path(config.output_dir) / "metrics.jsonl").string();
  Position position;
  if (options.resume && fs::exists(fs::path(config.output_dir) / "checkpoint" / "state.json")) {
    absl::StatusOr<Position> restored = restore_checkpoint(config.output_dir, model, optimizer);
    if (!restored.ok()) return restored.status();
    position = *restored;
    if (options.on_info) options.on_info(absl::StrCat("resumed from ", config.output_dir, "/checkpoint at step ", position.step));
  } else {
    fs::remove(metrics_path, error);
  }
  if (absl::Status s = write_file_atomically((fs::path(config.output_dir) / "config.yaml").string(),
                                             train_config_to_yaml(config));
      !s.ok()) {
    return s;
  }
  if (options.on_info) {
    options.on_info(absl::StrCat("model: ", model.parameter_count(), " parameters (d_model ", model.config().d_model,
                                 ", ", model.config().num_layers, "+", model.config().num_decoder_layers,
                                 " layers, vocab ", model.config().vocab_size, "); loss ",
                                 ops::caption_loss_name(config.loss), " with k = ", config.k, "; ",
                                 direction_name(config.direction)));
    options.on_info(absl::StrCat("device: ", backend_for(model.device()).name(),
                                 model.device().type == DeviceType::kCpu ? "" : absl::StrCat(", ", config.gemm_precision, " GEMMs"),
                                 choice->note.empty() ? "" : absl::StrCat(" (", choice->note, ")")));
  }

  TrainSummary summary;
  summary.parameters = model.parameter_count();
  const auto start = Clock::now();
  auto interval_start = Clock::now();
  double interval_loss = 0.0, interval_tokens = 0.0, total_tokens = 0.0;
  int64_t interval_steps = 0;
  const int64_t first_step = position.step;
  BatchPlanOptions plan_options;
  plan_options.groups_per_batch = config.batch_size;
  plan_options.seed = config.seed;
  plan_options.epoch = position.epoch;
  std::vector<std::vector<size_t>> plan = make_batch_plan(*train_groups, plan_options);

  auto evaluate = [&](int64_t step) -> absl::Status {
    const double loss = validation_loss(model, *validation_groups, config);
    if (summary.first_validation_loss < 0.0) summary.first_validation_loss = loss;
    summary.last_validation_loss = loss;
    if (options.on_progress) {
      TrainProgress progress;
      progress.step = step;
      progress.max_steps = config.max_steps;
      progress.validation_loss = loss;
      progress.elapsed_seconds = seconds_since(start);
      options.on_progress(progress);
    }
    return append_metrics(metrics_path, {{"step", step}, {"validation_loss", loss}, {"elapsed_s", seconds_since(start)}});
  };
  if (position.step == 0 && config.eval_every > 0) {
    if (absl::Status s = evaluate(0); !s.ok()) return s;
  }

  while (position.step < config.max_steps) {
    const double lr = schedule.lr_at(position.step);
    optimizer.set_lr(lr);
    optimizer.zero_grad();
    double step_loss = 0.0;
    for (int64_t micro = 0; micro < config.grad_accumulation; ++micro) {
      if (position.batch >= static_cast<int64_t>(plan.size())) {
        ++position.epoch;
        position.batch = 0;
        plan_options.epoch = position.epoch;
        plan = make_batch_plan(*train_groups, plan_options);
      }
      const Batch batch = collate(*train_groups, plan[static_cast<size_t>(position.batch)]);
      ++position.batch;
      T5ForwardOptions forward;
      forward.training = true;
      forward.seed = config.seed;
      forward.step = static_cast<uint64_t>(position.step * config.grad_accumulation + micro);
      Tape tape;
      Tensor loss = batch_loss(model, batch, config.loss, forward);
      step_loss += loss.item() / static_cast<double>(config.grad_accumulation);
      if (config.grad_accumulation > 1) loss = ops::scale(loss, 1.0f / static_cast<float>(config.grad_accumulation));
      tape.backward(loss);
      const double tokens = static_cast<double>(batch.source_tokens + batch.target_tokens);
      interval_tokens += tokens;
      total_tokens += tokens;
    }
    if (!std::isfinite(step_loss)) {
      return absl::InternalError(absl::StrCat("loss became ", step_loss, " at step ", position.step,
                                              "; lower optimizer.lr or enable training.clip_grad_norm"));
    }
    if (config.clip_grad_norm > 0.0) clip_grad_norm(model.parameter_list(), config.clip_grad_norm);
    optimizer.step();
    ++position.step;
    interval_loss += step_loss;
    ++interval_steps;

    if (position.step % config.log_every == 0 || position.step == config.max_steps) {
      const double interval_seconds = seconds_since(interval_start);
      TrainProgress progress;
      progress.step = position.step;
      progress.max_steps = config.max_steps;
      progress.loss = interval_loss / static_cast<double>(interval_steps);
      progress.lr = lr;
      progress.tokens_per_second = interval_seconds > 0.0 ? interval_tokens / interval_seconds : 0.0;
      progress.elapsed_seconds = seconds_since(start);
      const double per_step = progress.elapsed_seconds / static_cast<double>(position.step - first_step);
      progress.eta_seconds = per_step * static_cast<double>(config.max_steps - position.step);
      if (options.on_progress) options.on_progress(progress);
      if (absl::Status s = append_metrics(metrics_path, {{"step", position.step},
                                                         {"loss", progress.loss},
                                                         {"lr", lr},
                                                         {"tokens_per_s", progress.tokens_per_second},
                                                         {"epoch", position.epoch},
                                                         {"elapsed_s", progress.elapsed_seconds}});
          !s.ok()) {
        return s;
      }
      interval_loss = interval_tokens = 0.0;
      interval_steps = 0;
      interval_start = Clock::now();
    }
    if (config.eval_every > 0 && (position.step % config.eval_every == 0 || position.step == config.max_steps)) {
      if (absl::Status s = evaluate(position.step); !s.ok()) return s;
    }
    if (config.checkpoint_every > 0 &&
        (position.step % config.checkpoint_every == 0 || position.step == config.max_steps)) {
      if (absl::Status s = save_checkpoint(config.output_dir, model, optimizer, position, config.seed, config.tokenizer_path);
          !s.ok()) {
        return s;
      }
    }
  }
  summary.steps = position.step;
  const double elapsed = seconds_since(start);
  summary.tokens_per_second = elapsed > 0.0 ? total_tokens / elapsed : 0.0;
  return summary;
}

}  // namespace

absl::StatusOr<TrainSummary> train(const TrainConfig& config, const TrainOptions& options) {
  // Engine invariants throw; the public boundary turns them into a Status (DESIGN.md 6).
  try {
    return train_impl(config, options);
  } catch (const std::exception& error) {
    return StatusFromException(error);
  }
}

}  // namespace la3
