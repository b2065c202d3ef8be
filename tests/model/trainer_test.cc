// Training: configuration errors, overfitting one batch, checkpoints that reload to the
// same logits, and a resumed run that is bit-identical to an uninterrupted one.
#include "model/trainer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "data/molecule_dataset.h"
#include "data/tokenizer.h"
#include "engine/allocator.h"
#include "engine/autograd/tape.h"
#include "engine/device_selection.h"
#include "engine/io/file_io.h"
#include "engine/io/safetensors.h"
#include "engine/ops/sequence_loss.h"
#include "engine/optim/adamw.h"
#include "kernels/simt/runtime.h"
#include "model/scoring.h"
#include "model/t5_checkpoint.h"
#include "model/train_step.h"

namespace la3 {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

const std::string kSample = std::string(LA3_SOURCE_DIR) + "/data/sample";

TrainConfig small_run(const std::string& name) {
  TrainConfig config;
  config.train_path = kSample + "/train.jsonl";
  config.validation_path = kSample + "/validation.jsonl";
  config.tokenizer_path = kSample + "/spiece.model";
  config.batch_size = 4;
  config.max_steps = 6;
  config.eval_every = 3;
  config.checkpoint_every = 3;
  config.log_every = 1;
  config.seed = 5;
  config.output_dir = ::testing::TempDir() + "/la3_train_" + name;
  fs::remove_all(config.output_dir);
  return config;
}

TEST(TrainConfig, DistributedSectionHasDefaultsAndRejectsBadValues) {
  const TrainConfig defaults = *parse_train_config("", "empty.yaml");
  EXPECT_EQ(defaults.dist_backend, "auto");
  EXPECT_DOUBLE_EQ(defaults.dist_bucket_mb, 25.0);
  EXPECT_FALSE(defaults.dist_shard_optimizer);
  EXPECT_DOUBLE_EQ(defaults.dist_timeout_s, 300.0);
  EXPECT_TRUE(defaults.dist_overlap);
  const TrainConfig c = *parse_train_config(
      "distributed:\n  backend: mpi\n  bucket_mb: 4\n  shard_optimizer: true\n  timeout_s: 30\n  overlap: false\n",
      "run.yaml");
  EXPECT_EQ(c.dist_backend, "mpi");
  EXPECT_DOUBLE_EQ(c.dist_bucket_mb, 4.0);
  EXPECT_TRUE(c.dist_shard_optimizer);
  EXPECT_DOUBLE_EQ(c.dist_timeout_s, 30.0);
  EXPECT_FALSE(c.dist_overlap);
  // The effective config written into the run directory reads back the same.
  const TrainConfig again = *parse_train_config(train_config_to_yaml(c), "config.yaml");
  EXPECT_EQ(again.dist_backend, "mpi");
  EXPECT_TRUE(again.dist_shard_optimizer);
  EXPECT_FALSE(again.dist_overlap);
  auto error = [](const std::string& yaml) {
    return std::string(parse_train_config(yaml, "run.yaml").status().message());
  };
  EXPECT_THAT(error("distributed:\n  backend: gloo\n"), HasSubstr("distributed.backend 'gloo': expected auto, nccl or mpi"));
  EXPECT_THAT(error("distributed:\n  bucket_mb: 0\n"), HasSubstr("distributed.bucket_mb must be in (0, 4096]"));
  EXPECT_THAT(error("distributed:\n  timeout_s: -1\n"), HasSubstr("distributed.timeout_s must be positive"));
  EXPECT_THAT(error("distributed:\n  zero: 1\n"), HasSubstr("run.yaml:2: unknown key 'distributed.zero'"));
  EXPECT_THAT(error("distributed:\n  shard_optimizer: maybe\n"), HasSubstr("distributed.shard_optimizer has an invalid value"));
}

TEST(TrainConfig, TheBundledConfigsParse) {
  for (const char* name : {"demo.yaml", "molt5_small.yaml"}) {
    const absl::StatusOr<TrainConfig> config = load_train_config(std::string(LA3_SOURCE_DIR) + "/configs/" + name);
    EXPECT_TRUE(config.ok()) << name << ": " << config.status();
  }
}

// A list or mapping as a key used to throw out of the parser (yaml-cpp's bad conversion:
// `engine train` died in std::terminate); found by fuzz/train_config_yaml_fuzz.cc.
TEST(TrainConfig, KeysThatAreNotNamesAreErrorsNamingTheLine) {
  for (const char* yaml : {"[a, b]: 1\n", "training:\n  max_steps: 2\n  ? {lr: 1}\n  : 3\n", "? - x\n: 1\n"}) {
    absl::StatusOr<TrainConfig> config = parse_train_config(yaml, "k.yaml");
    ASSERT_FALSE(config.ok()) << yaml;
    EXPECT_THAT(std::string(config.status().message()), ::testing::HasSubstr("must be a plain name, not a list or mapping"));
  }
  EXPECT_EQ(parse_train_config("training:\n  ? [x]\n  : 1\n", "k.yaml").status().message(),
            "k.yaml:2: a key of training must be a plain name, not a list or mapping");
}

TEST(TrainConfig, DefaultsUnknownKeysAndBadValues) {
  const TrainConfig defaults = *parse_train_config("", "empty.yaml");
  EXPECT_EQ(defaults.model_preset, "tiny");
  EXPECT_EQ(defaults.loss, ops::CaptionLoss::kMean);
  EXPECT_EQ(defaults.k, 2);

  const TrainConfig c = *parse_train_config("loss:\n  mode: sequence_mixture\n  k: 1\noptimizer:\n  lr: 3e-4\n"
                                            "data:\n  direction: smiles2caption\n", "run.yaml");
  EXPECT_EQ(c.loss, ops::CaptionLoss::kSequenceMixture);
  EXPECT_EQ(c.k, 1);
  EXPECT_DOUBLE_EQ(c.lr, 3e-4);
  EXPECT_EQ(c.direction, Direction::kSmilesToCaption);

  auto error = [](const std::string& yaml) {
    return std::string(parse_train_config(yaml, "run.yaml").status().message());
  };
  EXPECT_THAT(error("optimizer:\n  lr: 0.1\n  momentum: 0.9\n"), HasSubstr("run.yaml:3: unknown key 'optimizer.momentum'"));
  EXPECT_THAT(error("trainin:\n  max_steps: 3\n"), HasSubstr("unknown key 'trainin'"));
  EXPECT_THAT(error("training:\n  max_steps: many\n"), HasSubstr("run.yaml:2: training.max_steps has an invalid value 'many'"));
  EXPECT_THAT(error("loss:\n  mode: average\n"), HasSubstr("loss.mode: unknown caption loss 'average'"));
  EXPECT_THAT(error("training:\n  device: tpu\n"), HasSubstr("training.device 'tpu'"));
  EXPECT_THAT(error("training:\n  device: cuda:x\n"), HasSubstr("expected auto, cpu, cuda, cuda:N or cuda-emu"));
  EXPECT_THAT(error("training:\n  gemm_precision: fp16\n"), HasSubstr("training.gemm_precision 'fp16'"));
  EXPECT_TRUE(parse_train_config("training:\n  device: cuda\n", "run.yaml").ok());
  // Range and finiteness errors name file:line of the offending key, like the others.
  EXPECT_THAT(error("optimizer:\n  lr: -1\n"), HasSubstr("run.yaml:2: optimizer.lr must be positive"));
  EXPECT_THAT(error("optimizer:\n  lr: .inf\n"),
              HasSubstr("run.yaml:2: optimizer.lr must be a finite number (.inf and .nan are not), got inf"));
  EXPECT_THAT(error("optimizer:\n  beta1: 0.9\n  eps: .nan\n"), HasSubstr("run.yaml:3: optimizer.eps must be a finite number"));
  EXPECT_THAT(error("training:\n  max_steps: 5\ndistributed:\n  timeout_s: .inf\n"),
              HasSubstr("run.yaml:4: distributed.timeout_s must be a finite number"));
  EXPECT_THAT(error("training:\n  batch_size: 4\n  grad_accumulation: 0\n"),
              HasSubstr("run.yaml:3: training.batch_size and training.grad_accumulation must be >= 1"));
  EXPECT_THAT(error("model:\n  dropout_rate: 1.5\n"), HasSubstr("run.yaml:2: model.dropout_rate must be in [0, 1)"));
  EXPECT_THAT(error("training:\n  batch_size: 2\n  recompute: everything\n"),
              HasSubstr("run.yaml:3: training.recompute 'everything': expected none, attention or block"));
  EXPECT_EQ(parse_train_config("training:\n  recompute: block\n", "run.yaml")->recompute, "block");
  EXPECT_EQ(parse_train_config("training:\n  recompute: attention\n", "run.yaml")->recompute, "attention");
  // Activation types: f32 (default) or bf16, which only the CUDA devices compute with and which
  // multiplies bf16 operands.
  EXPECT_EQ(defaults.activations, "f32");
  EXPECT_EQ(parse_train_config("training:\n  device: cuda-emu\n  activations: bf16\n", "run.yaml")->activations, "bf16");
  EXPECT_THAT(error("training:\n  activations: fp16\n"),
              HasSubstr("run.yaml:2: training.activations 'fp16': expected f32 or bf16"));
  EXPECT_THAT(error("training:\n  device: cpu\n  activations: bf16\n"),
              HasSubstr("run.yaml:3: training.activations bf16 needs a cuda or cuda-emu device"));
  EXPECT_THAT(error("training:\n  device: cuda-emu\n  gemm_precision: fp32\n  activations: bf16\n"),
              HasSubstr("training.gemm_precision must be bf16"));
  EXPECT_THAT(train_config_to_yaml(*parse_train_config("training:\n  recompute: attention\n", "run.yaml")),
              HasSubstr("recompute: attention"));
  EXPECT_THAT(error("data:\n  bad_rows: maybe\n"), HasSubstr("run.yaml:2: data.bad_rows must be fail or skip"));
  EXPECT_THAT(error("loss:\n  k: 1\n  mode: average\n"), HasSubstr("run.yaml:3: loss.mode: unknown caption loss"));
  // A schedule is named for what it does: constant has no warmup ramp.
  EXPECT_THAT(error("schedule:\n  kind: constant\n  warmup_steps: 20\n"),
              HasSubstr("run.yaml:3: schedule.kind constant with schedule.warmup_steps 20 would ramp the learning rate "
                        "up first: write kind: constant_with_warmup"));
  const TrainConfig ramp = *parse_train_config("schedule:\n  kind: constant_with_warmup\n  warmup_steps: 20\n", "run.yaml");
  EXPECT_EQ(ramp.schedule, ScheduleKind::kConstantWithWarmup);
  EXPECT_THAT(train_config_to_yaml(ramp), HasSubstr("kind: constant_with_warmup"));
  EXPECT_THAT(error("schedule:\n  kind: cosine\n"),
              HasSubstr("run.yaml:2: schedule.kind: unknown schedule 'cosine': expected constant, constant_with_warmup"));
  EXPECT_THAT(error("model: [1, 2]\n"), HasSubstr("model must be a mapping"));
  EXPECT_THAT(error("model:\n  preset: [oops\n"), HasSubstr("YAML syntax error"));
  EXPECT_EQ(load_train_config("/nonexistent/run.yaml").status().code(), absl::StatusCode::kNotFound);

  // Model sizes from YAML override the preset; impossible sizes are rejected up front.
  const TrainConfig sized = *parse_train_config("model:\n  preset: molt5-small\n  num_layers: 3\n  d_kv: 7\n"
                                                "  feed_forward: relu\n", "run.yaml");
  const T5Config model = *sized.model_config(100);
  EXPECT_EQ(model.num_layers, 3);
  EXPECT_EQ(model.num_decoder_layers, 8);
  EXPECT_EQ(model.d_kv, 7);
  EXPECT_EQ(model.vocab_size, 32128);
  EXPECT_EQ(model.feed_forward, FeedForwardKind::kRelu);
  EXPECT_THAT(error("model:\n  relative_attention_num_buckets: 7\n"), HasSubstr("relative_attention_num_buckets"));
  EXPECT_THAT(error("model:\n  feed_forward: swiglu\n"), HasSubstr("model.feed_forward must be relu or gated-gelu"));
}

TEST(Training, OverfitsOneBatchToNearZeroLoss) {
  T5Config config = *T5Config::preset("tiny");
  config.vocab_size = 40;
  config.dropout_rate = 0.0f;
  T5Model model = *T5Model::create(config, 3);
  model.set_requires_grad(true);
  AdamW optimizer(model.parameter_list(), AdamWOptions{3e-3, 0.9, 0.999, 1e-8, 0.0});
  const Tensor ids = Tensor::from_vector<int64_t>({2, 5}, {5, 6, 7, 8, 1, 9, 10, 11, 1, 0});
  const Tensor mask = Tensor::from_vector<int64_t>({2, 5}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 0});
  const Tensor labels = Tensor::from_vector<int64_t>({2, 4}, {12, 13, 14, 1, 15, 16, 1, -100});
  double first = 0.0, last = 0.0;
  for (int step = 0; step < 150; ++step) {
    optimizer.zero_grad();
    Tape tape;
    const Tensor loss = model.loss(ids, mask, labels, {});
    if (step == 0) first = loss.item();
    last = loss.item();
    tape.backward(loss);
    optimizer.step();
  }
  EXPECT_GT(first, 3.0);
  EXPECT_LT(last, 0.05);
}

