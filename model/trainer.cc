#include "model/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include <csignal>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "data/batching.h"
#include "dist/gradient_buckets.h"
#include "dist/nccl_communicator.h"
#include "dist/sharded_adamw.h"
#include "dist/world.h"
#include "data/tokenizer.h"
#include "engine/autograd/tape.h"
#include "engine/backend.h"
#include "engine/device_selection.h"
#include "engine/io/file_io.h"
#include "engine/io/safetensors.h"
#include "engine/ops/elementwise.h"
#include "engine/optim/adamw.h"
#include "model/checkpoint_store.h"
#include "model/t5_checkpoint.h"
#include "model/train_step.h"

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

// Keeps the metrics rows of steps <= `step` (the checkpoint a resume continues from); the file
// is replaced atomically. A row that is not JSON is an error naming its line (nothing dropped).
absl::Status truncate_metrics(const std::string& path, int64_t step) {
  if (!fs::exists(path)) return absl::OkStatus();
  absl::StatusOr<std::string> text = read_file(path);
  if (!text.ok()) return text.status();
  std::string kept;
  int64_t line_number = 0, dropped = 0;
  std::istringstream lines(*text);
  for (std::string line; std::getline(lines, line);) {
    ++line_number;
    if (line.empty()) continue;
    const nlohmann::json record = nlohmann::json::parse(line, nullptr, false);
    if (record.is_discarded() || !record.contains("step") || !record["step"].is_number_integer()) {
      return absl::DataLossError(absl::StrCat(path, ":", line_number, ": not a metrics record; fix or move the file"));
    }
    if (record["step"].get<int64_t>() > step) {
      ++dropped;
      continue;
    }
    kept += line + "\n";
  }
  if (dropped == 0) return absl::OkStatus();
  return write_file_atomically(path, kept);
}

// The optimizer's whole state in parameter order (gathered from the shards under ZeRO-1).
struct OptimizerState {
  int64_t steps = 0;
  std::vector<Tensor> exp_avg, exp_avg_sq;
};

// Writes a checkpoint through the run's CheckpointStore (crash-safe at every point; see
// model/checkpoint_store.h) and keeps the newest `keep`.
absl::Status save_checkpoint(CheckpointStore& store, int keep, const T5Model& model, const OptimizerState& optimizer,
                             const Position& position, uint64_t seed, const std::string& tokenizer_path,
                             int64_t global_batch_groups, int world_size) {
  absl::StatusOr<std::string> staging_or = store.begin(position.step);
  if (!staging_or.ok()) return staging_or.status();
  const fs::path staging = *staging_or;
  std::error_code error;
  if (absl::Status s = save_t5_checkpoint(model, staging.string()); !s.ok()) return s;
  // The tokenizer travels with the weights (as spiece.model in HF T5 directories), so
  // `engine generate --checkpoint DIR` needs nothing else.
  fs::copy_file(tokenizer_path, staging / "spiece.model", fs::copy_options::overwrite_existing, error);
  if (error) return absl::DataLossError(absl::StrCat("cannot copy ", tokenizer_path, " into the checkpoint: ", error.message()));
  std::map<std::string, Tensor> moments;
  size_t i = 0;
  for (const auto& [name, parameter] : model.parameters()) {
    moments["exp_avg." + name] = optimizer.exp_avg[i];
    moments["exp_avg_sq." + name] = optimizer.exp_avg_sq[i];
    ++i;
  }
  if (absl::Status s = write_safetensors((staging / "optimizer.safetensors").string(), moments); !s.ok()) return s;
  const nlohmann::json state = {{"step", position.step},      {"epoch", position.epoch},
                                {"batch", position.batch},    {"seed", seed},
                                {"optimizer_steps", optimizer.steps},
                                {"global_batch_groups", global_batch_groups}, {"world_size", world_size}};
  if (absl::Status s = write_file_atomically((staging / "state.json").string(), state.dump(2) + "\n"); !s.ok()) return s;
  return store.commit(position.step, keep);
}

// Loads the weights into `model` and returns the position and the optimizer state.
absl::StatusOr<std::pair<Position, OptimizerState>> restore_checkpoint(const std::string& checkpoint_dir,
                                                                       T5Model& model, int64_t global_batch_groups) {
  const fs::path dir = checkpoint_dir;
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
  // The batch plan is cut in global batches: resuming continues the same sequence only with the
  // same global batch (any world size x batch_size x grad_accumulation giving it).
  if (state.contains("global_batch_groups") && state["global_batch_groups"].get<int64_t>() != global_batch_groups) {
    return absl::InvalidArgumentError(absl::StrCat(
        dir.string(), "/state.json: the run was trained with a global batch of ", state["global_batch_groups"].get<int64_t>(),
        " groups (", state.value("world_size", 1), " ranks), this launch has ", global_batch_groups,
        " (training.batch_size x ranks x training.grad_accumulation); keep the global batch to resume"));
  }
  OptimizerState optimizer{state["optimizer_steps"].get<int64_t>(), std::move(exp_avg), std::move(exp_avg_sq)};
  return std::make_pair(Position{state["step"].get<int64_t>(), state["epoch"].get<int64_t>(), state["batch"].get<int64_t>()},
                        std::move(optimizer));
}

T5ForwardOptions::Recompute recompute_mode(const TrainConfig& config) {
  if (config.recompute == "attention") return T5ForwardOptions::Recompute::kAttention;
  if (config.recompute == "block") return T5ForwardOptions::Recompute::kBlock;
  return T5ForwardOptions::Recompute::kNone;
}

DType activation_dtype(const TrainConfig& config) { return config.activations == "bf16" ? DType::kBF16 : DType::kF32; }

// The token-weighted validation loss. Batch b is evaluated by rank b % world size; the
// per-batch (loss * tokens, tokens) pairs are all-reduced (every other entry is an exact 0)
// and summed in batch order, so every world size gives the single process's value exactly.
absl::StatusOr<double> validation_loss(const T5Model& model, const std::vector<ExampleGroup>& groups,
                                       const TrainConfig& config, dist::Communicator& control) {
  NoGradGuard no_grad;
  BatchPlanOptions plan_options;
  plan_options.groups_per_batch = config.batch_size;
  plan_options.shuffle = false;
  const std::vector<std::vector<size_t>> plan = make_batch_plan(groups, plan_options);
  std::vector<double> sums(2 * plan.size(), 0.0);
  for (size_t b = static_cast<size_t>(control.rank()); b < plan.size(); b += static_cast<size_t>(control.size())) {
    const Batch batch = collate(groups, plan[b], model.config().pad_token_id, model.config().decoder_start_token_id);
    T5ForwardOptions forward;
    forward.activations = activation_dtype(config);
    const double loss = batch_loss(model, batch, config.loss, forward).item();
    sums[2 * b] = loss * static_cast<double>(batch.target_tokens);
    sums[2 * b + 1] = static_cast<double>(batch.target_tokens);
  }
  if (absl::Status s = control.all_reduce_sum(sums.data(), static_cast<int64_t>(sums.size())); !s.ok()) return s;
  double weighted = 0.0, tokens = 0.0;
  for (size_t b = 0; b < plan.size(); ++b) {
    weighted += sums[2 * b];
    tokens += sums[2 * b + 1];
  }
  return tokens > 0.0 ? weighted / tokens : 0.0;
}

// The global batch of a step is cut into world size x accumulation contiguous chunks of
// groups (chunk = rank * accumulation + micro-batch); a partial last batch of an epoch is cut
// as evenly as possible. Returns the chunk's groups and the global index of its first row
// (the dropout key offset: masks follow the example, not the rank that holds it).
struct Chunk {
  std::vector<size_t> members;
  int64_t first_row = 0;
};
Chunk chunk_of(const std::vector<ExampleGroup>& groups, const std::vector<size_t>& global_batch, int64_t chunks,
               int64_t index) {
  const size_t n = global_batch.size();
  const size_t begin = static_cast<size_t>(static_cast<int64_t>(n) * index / chunks);
  const size_t end = static_cast<size_t>(static_cast<int64_t>(n) * (index + 1) / chunks);
  Chunk chunk;
  for (size_t i = 0; i < begin; ++i) chunk.first_row += static_cast<int64_t>(groups[global_batch[i]].examples.size());
  chunk.members.assign(global_batch.begin() + static_cast<std::ptrdiff_t>(begin),
                       global_batch.begin() + static_cast<std::ptrdiff_t>(end));
  return chunk;
}