std::string file_bytes(const std::string& path) { return *read_file(path); }

TEST(Training, ResumedRunIsBitIdenticalAndCheckpointReloads) {
  // Uninterrupted: 6 steps. Interrupted: 3 steps, then --resume to 6. Dropout is on, so the
  // Philox streams (seed, step) and the batch plan position must both be restored exactly.
  TrainConfig full = small_run("full");
  absl::StatusOr<TrainSummary> a = train(full, {});
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->steps, 6);
  EXPECT_GT(a->first_validation_loss, a->last_validation_loss);

  TrainConfig part = small_run("resumed");
  part.max_steps = 3;
  ASSERT_TRUE(train(part, {}).ok());
  part.max_steps = 6;
  TrainOptions resume;
  resume.resume = true;
  std::string info;
  resume.on_info = [&](const std::string& line) { info += line + "\n"; };
  absl::StatusOr<TrainSummary> b = train(part, resume);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_THAT(info, HasSubstr("resumed from"));
  EXPECT_EQ(file_bytes(full.output_dir + "/checkpoint/model.safetensors"),
            file_bytes(part.output_dir + "/checkpoint/model.safetensors"));
  EXPECT_EQ(file_bytes(full.output_dir + "/checkpoint/optimizer.safetensors"),
            file_bytes(part.output_dir + "/checkpoint/optimizer.safetensors"));

  // The checkpoint is a plain HF directory: it reloads and gives the same logits twice.
  absl::StatusOr<T5Model> reloaded = load_t5_checkpoint(full.output_dir + "/checkpoint");
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  const Tensor ids = Tensor::from_vector<int64_t>({1, 3}, {20, 21, 1});
  const Tensor labels = Tensor::from_vector<int64_t>({1, 2}, {22, 1});
  NoGradGuard no_grad;
  absl::StatusOr<T5Model> again = load_t5_checkpoint(part.output_dir + "/checkpoint");
  EXPECT_EQ(reloaded->logits(ids, Tensor(), labels, {}).to_vector<float>(),
            again->logits(ids, Tensor(), labels, {}).to_vector<float>());

  // metrics.jsonl has one line per logged step and evaluation.
  std::ifstream metrics(full.output_dir + "/metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(metrics, line);) ++lines;
  EXPECT_EQ(lines, 6 + 3);  // steps 1..6, evaluations at 0, 3, 6
  fs::remove_all(full.output_dir);
  fs::remove_all(part.output_dir);
}

// A run directory that holds an earlier run is refused unless --resume or --overwrite says
// what to do with it; --overwrite starts from scratch; a resume drops the metrics rows a killed
// run wrote after its last checkpoint, so every step appears once.
TEST(Training, ExistingRunsAreNeverOverwrittenSilentlyAndResumeDropsReplayedMetrics) {
  TrainConfig config = small_run("existing");
  config.max_steps = 3;
  config.eval_every = 0;
  ASSERT_TRUE(train(config, {}).ok());
  const std::string checkpoint_bytes = file_bytes(config.output_dir + "/checkpoint/model.safetensors");
  const std::string metrics_bytes = file_bytes(config.output_dir + "/metrics.jsonl");

  absl::StatusOr<TrainSummary> refused = train(config, {});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("already holds a training run (a checkpoint)"));
  EXPECT_THAT(refused.status().message(), HasSubstr("--resume"));
  EXPECT_THAT(refused.status().message(), HasSubstr("--overwrite"));
  EXPECT_EQ(file_bytes(config.output_dir + "/checkpoint/model.safetensors"), checkpoint_bytes);  // untouched
  EXPECT_EQ(file_bytes(config.output_dir + "/metrics.jsonl"), metrics_bytes);

  TrainOptions both;
  both.resume = both.overwrite = true;
  EXPECT_THAT(std::string(train(config, both).status().message()), HasSubstr("contradict"));

  // A killed run's rows after the checkpoint (steps 4 and 5), then resume to 6.
  {
    std::ofstream append(config.output_dir + "/metrics.jsonl", std::ios::app);
    append << "{\"step\": 4, \"loss\": 9.0}\n{\"step\": 5, \"loss\": 9.0}\n";
  }
  config.max_steps = 6;
  TrainOptions resume;
  resume.resume = true;
  ASSERT_TRUE(train(config, resume).ok());
  std::ifstream metrics(config.output_dir + "/metrics.jsonl");
  std::vector<int64_t> steps;
  for (std::string line; std::getline(metrics, line);) {
    const nlohmann::json record = nlohmann::json::parse(line);
    steps.push_back(record["step"].get<int64_t>());
    EXPECT_NE(record.value("loss", 0.0), 9.0) << "a replayed row survived: " << line;
  }
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));

  // A metrics file that is not metrics: the resume stops and names the line, losing nothing.
  {
    std::ofstream append(config.output_dir + "/metrics.jsonl", std::ios::app);
    append << "garbage\n";
  }
  config.max_steps = 7;
  absl::StatusOr<TrainSummary> bad = train(config, resume);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("metrics.jsonl:7: not a metrics record"));

  // --overwrite starts over: a fresh run of 2 steps, the old checkpoint and metrics gone.
  config.max_steps = 2;
  TrainOptions overwrite;
  overwrite.overwrite = true;
  absl::StatusOr<TrainSummary> fresh = train(config, overwrite);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(fresh->steps, 2);
  std::ifstream again(config.output_dir + "/metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(again, line);) ++lines;
  EXPECT_EQ(lines, 2);
  fs::remove_all(config.output_dir);
}