// Test-only fault switch (issue 11's fault test): LA3_TEST_FAULT="RANK:STEP:ACTION" makes rank
// RANK, at the start of optimizer step STEP, die by SIGKILL (kill), return an error (error)
// or stop answering (hang). Not a user feature; documented in docs/DISTRIBUTED.md.
absl::Status maybe_inject_fault(int rank, int64_t step) {
  const char* spec = std::getenv("LA3_TEST_FAULT");
  if (spec == nullptr) return absl::OkStatus();
  int fault_rank = -1;
  long long fault_step = -1;
  char action[16] = {0};
  if (std::sscanf(spec, "%d:%lld:%15s", &fault_rank, &fault_step, action) != 3) {
    return absl::InvalidArgumentError(absl::StrCat("LA3_TEST_FAULT='", spec, "': expected RANK:STEP:kill|error|hang"));
  }
  if (fault_rank != rank || fault_step != step) return absl::OkStatus();
  const std::string what = action;
  if (what == "kill") std::raise(SIGKILL);
  if (what == "hang") {
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  return absl::InternalError(absl::StrCat("injected fault (LA3_TEST_FAULT) at step ", step));
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

// FNV-1a over 64-bit values: a cheap fingerprint for "do all ranks agree?" checks.
class Fingerprint {
 public:
  void add(int64_t value) {
    for (int byte = 0; byte < 8; ++byte) {
      hash_ ^= static_cast<uint64_t>(value >> (8 * byte)) & 0xffu;
      hash_ *= 0x100000001b3ull;
    }
  }
  void add(const std::vector<int64_t>& values) {
    add(static_cast<int64_t>(values.size()));
    for (int64_t value : values) add(value);
  }
  int64_t value() const { return static_cast<int64_t>(hash_); }

 private:
  uint64_t hash_ = 0xcbf29ce484222325ull;
};

// The settings a resumed run must share with the run it continues, so that it continues the
// same numbers (the global batch is checked against state.json; steps, logging, devices and
// the distributed keys may change). Each difference reads "key: old -> new".
std::vector<std::string> breaking_changes(const TrainConfig& saved, const TrainConfig& now) {
  std::vector<std::string> changes;
  auto compare = [&](const char* key, const auto& before, const auto& after) {
    if (before != after) changes.push_back(absl::StrCat(key, ": ", before, " -> ", after));
  };
  compare("model.preset", saved.model_preset, now.model_preset);
  compare("model.init_checkpoint", saved.init_checkpoint, now.init_checkpoint);
  compare("model.dropout_rate", saved.dropout_rate, now.dropout_rate);
  compare("model.d_model", saved.d_model, now.d_model);
  compare("model.d_kv", saved.d_kv, now.d_kv);
  compare("model.d_ff", saved.d_ff, now.d_ff);
  compare("model.num_layers", saved.num_layers, now.num_layers);
  compare("model.num_decoder_layers", saved.num_decoder_layers, now.num_decoder_layers);
  compare("model.num_heads", saved.num_heads, now.num_heads);
  compare("model.feed_forward", saved.feed_forward, now.feed_forward);
  compare("data.train", saved.train_path, now.train_path);
  compare("data.validation", saved.validation_path, now.validation_path);
  compare("data.tokenizer", saved.tokenizer_path, now.tokenizer_path);
  compare("data.direction", std::string(direction_name(saved.direction)), std::string(direction_name(now.direction)));
  compare("data.max_source_length", saved.max_source_length, now.max_source_length);
  compare("data.max_target_length", saved.max_target_length, now.max_target_length);
  compare("loss.mode", std::string(ops::caption_loss_name(saved.loss)), std::string(ops::caption_loss_name(now.loss)));
  compare("loss.k", saved.k, now.k);
  compare("optimizer.lr", saved.lr, now.lr);
  compare("optimizer.beta1", saved.beta1, now.beta1);
  compare("optimizer.beta2", saved.beta2, now.beta2);
  compare("optimizer.eps", saved.eps, now.eps);
  compare("optimizer.weight_decay", saved.weight_decay, now.weight_decay);
  compare("schedule.kind", static_cast<int>(saved.schedule), static_cast<int>(now.schedule));
  compare("schedule.warmup_steps", saved.warmup_steps, now.warmup_steps);
  compare("training.clip_grad_norm", saved.clip_grad_norm, now.clip_grad_norm);
  compare("training.seed", saved.seed, now.seed);
  compare("training.gemm_precision", saved.gemm_precision, now.gemm_precision);
  compare("training.activations", saved.activations, now.activations);
  return changes;
}

// The optimizer of a run: AdamW over every parameter, or ZeRO-1's sharded AdamW
// (distributed.shard_optimizer with more than one rank).
class RunOptimizer final : public StepOptimizer {
 public:
  RunOptimizer(std::vector<Tensor> parameters, const AdamWOptions& options, dist::GradientBuckets* sharded_buckets,
               dist::Communicator& comm, dist::Communicator& host_comm)
      : parameters_(std::move(parameters)) {
    if (sharded_buckets != nullptr) {
      sharded_ = std::make_unique<dist::ShardedAdamW>(*sharded_buckets, comm, host_comm, options);
    } else {
      plain_ = std::make_unique<AdamW>(parameters_, options);
    }
  }
  void set_lr(double lr) { sharded_ ? sharded_->set_lr(lr) : plain_->set_lr(lr); }
  // Every rank holds the all-reduced gradients, so their norm in the step's readback is the
  // global one. Under ZeRO-1 each rank holds a shard, whose norms the sharded optimizer
  // all-reduces itself.
  bool norm_in_readback() const override { return !sharded_; }
  const std::vector<Tensor>& parameters() const override { return parameters_; }
  absl::Status clip_and_step(double max_norm, double norm) override {
    if (sharded_) {
      if (max_norm > 0.0) {
        absl::StatusOr<double> sharded_norm = sharded_->clip_grad_norm(max_norm);
        if (!sharded_norm.ok()) return sharded_norm.status();
      }
      return sharded_->step();
    }
    plain_->step(clip_coefficient(norm, max_norm));
    return absl::OkStatus();
  }
  // The whole state (a collective under ZeRO-1: every rank calls it).
  absl::StatusOr<OptimizerState> state() {
    OptimizerState state;
    if (sharded_) {
      state.steps = sharded_->steps_taken();
      if (absl::Status s = sharded_->gather_state(parameters_, &state.exp_avg, &state.exp_avg_sq); !s.ok()) return s;
      return state;
    }
    return OptimizerState{plain_->steps_taken(), plain_->exp_avg(), plain_->exp_avg_sq()};
  }
  absl::Status restore(const OptimizerState& state) {
    if (sharded_) return sharded_->restore_state(state.steps, parameters_, state.exp_avg, state.exp_avg_sq);
    return plain_->restore_state(state.steps, state.exp_avg, state.exp_avg_sq);
  }
  int64_t state_bytes() const {
    if (sharded_) return sharded_->state_bytes();
    int64_t elements = 0;
    for (const Tensor& p : parameters_) elements += p.numel();
    return 2 * elements * static_cast<int64_t>(sizeof(float));
  }

 private:
  std::vector<Tensor> parameters_;
  std::unique_ptr<AdamW> plain_;
  std::unique_ptr<dist::ShardedAdamW> sharded_;
};

absl::StatusOr<TrainSummary> train_impl(const TrainConfig& config, const TrainOptions& options) {
  set_cpu_threads(config.threads);
  // Data parallelism (docs/DISTRIBUTED.md): every rank runs this function on the same data
  // and plan; rank 0 alone reports, writes metrics and checkpoints.
  const dist::World& world = dist::world();
  const bool leader = world.rank == 0;
  auto info = [&](const std::string& line) {
    if (leader && options.on_info) options.on_info(line);
  };
  TrainOptions leader_options = options;  // load_groups reports through on_info
  if (!leader) leader_options.on_info = nullptr;
  std::unique_ptr<dist::Communicator> control = dist::make_world_communicator(config.dist_timeout_s);

  absl::StatusOr<Tokenizer> tokenizer = Tokenizer::load(config.tokenizer_path);
  if (!tokenizer.ok()) return tokenizer.status();
  absl::StatusOr<std::vector<ExampleGroup>> train_groups =
      load_groups(config.train_path, config, *tokenizer, leader_options, "train");
  if (!train_groups.ok()) return train_groups.status();
  // No evaluation, no validation set needed (training.eval_every 0).
  absl::StatusOr<std::vector<ExampleGroup>> validation_groups =
      config.eval_every > 0 ? load_groups(config.validation_path, config, *tokenizer, leader_options, "validation")
                            : absl::StatusOr<std::vector<ExampleGroup>>(std::vector<ExampleGroup>{});
  if (!validation_groups.ok()) return validation_groups.status();

  absl::StatusOr<T5Model> model_or = [&]() -> absl::StatusOr<T5Model> {
    if (!config.init_checkpoint.empty()) return load_t5_checkpoint(config.init_checkpoint);
    absl::StatusOr<T5Config> model_config = config.model_config(tokenizer->vocab_size());
    if (!model_config.ok()) return model_config.status();
    return T5Model::create(*model_config, config.seed);
  }();
  if (!model_or.ok()) return model_or.status();
  if (!config.init_checkpoint.empty()) {
    // A key the user set wins over the checkpoint's value; the log says which is in force.
    const float from_checkpoint = model_or->config().dropout_rate;
    if (config.dropout_rate_set) model_or->set_dropout_rate(config.dropout_rate);
    info(absl::StrCat("dropout rate ", model_or->config().dropout_rate,
                      config.dropout_rate_set ? absl::StrCat(" (model.dropout_rate; the checkpoint has ", from_checkpoint, ")")
                                              : std::string(" (from the checkpoint; set model.dropout_rate to change it)")));
  }
  absl::StatusOr<DeviceChoice> choice = activate_rank_device(config.device, world.size, world.local_rank);
  if (!choice.ok()) return choice.status();
  const Device device = choice->device;
  if (device.type == DeviceType::kCpu && config.activations == "bf16") {
    return absl::InvalidArgumentError(absl::StrCat("training.activations bf16 needs a cuda or cuda-emu device; training.device '",
                                                   config.device, "' chose the cpu, which computes in f32"));
  }
  if (config.activations == "bf16" && config.gemm_precision != "bf16") {
    return absl::InvalidArgumentError("training.activations bf16 multiplies bf16 operands: training.gemm_precision must be bf16");
  }
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
  // The gradient communicator: host buffers through MPI on the cpu, device buffers through
  // NCCL on cuda (the emulated NCCL over MPI on cuda-emu).
  std::unique_ptr<dist::Communicator> gradient_comm;
  std::string backend_name = "single";
  if (world.size == 1) {
    gradient_comm = dist::make_single_communicator();
  } else if (device.type == DeviceType::kCpu) {
    if (config.dist_backend == "nccl") {
      return absl::InvalidArgumentError("distributed.backend nccl needs a cuda device (NCCL moves device memory); "
                                        "the cpu uses mpi (or auto)");
    }
    gradient_comm = dist::make_world_communicator(config.dist_timeout_s);
    backend_name = "mpi";
  } else {
    if (config.dist_backend == "mpi") {
      return absl::InvalidArgumentError(absl::StrCat("distributed.backend mpi moves host memory; the ",
                                                     backend_for(device).name(), " device uses nccl (or auto)"));
    }
    gradient_comm = dist::make_nccl_communicator(backend_for(device), config.dist_timeout_s);
    backend_name = gradient_comm->name();
  }
  const bool shard_optimizer = config.dist_shard_optimizer && world.size > 1;

  model.set_requires_grad(true);
  AdamWOptions adamw_options{config.lr, config.beta1, config.beta2, config.eps, config.weight_decay};
  // On a CUDA device with bf16 GEMMs the update also writes bf16 weight copies that the GEMMs
  // read instead of casting the weights at every use (restore_state below refreshes them).
  adamw_options.bf16_weight_copies =
      device.type != DeviceType::kCpu && backend_for(device).gemm_precision() == GemmPrecision::kBf16;
  const LrSchedule schedule{config.schedule, config.lr, config.warmup_steps, config.max_steps};
  // The global batch: batch_size groups per rank and micro-batch.
  const int64_t chunks_per_step = static_cast<int64_t>(world.size) * config.grad_accumulation;
  const int64_t global_batch_groups = config.batch_size * chunks_per_step;

  std::error_code error;
  CheckpointStore checkpoints(config.output_dir);
  const std::optional<std::string> latest_checkpoint = checkpoints.latest();
  const bool has_metrics = fs::exists(fs::path(config.output_dir) / "metrics.jsonl");
  if (options.resume && options.overwrite) {
    return absl::InvalidArgumentError("--resume and --overwrite contradict each other: pick one");
  }
  if (!options.resume && (latest_checkpoint || has_metrics)) {
    if (!options.overwrite) {
      return absl::FailedPreconditionError(absl::StrCat(
          config.output_dir, " already holds a training run (", latest_checkpoint ? "a checkpoint" : "metrics.jsonl",
          "); pass --resume to continue it, --overwrite to delete it and start over, or another --output-dir"));
    }
    if (leader) {
      if (absl::Status s = checkpoints.remove_all(); !s.ok()) return s;
    }
  }
  if (leader) fs::create_directories(config.output_dir, error);
  if (error) return absl::PermissionDeniedError(absl::StrCat("cannot create ", config.output_dir, ": ", error.message()));
  const std::string metrics_path = (fs::path(config.output_dir) / "metrics.jsonl").string();
  Position position;
  std::optional<OptimizerState> restored_optimizer;
  if (options.resume && latest_checkpoint) {
    auto restored = restore_checkpoint(*latest_checkpoint, model, global_batch_groups);
    if (!restored.ok()) return restored.status();
    position = restored->first;
    restored_optimizer = std::move(restored->second);
    info(absl::StrCat("resumed from ", *latest_checkpoint, " at step ", position.step));
    // Rows a killed run wrote after its last checkpoint are replayed now: drop them.
    if (leader) {
      if (absl::Status s = truncate_metrics(metrics_path, position.step); !s.ok()) return s;
    }
  } else if (leader) {
    fs::remove(metrics_path, error);
  }
  TrainConfig effective = config;  // what is in force (the checkpoint's dropout unless the YAML set it)
  effective.dropout_rate = model.config().dropout_rate;
  if (restored_optimizer) {
    // A resume continues the same numbers only with the same settings (issue 12, item 3).
    const fs::path saved_path = fs::path(config.output_dir) / "config.yaml";
    absl::StatusOr<TrainConfig> saved = load_train_config(saved_path.string());
    if (saved.ok()) {
      TrainConfig now = effective;
      now.resolve_paths(fs::path(saved_path).parent_path().string());  // both absolute, as saved
      const std::vector<std::string> changes = breaking_changes(*saved, now);
      if (!changes.empty() && !options.allow_config_change) {
        return absl::FailedPreconditionError(absl::StrCat(
            "resuming ", config.output_dir, " with settings that differ from the run's (", saved_path.string(),
            "): ", absl::StrJoin(changes, "; "),
            ". Resume with the same settings, or pass --allow-config-change to continue anyway (recorded in "
            "config_changes.jsonl)"));
      }
      if (!changes.empty() && leader) {
        info(absl::StrCat("resuming with changed settings (--allow-config-change): ", absl::StrJoin(changes, "; ")));
        if (absl::Status s = append_metrics((fs::path(config.output_dir) / "config_changes.jsonl").string(),
                                            {{"step", position.step}, {"changes", changes}});
            !s.ok()) {
          return s;
        }
      }
    }
  }
  if (leader) {
    if (absl::Status s = write_file_atomically((fs::path(config.output_dir) / "config.yaml").string(),
                                               train_config_to_yaml(effective));
        !s.ok()) {
      return s;
    }
  }
  info(absl::StrCat("model: ", model.parameter_count(), " parameters (d_model ", model.config().d_model, ", ",
                    model.config().num_layers, "+", model.config().num_decoder_layers, " layers, vocab ",
                    model.config().vocab_size, "); loss ", ops::caption_loss_name(config.loss), " with k = ", config.k,
                    "; ", direction_name(config.direction)));
  info(absl::StrCat("device: ", backend_for(model.device()).name(),
                    model.device().type == DeviceType::kCpu
                        ? ""
                        : absl::StrCat(", ", config.gemm_precision, " GEMMs, ", config.activations, " activations"),
                    choice->note.empty() ? "" : absl::StrCat(" (", choice->note, ")")));

  // Gradient buckets in the order backward finishes the gradients, read off the tape of one
  // training forward. The order depends only on the model's structure, so every rank derives
  // the same layout; a checksum across ranks makes sure of it.
  std::unique_ptr<dist::GradientBuckets> buckets;
  {
    Tape probe;
    T5ForwardOptions forward;
    forward.training = true;
    forward.seed = config.seed;
    forward.activations = activation_dtype(config);
    forward.recompute =
        recompute_mode(config);
    const Batch batch =
        collate(*train_groups, {0}, model.config().pad_token_id, model.config().decoder_start_token_id);
    batch_loss(model, batch, config.loss, forward);
    buckets = std::make_unique<dist::GradientBuckets>(probe.leaves_in_ready_order(), model.parameter_list(),
                                                      static_cast<int64_t>(config.dist_bucket_mb * 1024.0 * 1024.0),
                                                      *gradient_comm, shard_optimizer ? world.size : 1);
    probe.clear();
  }
  RunOptimizer optimizer(model.parameter_list(), adamw_options, shard_optimizer ? buckets.get() : nullptr,
                         *gradient_comm, *control);
  if (restored_optimizer) {
    if (absl::Status s = optimizer.restore(*restored_optimizer); !s.ok()) return s;
    restored_optimizer.reset();
  }
  if (world.size > 1) {
    // Every rank must train the same thing: the same data (token ids), the same global-batch
    // settings, the same resume point and the same gradient bucket layout. Rank 0's
    // fingerprints are broadcast and each rank names what differs (data copied differently to
    // a node, a rank launched with other arguments).
    Fingerprint data, settings, layout;
    for (const std::vector<ExampleGroup>* set : {&*train_groups, &*validation_groups}) {
      data.add(static_cast<int64_t>(set->size()));
      for (const ExampleGroup& group : *set) {
        for (const Example& example : group.examples) {
          data.add(example.source);
          data.add(example.target);
        }
      }
    }
    settings.add({config.batch_size, config.grad_accumulation, static_cast<int64_t>(config.seed),
                  static_cast<int64_t>(config.loss), config.k, config.max_steps, position.step,
                  config.dist_shard_optimizer ? 1 : 0, static_cast<int64_t>(config.dist_bucket_mb * 1024 * 1024)});
    for (int b = 0; b < buckets->bucket_count(); ++b) layout.add(buckets->bucket_buffer(b).numel());
    int64_t ours[3] = {data.value(), settings.value(), layout.value()};
    int64_t leaders[3] = {ours[0], ours[1], ours[2]};
    if (absl::Status s = control->broadcast(leaders, 3, dist::ElementType::kI64, 0)->wait(); !s.ok()) return s;
    const char* what[3] = {"training or validation data (token ids)",
                           ("settings (batch_size, grad_accumulation, seed, loss, k, max_steps, distributed keys) or resume "
                            "step"),
                           "gradient bucket layout (model)"};
    for (int i = 0; i < 3; ++i) {
      if (ours[i] != leaders[i]) {
        return absl::FailedPreconditionError(
            absl::StrCat(world.label(), ": its ", what[i], " differ from rank 0's; every rank must train the same run"));
      }
    }
    info(absl::StrCat("distributed: ", world.size, " ranks (", world.launcher, "), ", backend_name, " gradients in ",
                      buckets->bucket_count(), " buckets of <= ", config.dist_bucket_mb, " MiB; global batch ",
                      global_batch_groups, " groups = ", config.batch_size, " per rank x ", world.size, " ranks x ",
                      config.grad_accumulation, " micro-batches; optimizer state ", optimizer.state_bytes(),
                      " bytes per rank", shard_optimizer ? " (ZeRO-1: sharded)" : ""));
  }

  TrainSummary summary;
  summary.parameters = model.parameter_count();
  const auto start = Clock::now();
  auto interval_start = Clock::now();
  double interval_loss = 0.0, interval_tokens = 0.0, total_tokens = 0.0, interval_wait = 0.0;
  int64_t interval_steps = 0;
  const int64_t first_step = position.step;
  BatchPlanOptions plan_options;
  plan_options.groups_per_batch = global_batch_groups;
  plan_options.seed = config.seed;
  plan_options.epoch = position.epoch;
  std::vector<std::vector<size_t>> plan = make_batch_plan(*train_groups, plan_options);
  Allocator& device_memory = allocator_for(device);
  device_memory.reset_peak_bytes();

  auto evaluate = [&](int64_t step) -> absl::Status {
    absl::StatusOr<double> loss = validation_loss(model, *validation_groups, config, *control);
    if (!loss.ok()) return loss.status();
    if (summary.first_validation_loss < 0.0) summary.first_validation_loss = *loss;
    summary.last_validation_loss = *loss;
    if (!leader) return absl::OkStatus();
    if (options.on_progress) {
      TrainProgress progress;
      progress.step = step;
      progress.max_steps = config.max_steps;
      progress.validation_loss = *loss;
      progress.elapsed_seconds = seconds_since(start);
      options.on_progress(progress);
    }
    return append_metrics(metrics_path, {{"step", step}, {"validation_loss", *loss}, {"elapsed_s", seconds_since(start)}});
  };
  if (position.step == 0 && config.eval_every > 0) {
    if (absl::Status s = evaluate(0); !s.ok()) return s;
  }

  while (position.step < config.max_steps) {
    if (absl::Status s = maybe_inject_fault(world.rank, position.step); !s.ok()) return s;
    const double lr = schedule.lr_at(position.step);
    optimizer.set_lr(lr);
    buckets->zero();
    if (position.batch >= static_cast<int64_t>(plan.size())) {
      ++position.epoch;
      position.batch = 0;
      plan_options.epoch = position.epoch;
      plan = make_batch_plan(*train_groups, plan_options);
    }
    const std::vector<size_t>& global_batch = plan[static_cast<size_t>(position.batch)];
    ++position.batch;
    // This rank's micro-batches, and the normaliser of the whole global batch.
    std::vector<Batch> micro_batches;
    std::vector<int64_t> first_rows;
    double normaliser = 0.0;
    for (int64_t micro = 0; micro < config.grad_accumulation; ++micro) {
      Chunk chunk = chunk_of(*train_groups, global_batch, chunks_per_step, world.rank * config.grad_accumulation + micro);
      if (chunk.members.empty()) continue;
      micro_batches.push_back(
          collate(*train_groups, chunk.members, model.config().pad_token_id, model.config().decoder_start_token_id));
      first_rows.push_back(chunk.first_row);
      normaliser += ops::caption_loss_normaliser(micro_batches.back().labels, micro_batches.back().group, config.loss);
    }
    if (absl::Status s = control->all_reduce_sum(&normaliser, 1); !s.ok()) return s;
    std::vector<MicroBatch> micro;
    for (size_t i = 0; i < micro_batches.size(); ++i) micro.push_back({&micro_batches[i], first_rows[i]});
    TrainStepOptions step_options;
    step_options.loss = config.loss;
    step_options.seed = config.seed;
    step_options.step = static_cast<uint64_t>(position.step);
    step_options.normaliser = normaliser;
    step_options.clip_grad_norm = config.clip_grad_norm;
    step_options.recompute =
        recompute_mode(config);
    step_options.activations = activation_dtype(config);
    // The last micro-batch's backward starts each bucket's all-reduce as soon as it is final.
    if (config.dist_overlap) step_options.last_backward_leaf_ready = buckets->ready_hook();
    step_options.gradients_final = [&]() -> absl::Status {
      if (absl::Status s = buckets->finish(); !s.ok()) return s;
      interval_wait += buckets->last_wait_seconds();
      return absl::OkStatus();
    };
    double step_loss = 0.0;
    step_options.before_update = [&](const TrainStepResult& result) -> absl::Status {
      double step_sums[2] = {result.loss, static_cast<double>(result.tokens)};  // this rank's share
      if (absl::Status s = control->all_reduce_sum(step_sums, 2); !s.ok()) return s;
      step_loss = step_sums[0];
      interval_tokens += step_sums[1];
      total_tokens += step_sums[1];
      if (!std::isfinite(step_loss)) {
        return absl::InternalError(absl::StrCat("loss became ", step_loss, " at step ", position.step,
                                                "; lower optimizer.lr or enable training.clip_grad_norm"));
      }
      return absl::OkStatus();
    };
    if (absl::StatusOr<TrainStepResult> done = train_step(model, micro, optimizer, step_options); !done.ok()) {
      return done.status();
    }
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
      progress.peak_device_bytes = static_cast<int64_t>(device_memory.peak_bytes());
      if (leader && options.on_progress) options.on_progress(progress);
      nlohmann::json record = {{"step", position.step},
                               {"loss", progress.loss},
                               {"lr", lr},
                               {"tokens_per_s", progress.tokens_per_second},
                               {"epoch", position.epoch},
                               {"elapsed_s", progress.elapsed_seconds},
                               {"peak_device_bytes", progress.peak_device_bytes}};
      if (world.size > 1) record["allreduce_wait_s"] = interval_wait / static_cast<double>(interval_steps);
      if (leader) {
        if (absl::Status s = append_metrics(metrics_path, record); !s.ok()) return s;
      }
      interval_loss = interval_tokens = interval_wait = 0.0;
      interval_steps = 0;
      interval_start = Clock::now();
      device_memory.reset_peak_bytes();
    }
    if (config.eval_every > 0 && (position.step % config.eval_every == 0 || position.step == config.max_steps)) {
      if (absl::Status s = evaluate(position.step); !s.ok()) return s;
    }
    if (config.checkpoint_every > 0 &&
        (position.step % config.checkpoint_every == 0 || position.step == config.max_steps)) {
      absl::StatusOr<OptimizerState> state = optimizer.state();  // gathered on every rank under ZeRO-1
      if (!state.ok()) return state.status();
      if (leader) {
        if (absl::Status s = save_checkpoint(checkpoints, config.keep_checkpoints, model, *state, position, config.seed,
                                             config.tokenizer_path, global_batch_groups, world.size);
            !s.ok()) {
          return s;
        }
      }
      // A checkpoint is a sync point: no rank runs ahead (and can fail) while rank 0 writes it,
      // so a failure later leaves this checkpoint whole.
      if (absl::Status s = control->barrier(); !s.ok()) return s;
    }
  }
  summary.steps = position.step;
  const double elapsed = seconds_since(start);
  summary.tokens_per_second = elapsed > 0.0 ? total_tokens / elapsed : 0.0;
  return summary;
}

}  // namespace

absl::StatusOr<TrainSummary> train(const TrainConfig& config, const TrainOptions& options) {
  // Engine invariants throw; the public boundary turns them into a Status
  // (docs/ARCHITECTURE.md, Errors).
  try {
    return train_impl(config, options);
  } catch (const std::exception& error) {
    return StatusFromException(error);
  }
}

}  // namespace la3