// model.dropout_rate set in the YAML wins over init_checkpoint's value; unset, the checkpoint's
// is used. The log and the saved config.yaml say which value is in force.
TEST(Training, DropoutRateFromTheYamlWinsOverTheInitCheckpoint) {
  TrainConfig base = small_run("dropout_base");
  base.max_steps = 1;
  base.eval_every = 0;
  base.dropout_rate = 0.25f;  // saved into the checkpoint's config.json
  ASSERT_TRUE(train(base, {}).ok());
  for (const bool set_in_yaml : {true, false}) {
    const std::string yaml = set_in_yaml ? "model:\n  dropout_rate: 0.0\n" : "model:\n  preset: tiny\n";
    absl::StatusOr<TrainConfig> config = parse_train_config(yaml, "run.yaml");
    ASSERT_TRUE(config.ok());
    EXPECT_EQ(config->dropout_rate_set, set_in_yaml);
    TrainConfig run = small_run(set_in_yaml ? "dropout_set" : "dropout_unset");
    run.init_checkpoint = base.output_dir + "/checkpoint";
    run.dropout_rate = config->dropout_rate;
    run.dropout_rate_set = config->dropout_rate_set;
    run.max_steps = 1;
    run.eval_every = 0;
    TrainOptions options;
    std::string info;
    options.on_info = [&](const std::string& line) { info += line + "\n"; };
    ASSERT_TRUE(train(run, options).ok());
    const TrainConfig saved = *load_train_config(run.output_dir + "/config.yaml");
    if (set_in_yaml) {
      EXPECT_THAT(info, HasSubstr("dropout rate 0 (model.dropout_rate; the checkpoint has 0.25)"));
      EXPECT_FLOAT_EQ(saved.dropout_rate, 0.0f);
    } else {
      EXPECT_THAT(info, HasSubstr("dropout rate 0.25 (from the checkpoint"));
      EXPECT_FLOAT_EQ(saved.dropout_rate, 0.25f);
    }
    fs::remove_all(run.output_dir);
  }
  fs::remove_all(base.output_dir);
}

// Resuming with settings that change the run's numbers is refused, listing each difference;
// --allow-config-change continues and records the change. Steps and logging may change.
TEST(Training, ResumeRefusesChangedSettingsUnlessAllowedAndRecorded) {
  TrainConfig config = small_run("config_change");
  config.max_steps = 2;
  config.eval_every = 0;
  ASSERT_TRUE(train(config, {}).ok());
  TrainOptions resume;
  resume.resume = true;
  TrainConfig changed = config;
  changed.max_steps = 3;
  changed.log_every = 2;  // allowed
  changed.lr = 2e-3;
  changed.k = 1;
  absl::StatusOr<TrainSummary> refused = train(changed, resume);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("optimizer.lr: 0.001 -> 0.002"));
  EXPECT_THAT(refused.status().message(), HasSubstr("loss.k: 2 -> 1"));
  EXPECT_THAT(refused.status().message(), HasSubstr("--allow-config-change"));
  EXPECT_THAT(refused.status().message(), ::testing::Not(HasSubstr("log_every")));
  EXPECT_FALSE(fs::exists(config.output_dir + "/config_changes.jsonl"));

  TrainConfig longer = config;  // only more steps: fine
  longer.max_steps = 3;
  ASSERT_TRUE(train(longer, resume).ok());

  changed.max_steps = 4;
  resume.allow_config_change = true;
  std::string info;
  resume.on_info = [&](const std::string& line) { info += line + "\n"; };
  ASSERT_TRUE(train(changed, resume).ok());
  EXPECT_THAT(info, HasSubstr("resuming with changed settings (--allow-config-change): loss.k: 2 -> 1"));
  std::ifstream record(config.output_dir + "/config_changes.jsonl");
  std::string line;
  ASSERT_TRUE(std::getline(record, line));
  const nlohmann::json parsed = nlohmann::json::parse(line);
  EXPECT_EQ(parsed["step"], 3);
  EXPECT_EQ(parsed["changes"].size(), 2u);
  fs::remove_all(config.output_dir);
}

TEST(Training, NoValidationFileIsNeededWhenNothingIsEvaluated) {
  TrainConfig config = small_run("no_validation");
  config.max_steps = 1;
  config.eval_every = 0;
  config.validation_path = "/nonexistent/validation.jsonl";
  absl::StatusOr<TrainSummary> trained = train(config, {});
  ASSERT_TRUE(trained.ok()) << trained.status();
  EXPECT_LT(trained->last_validation_loss, 0.0);
  config.eval_every = 1;
  TrainOptions overwrite;
  overwrite.overwrite = true;
  EXPECT_THAT(std::string(train(config, overwrite).status().message()), HasSubstr("/nonexistent/validation.jsonl"));
  fs::remove_all(config.output_dir);
}

TEST(Training, ADirectoryGivenAsAFileIsAnError) {
  const std::string dir = ::testing::TempDir() + "/la3_config_dir";
  fs::create_directories(dir);
  absl::StatusOr<TrainConfig> config = load_train_config(dir);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("is a directory, expected a file"));
  TrainConfig run = small_run("dir_data");
  run.train_path = dir;
  absl::StatusOr<TrainSummary> trained = train(run, {});
  ASSERT_FALSE(trained.ok());
  EXPECT_THAT(trained.status().message(), HasSubstr("is a directory, expected a dataset file"));
  fs::remove_all(dir);
}

TEST(Training, CudaEmuDeviceTrainsLikeTheCpu) {
  // Same run on cpu and on cuda-emu (the CUDA kernels under the SIMT emulation).
  // Short sequences keep the emulated launches small (every CUDA thread is a fiber).
  TrainConfig cpu = small_run("device_cpu");
  cpu.max_steps = 2;
  cpu.checkpoint_every = 2;
  cpu.max_source_length = 16;
  cpu.max_target_length = 16;
  // And a 4-molecule validation set.
  const std::string small_validation = ::testing::TempDir() + "/la3_small_validation.jsonl";
  {
    std::ifstream in(kSample + "/validation.jsonl");
    std::ofstream out(small_validation);
    std::string line;
    for (int i = 0; i < 4 && std::getline(in, line); ++i) out << line << "\n";
  }
  cpu.validation_path = small_validation;
  TrainConfig emu = cpu;
  emu.output_dir = ::testing::TempDir() + "/la3_train_device_emu";
  fs::remove_all(emu.output_dir);
  emu.device = "cuda-emu";
  emu.gemm_precision = "fp32";  // the same arithmetic as the cpu run up to summation order
  const absl::StatusOr<TrainSummary> a = train(cpu, {});
  const absl::StatusOr<TrainSummary> b = train(emu, {});
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_NEAR(b->last_validation_loss, a->last_validation_loss, 1e-4 * a->last_validation_loss);
  // The checkpoint written from the cuda-emu device loads like any other.
  EXPECT_TRUE(load_t5_checkpoint(emu.output_dir + "/checkpoint").ok());
  fs::remove_all(cpu.output_dir);
  fs::remove_all(emu.output_dir);
}

// training.device auto finds no GPU here and chooses the cpu: bf16 activations are then refused
// before anything is trained, naming both keys.
TEST(Training, Bf16ActivationsOnTheCpuAreRefused) {
  TrainConfig config = small_run("bf16_on_cpu");
  config.device = "auto";
  config.activations = "bf16";
  const absl::StatusOr<TrainSummary> summary = train(config, {});
  ASSERT_FALSE(summary.ok());
  EXPECT_THAT(std::string(summary.status().message()),
              ::testing::AllOf(HasSubstr("training.activations bf16 needs a cuda or cuda-emu device"), HasSubstr("'auto'")));
  EXPECT_FALSE(fs::exists(fs::path(config.output_dir) / "checkpoint"));
}

// The host waits for the device whenever it reads device memory or a copy is synchronous. A
// training step reads once (every micro-batch's loss and the clipping norm in one copy). A
// micro-batch's forward + backward does not wait at all: batch_loss validates the ids, labels
// and groups on the host before uploading them (so the embeddings and the loss skip their
// read-backs), collate shifts the decoder inputs on the host, and the uploads are queued
// without waiting (the backend holds the host tensors until that one readback). So a step of
// A micro-batches waits once, whatever A is.
TEST(Training, AStepWaitsForTheDeviceOnce) {
  TrainConfig config = small_run("host_syncs");
  config.device = "cuda-emu";
  config.max_source_length = 12;
  config.max_target_length = 12;
  config.batch_size = 2;
  config.grad_accumulation = 3;
  config.max_steps = 3;
  config.eval_every = 0;
  config.checkpoint_every = 0;
  config.log_every = 1;
  config.clip_grad_norm = 1.0;
  std::vector<uint64_t> at_progress;
  TrainOptions options;
  options.on_progress = [&](const TrainProgress&) {
    at_progress.push_back(simt::runtime_counters().host_synchronizations);
  };
  const absl::StatusOr<TrainSummary> summary = train(config, options);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  ASSERT_EQ(at_progress.size(), 3u);

  // One micro-batch's forward and backward through the same model structure, on its own.
  const T5Config model_config = *config.model_config(100);
  T5Model model = T5Model::create(model_config, 1)->to_device(Device{DeviceType::kCudaEmu, 0});
  model.set_requires_grad(true);
  Batch batch;
  batch.input_ids = Tensor::from_vector<int64_t>({2, 4}, {5, 6, 7, 1, 8, 9, 1, 0});
  batch.attention_mask = Tensor::from_vector<int64_t>({2, 4}, {1, 1, 1, 1, 1, 1, 1, 0});
  batch.labels = Tensor::from_vector<int64_t>({2, 3}, {10, 11, 1, 12, 1, -100});
  batch.group = {0, 1};
  batch.groups = 2;
  const uint64_t before = simt::runtime_counters().host_synchronizations;
  {
    Tape tape;
    T5ForwardOptions forward;
    forward.training = true;
    tape.backward(batch_loss(model, batch, ops::CaptionLoss::kMean, forward, 5.0));
  }
  const uint64_t per_micro_batch = simt::runtime_counters().host_synchronizations - before;
  EXPECT_EQ(per_micro_batch, 0u);
  for (size_t step = 1; step < at_progress.size(); ++step) {
    EXPECT_EQ(at_progress[step] - at_progress[step - 1], 1u) << "step " << step + 1;
  }
  fs::remove_all(config.output_dir);
}

// engine score on a device waits for it once per loss mode, not once per batch: every batch is
// uploaded without waiting (decoder inputs shifted and the mask converted on the host, as in
// batch_loss) and the batch losses stay on the device until the mode's last batch.
TEST(Scoring, WaitsForTheDeviceOncePerLossMode) {
  ReadReport report;
  absl::StatusOr<std::vector<MoleculeRecord>> records =
      read_augmented_jsonl(kSample + "/validation.jsonl", ReadOptions{}, &report);
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  records->resize(8);  // 4 batches of 2 molecules per mode
  const absl::StatusOr<Tokenizer> tokenizer = Tokenizer::load(kSample + "/spiece.model");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
  T5Config config = *T5Config::preset("tiny");
  config.vocab_size = tokenizer->vocab_size();
  ASSERT_TRUE(activate_device("cuda-emu").ok());
  const T5Model cpu = *T5Model::create(config, 5);
  const T5Model emu = cpu.to_device(Device{DeviceType::kCudaEmu, 0});
  ScoreOptions options;
  options.modes = {ops::CaptionLoss::kMean, ops::CaptionLoss::kTokenMixture};
  options.batch_size = 2;
  options.max_source_length = 32;
  options.max_target_length = 32;
  const uint64_t before = simt::runtime_counters().host_synchronizations;
  const absl::StatusOr<DatasetScore> on_emu = score_dataset(emu, *tokenizer, *records, options);
  const uint64_t waits = simt::runtime_counters().host_synchronizations - before;
  ASSERT_TRUE(on_emu.ok()) << on_emu.status().ToString();
  ASSERT_EQ(on_emu->modes.size(), 2u);
  EXPECT_LE(waits, 2u) << "one wait per loss mode (" << records->size() << " molecules in batches of 2)";
  // And the numbers are the cpu's (bf16 GEMMs on the device: within their tolerance).
  const absl::StatusOr<DatasetScore> on_cpu = score_dataset(cpu, *tokenizer, *records, options);
  ASSERT_TRUE(on_cpu.ok());
  for (size_t m = 0; m < 2; ++m) {
    EXPECT_NEAR(on_emu->modes[m].loss, on_cpu->modes[m].loss, 1e-2 * on_cpu->modes[m].loss) << m;
  }
}

// batch_loss vouches for the ids, labels and groups to the ops only after checking them on the
// host: a bad batch is refused with the ops' errors before anything reaches the device.
TEST(Training, BatchLossRefusesBadIdsLabelsAndGroupsBeforeTheUpload) {
  T5Config config = *T5Config::preset("tiny");
  config.vocab_size = 40;
  ASSERT_TRUE(activate_device("cuda-emu").ok());
  const T5Model model = T5Model::create(config, 1)->to_device(Device{DeviceType::kCudaEmu, 0});
  auto make = [](std::vector<int64_t> ids, std::vector<int64_t> labels, std::vector<int64_t> group) {
    Batch batch;
    batch.input_ids = Tensor::from_vector<int64_t>({2, 2}, ids);
    batch.attention_mask = Tensor::full({2, 2}, 1.0, DType::kI64);
    batch.labels = Tensor::from_vector<int64_t>({2, 2}, labels);
    batch.group = group;
    batch.groups = 2;
    return batch;
  };
  auto error = [&](const Batch& batch, ops::CaptionLoss mode) -> std::string {
    const uint64_t uploads = simt::runtime_counters().host_to_device_copies;
    const absl::Status status = CaptureStatus([&] { batch_loss(model, batch, mode, {}); });
    EXPECT_EQ(simt::runtime_counters().host_to_device_copies, uploads) << "nothing uploaded";
    return std::string(status.message());
  };
  EXPECT_THAT(error(make({5, 40, 6, 1}, {3, 1, 4, 1}, {0, 1}), ops::CaptionLoss::kMean),
              HasSubstr("embedding: id 40 at position 1"));
  EXPECT_THAT(error(make({5, 1, 6, 1}, {3, 1, 45, 1}, {0, 1}), ops::CaptionLoss::kMean),
              HasSubstr("caption_loss_from_logits: label 45 at position 2"));
  EXPECT_THAT(error(make({5, 1, 6, 1}, {3, 1, 4, 1}, {0, 0}), ops::CaptionLoss::kTokenMixture),
              HasSubstr("token_mixture needs one target per group, but rows 0 and 1"));
  // A good batch goes through (and its loss is a number).
  const Batch good = make({5, 1, 6, 1}, {3, 1, 4, 1}, {0, 1});
  EXPECT_TRUE(std::isfinite(batch_loss(model, good, ops::CaptionLoss::kMean, {}).item()));
}

// train_step is the recipe written out: each micro-batch's loss over the step's normaliser and
// its backward, the norm of the accumulated gradients, clipping, AdamW. Done by hand on a twin
// model, the weights come out bit-identical and the norm is clip_grad_norm's.
TEST(TrainStep, IsForwardBackwardPerMicroBatchThenClipAndAdamW) {
  T5Config config = *T5Config::preset("tiny");
  config.vocab_size = 40;
  T5Model a = *T5Model::create(config, 3);
  T5Model b = *T5Model::create(config, 3);
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  auto make = [](std::vector<int64_t> ids, std::vector<int64_t> labels, std::vector<int64_t> group) {
    Batch batch;
    const int64_t rows = static_cast<int64_t>(group.size());
    batch.input_ids = Tensor::from_vector<int64_t>({rows, static_cast<int64_t>(ids.size()) / rows}, ids);
    batch.attention_mask = Tensor::full(batch.input_ids.shape(), 1.0, DType::kI64);
    batch.labels = Tensor::from_vector<int64_t>({rows, static_cast<int64_t>(labels.size()) / rows}, labels);
    batch.group = group;
    batch.groups = group.back() + 1;
    batch.source_tokens = static_cast<int64_t>(ids.size());
    batch.target_tokens = static_cast<int64_t>(labels.size());
    return batch;
  };
  // token_mixture: two captions of one molecule share its target.
  const Batch first = make({5, 6, 7, 1, 8, 9, 10, 1}, {12, 13, 1, 12, 13, 1}, {0, 0});
  const Batch second = make({20, 21, 1, 22, 23, 1}, {14, 15, 16, 1, 14, 15, 16, 1}, {0, 0});
  const ops::CaptionLoss mode = ops::CaptionLoss::kTokenMixture;
  const double normaliser = ops::caption_loss_normaliser(first.labels, first.group, mode) +
                            ops::caption_loss_normaliser(second.labels, second.group, mode);
  const AdamWOptions adamw_options{1e-2, 0.9, 0.999, 1e-8, 0.01};
  const double max_norm = 0.05;  // small enough to clip

  AdamW adamw_a(a.parameter_list(), adamw_options);
  AdamWStep step_a(adamw_a);
  TrainStepOptions options;
  options.loss = mode;
  options.seed = 9;
  options.step = 4;
  options.clip_grad_norm = max_norm;
  const absl::StatusOr<TrainStepResult> result = train_step(a, {{&first, 0}, {&second, 2}}, step_a, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();

  AdamW adamw_b(b.parameter_list(), adamw_options);
  double loss = 0.0;
  const std::vector<std::pair<const Batch*, int64_t>> micro = {{&first, 0}, {&second, 2}};
  for (const auto& [batch, row] : micro) {
    T5ForwardOptions forward;
    forward.training = true;
    forward.seed = 9;
    forward.step = 4;
    forward.dropout_row_offset = static_cast<uint64_t>(row);
    Tape tape;
    const Tensor l = batch_loss(b, *batch, mode, forward, normaliser);
    loss += l.item();
    tape.backward(l);
  }
  const double norm = clip_grad_norm(b.parameter_list(), max_norm);
  adamw_b.step();

  EXPECT_EQ(result->loss, loss);
  EXPECT_EQ(result->gradient_norm, norm);
  EXPECT_GT(norm, max_norm);  // clipping happened
  EXPECT_EQ(result->tokens, 8 + 6 + 6 + 8);
  for (const auto& [name, parameter] : a.parameters()) {
    EXPECT_EQ(parameter.to_vector<float>(), b.parameter(name).to_vector<float>()) << name;
  }

  // A loss that is not finite stops the step before the weights change.
  TrainStepOptions failing = options;
  failing.before_update = [](const TrainStepResult&) { return absl::InternalError("loss became nan"); };
  const std::vector<float> before = a.parameter("shared.weight").to_vector<float>();
  adamw_a.zero_grad();
  EXPECT_EQ(train_step(a, {{&first, 0}}, step_a, failing).status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(a.parameter("shared.weight").to_vector<float>(), before);
}

// Each log interval reports the device's peak tensor bytes (reset per interval) in the
// progress callback and in metrics.jsonl. Weights, gradients and both AdamW moments live
// through every interval, so the peak is at least 16 bytes per parameter; on cuda-emu (bf16
// GEMMs: plus 2 bytes of bf16 copy) it is at most what the emulated cudaMalloc held at once.
TEST(Training, EachLogIntervalReportsItsPeakDeviceBytes) {
  for (const char* device : {"cpu", "cuda-emu"}) {
    TrainConfig config = small_run(std::string("peak_") + device);
    config.device = device;
    config.max_source_length = 12;
    config.max_target_length = 12;
    config.max_steps = 4;
    config.log_every = 2;
    config.eval_every = 0;
    config.checkpoint_every = 0;
    std::vector<int64_t> peaks;
    TrainOptions options;
    options.on_progress = [&](const TrainProgress& p) { peaks.push_back(p.peak_device_bytes); };
    const absl::StatusOr<TrainSummary> summary = train(config, options);
    ASSERT_TRUE(summary.ok()) << summary.status().ToString();
    ASSERT_EQ(peaks.size(), 2u) << device;
    const int64_t per_parameter = std::string(device) == "cpu" ? 16 : 18;
    std::vector<int64_t> logged;
    std::ifstream metrics(config.output_dir + "/metrics.jsonl");
    for (std::string line; std::getline(metrics, line);) {
      const nlohmann::json record = nlohmann::json::parse(line);
      ASSERT_TRUE(record.contains("peak_device_bytes")) << line;
      logged.push_back(record["peak_device_bytes"].get<int64_t>());
    }
    EXPECT_EQ(logged, peaks) << device;
    for (int64_t peak : peaks) {
      EXPECT_GT(peak, per_parameter * summary->parameters) << device;
      if (std::string(device) == "cuda-emu") {
        EXPECT_LE(peak, static_cast<int64_t>(simt::emulated_device_peak_bytes())) << device;
      }
    }
    fs::remove_all(config.output_dir);
  }
}

// Recomputing every attention sublayer in the backward gives the same gradients, bit for bit
// on the CPU (dropout on: the replay draws the same Philox masks), and keeps less memory
// alive: the CPU allocator's peak over forward + backward drops.
TEST(TrainStep, RecomputeGivesTheSameGradientsWithALowerPeak) {
  T5Config config = *T5Config::preset("tiny");
  config.vocab_size = 50;
  config.dropout_rate = 0.1f;
  T5Model model = *T5Model::create(config, 7);
  model.set_requires_grad(true);
  const int64_t rows = 4, source = 48, target = 40;
  Batch batch;
  std::vector<int64_t> ids, labels;
  for (int64_t i = 0; i < rows * source; ++i) ids.push_back(3 + (i * 7) % 45);
  for (int64_t i = 0; i < rows * target; ++i) labels.push_back(3 + (i * 11) % 45);
  batch.input_ids = Tensor::from_vector<int64_t>({rows, source}, ids);
  std::vector<int64_t> mask(static_cast<size_t>(rows * source), 1);
  mask.back() = 0;  // one padded key
  batch.attention_mask = Tensor::from_vector<int64_t>({rows, source}, mask);
  batch.labels = Tensor::from_vector<int64_t>({rows, target}, labels);
  batch.group = {0, 1, 2, 3};
  batch.groups = 4;
  auto gradients = [&](T5ForwardOptions::Recompute recompute, size_t* peak) {
    for (const Tensor& parameter : model.parameter_list()) parameter.zero_grad();  // drops the previous run's
    T5ForwardOptions forward;
    forward.training = true;
    forward.seed = 3;
    forward.step = 2;
    forward.recompute = recompute;
    Allocator& cpu = allocator_for(Device::cpu());
    cpu.reset_peak_bytes();
    const size_t base = cpu.bytes_in_use();
    {
      Tape tape;
      tape.backward(batch_loss(model, batch, ops::CaptionLoss::kMean, forward));
    }
    *peak = cpu.peak_bytes() - base;
    std::map<std::string, std::vector<float>> grads;
    for (const auto& [name, parameter] : model.parameters()) {
      if (parameter.grad().defined()) grads[name] = parameter.grad().to_vector<float>();
    }
    return grads;
  };
  size_t plain_peak = 0, recompute_peak = 0, block_peak = 0;
  const auto plain = gradients(T5ForwardOptions::Recompute::kNone, &plain_peak);
  const auto recomputed = gradients(T5ForwardOptions::Recompute::kAttention, &recompute_peak);
  const auto blocks = gradients(T5ForwardOptions::Recompute::kBlock, &block_peak);
  ASSERT_EQ(plain.size(), model.parameters().size());
  ASSERT_EQ(recomputed.size(), plain.size());
  ASSERT_EQ(blocks.size(), plain.size());
  for (const auto& [name, values] : plain) EXPECT_EQ(recomputed.at(name), values) << name;
  // A replayed block sums the gradients of its inputs inside its own replay before they join the
  // outer sums (the encoder output gets one contribution per cross-attention k and v), so block
  // recompute changes the order of some fp32 additions: equal to rounding, not bit for bit.
  for (const auto& [name, values] : plain) {
    const std::vector<float>& got = blocks.at(name);
    ASSERT_EQ(got.size(), values.size()) << name;
    double error = 0.0, norm = 0.0;
    for (size_t i = 0; i < values.size(); ++i) {
      error += (static_cast<double>(got[i]) - values[i]) * (static_cast<double>(got[i]) - values[i]);
      norm += static_cast<double>(values[i]) * values[i];
    }
    EXPECT_LT(error, 1e-12 * norm) << name;
  }
  EXPECT_LT(recompute_peak, plain_peak);
  EXPECT_LT(block_peak, recompute_peak);
  std::printf("forward + backward peak: %zu bytes without recompute, %zu with attention recompute, %zu with block "
              "recompute\n",
              plain_peak, recompute_peak, block_peak);
}

// training.recompute: attention changes nothing but memory: on the CPU a run with it writes the
// same weights, bit for bit, as a run without, with a lower peak.
TEST(Training, RecomputeAttentionTrainsTheSameWeights) {
  TrainConfig plain = small_run("recompute_none");
  plain.max_steps = 2;
  plain.eval_every = 0;
  plain.checkpoint_every = 2;
  plain.dropout_rate = 0.1f;
  plain.dropout_rate_set = true;
  plain.max_source_length = 24;
  plain.max_target_length = 24;
  TrainConfig recompute = plain;
  recompute.output_dir = ::testing::TempDir() + "/la3_train_recompute_attention";
  fs::remove_all(recompute.output_dir);
  recompute.recompute = "attention";
  int64_t plain_peak = 0, recompute_peak = 0;
  TrainOptions options;
  options.on_progress = [&](const TrainProgress& p) { plain_peak = std::max(plain_peak, p.peak_device_bytes); };
  ASSERT_TRUE(train(plain, options).ok());
  options.on_progress = [&](const TrainProgress& p) { recompute_peak = std::max(recompute_peak, p.peak_device_bytes); };
  ASSERT_TRUE(train(recompute, options).ok());
  EXPECT_LT(recompute_peak, plain_peak);  // and it did recompute
  EXPECT_EQ(file_bytes(plain.output_dir + "/checkpoint/model.safetensors"),
            file_bytes(recompute.output_dir + "/checkpoint/model.safetensors"));
  fs::remove_all(plain.output_dir);
  fs::remove_all(recompute.output_dir);
}

TEST(Training, MixtureLossesTrainAndBadPathsAreNamed) {
  for (ops::CaptionLoss mode : {ops::CaptionLoss::kTokenMixture, ops::CaptionLoss::kSequenceMixture}) {
    TrainConfig config = small_run(ops::caption_loss_name(mode));
    config.loss = mode;
    config.max_steps = 3;
    config.checkpoint_every = 0;
    if (mode == ops::CaptionLoss::kSequenceMixture) config.direction = Direction::kSmilesToCaption;
    absl::StatusOr<TrainSummary> summary = train(config, {});
    ASSERT_TRUE(summary.ok()) << ops::caption_loss_name(mode) << ": " << summary.status().ToString();
    EXPECT_GT(summary->first_validation_loss, summary->last_validation_loss) << ops::caption_loss_name(mode);
    fs::remove_all(config.output_dir);
  }
  TrainConfig missing = small_run("missing");
  missing.train_path = "/nonexistent/train.jsonl";
  EXPECT_THAT(std::string(train(missing, {}).status().message()), HasSubstr("/nonexistent/train.jsonl"));
  missing = small_run("missing_tokenizer");
  missing.tokenizer_path = "/nonexistent/spiece.model";
  EXPECT_EQ(train(missing, {}).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace la3
