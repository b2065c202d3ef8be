// Data-parallel training end to end: `engine train` under `mpirun -np 2` against one process,
// on the demo model with dropout on, for every loss mode:
//   2 ranks x batch B  ==  1 rank x batch 2B  ==  1 rank x batch B x accumulation 2
// per-step losses, validation losses and final weights (the tolerances and why: kFirstStepTolerance and below).
// Then faults (a rank killed, failing or hanging ends every rank with its rank named; the last
// checkpoint stays intact) and resuming with another world size.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/support/run_command.h"

#include "engine/io/safetensors.h"

namespace la3 {
namespace {

namespace fs = std::filesystem;

// What differs between the runs is only the order of float additions: a weight gradient is
// summed over 2B rows in one GEMM, or over B rows per rank and then across ranks (or micro-
// batches), a shared weight's contributions are associated differently, and the padded
// lengths differ. That is ~1e-7 relative per step: the first step's losses agree to the float
// rounding of the reported loss (kFirstStepTolerance). Training then amplifies it a little:
// over 20 steps of the demo model (lr 0.002, loss 22 -> 5) the per-step losses were measured
// within 1.7e-6 (token_mixture; 2e-7 for the others) and whole weight tensors within 4.8e-6
// normwise. Single weight elements drift further: AdamW divides each gradient element by its
// own running RMS, so an element whose gradient is mostly rounding noise moves by ~lr whatever
// its size; measured up to 7.6e-5 of the tensor's largest element. A semantic error (a wrong
// normaliser, dropout mask or batch slice) shows up at 1e-3 or more from the first step.
constexpr double kFirstStepTolerance = 3e-7;
constexpr double kLossTolerance = 5e-6;
constexpr double kWeightTolerance = 1e-5;
constexpr double kElementwiseTolerance = 2e-4;

using testing::run_command;
using testing::RunResult;
RunResult run(const std::string& command) { return run_command(command); }

std::string mpirun(int ranks) {
  return std::string(LA3_MPIEXEC) + " --allow-run-as-root --oversubscribe -np " + std::to_string(ranks) + " ";
}

struct TrainSetup {
  std::string mode = "mean";
  int batch_size = 4;
  int grad_accumulation = 1;
  int max_steps = 20;
  int checkpoint_every = 20;
  double timeout_s = 120.0;
  bool shard_optimizer = false;
  std::string device = "cpu";
  std::string gemm_precision = "bf16";
  int max_length = 128;
  int eval_every = 10;
  std::string backend = "auto";
};

// Writes a config for the bundled sample (paths absolute, so the working directory is free).
std::string write_config(const fs::path& dir, const TrainSetup& setup) {
  fs::create_directories(dir);
  const fs::path path = dir / "config.yaml";
  const std::string data = std::string(LA3_SOURCE_DIR) + "/data/sample/";
  std::ofstream out(path);
  out << "model:\n  preset: tiny\n  dropout_rate: 0.1\n"
      << "data:\n  train: " << data << "train.jsonl\n  validation: " << data << "validation.jsonl\n  tokenizer: " << data
      << "spiece.model\n  direction: " << (setup.mode == "sequence_mixture" ? "smiles2caption" : "caption2smiles")
      << "\n  max_source_length: " << setup.max_length << "\n  max_target_length: " << setup.max_length << "\n"
      << "loss:\n  mode: " << setup.mode << "\n  k: 2\n"
      << "optimizer:\n  lr: 0.002\n"
      << "training:\n  batch_size: " << setup.batch_size << "\n  grad_accumulation: " << setup.grad_accumulation
      << "\n  max_steps: " << setup.max_steps << "\n  eval_every: " << setup.eval_every
      << "\n  checkpoint_every: " << setup.checkpoint_every << "\n  log_every: 1\n  threads: 1\n  device: "
      << setup.device << "\n  gemm_precision: " << setup.gemm_precision << "\n"
      << "distributed:\n  bucket_mb: 0.1\n  timeout_s: " << setup.timeout_s
      << "\n  shard_optimizer: " << (setup.shard_optimizer ? "true" : "false") << "\n  backend: " << setup.backend
      << "\n";
  return path.string();
}

std::string train_command(const std::string& config, const fs::path& output, const std::string& extra = "") {
  return std::string(LA3_ENGINE_BINARY) + " train --config " + config + " --output-dir " + output.string() + " " + extra;
}

// step -> loss and step -> validation loss (the last record of a step wins, as after a resume).
struct Metrics {
  std::map<int64_t, double> loss, validation;
};
Metrics read_metrics(const fs::path& run_dir) {
  Metrics metrics;
  std::ifstream in(run_dir / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    const nlohmann::json record = nlohmann::json::parse(line);
    if (record.contains("loss")) metrics.loss[record["step"]] = record["loss"];
    if (record.contains("validation_loss")) metrics.validation[record["step"]] = record["validation_loss"];
  }
  return metrics;
}

double relative(double a, double b) { return std::fabs(a - b) / std::max(std::fabs(b), 1e-30); }

// Weight differences between two runs' final checkpoints, the worst tensor of each measure:
// normwise ||a - b|| / ||b|| (the tolerance) and elementwise max |a - b| / max |b| (reported).
struct WeightDifference {
  double normwise = 0.0, elementwise = 0.0;
  std::string worst_normwise, worst_elementwise;
};
WeightDifference weight_difference(const fs::path& a, const fs::path& b) {
  WeightDifference result;
  absl::StatusOr<SafetensorsContents> wa = read_safetensors((a / "checkpoint" / "model.safetensors").string());
  absl::StatusOr<SafetensorsContents> wb = read_safetensors((b / "checkpoint" / "model.safetensors").string());
  EXPECT_TRUE(wa.ok() && wb.ok());
  if (!wa.ok() || !wb.ok()) return {INFINITY, INFINITY, "unreadable", "unreadable"};
  EXPECT_EQ(wa->tensors.size(), wb->tensors.size());
  for (const auto& [name, tensor] : wb->tensors) {
    auto found = wa->tensors.find(name);
    EXPECT_NE(found, wa->tensors.end()) << name;
    if (found == wa->tensors.end()) return {INFINITY, INFINITY, name, name};
    const std::vector<float> x = found->second.to_vector<float>(), y = tensor.to_vector<float>();
    double max_y = 0.0, max_diff = 0.0, sum_diff = 0.0, sum_y = 0.0;
    for (size_t i = 0; i < y.size(); ++i) {
      const double d = static_cast<double>(x[i]) - y[i];
      max_y = std::max(max_y, std::fabs(static_cast<double>(y[i])));
      max_diff = std::max(max_diff, std::fabs(d));
      sum_diff += d * d;
      sum_y += static_cast<double>(y[i]) * y[i];
    }
    const double normwise = std::sqrt(sum_diff / std::max(sum_y, 1e-300));
    const double elementwise = max_diff / std::max(max_y, 1e-300);
    if (normwise > result.normwise) {
      result.normwise = normwise;
      result.worst_normwise = name;
    }
    if (elementwise > result.elementwise) {
      result.elementwise = elementwise;
      result.worst_elementwise = name;
    }
  }
  return result;
}

void expect_same_training(const fs::path& run, const fs::path& reference, const std::string& what) {
  const Metrics a = read_metrics(run), b = read_metrics(reference);
  ASSERT_EQ(a.loss.size(), b.loss.size()) << what;
  double worst_loss = 0.0;
  for (const auto& [step, loss] : b.loss) {
    ASSERT_TRUE(a.loss.count(step)) << what << ": no loss at step " << step;
    worst_loss = std::max(worst_loss, relative(a.loss.at(step), loss));
    EXPECT_LT(relative(a.loss.at(step), loss), step == b.loss.begin()->first ? kFirstStepTolerance : kLossTolerance)
        << what << ": step " << step << " loss " << a.loss.at(step) << " vs " << loss;
  }
  for (const auto& [step, loss] : b.validation) {
    ASSERT_TRUE(a.validation.count(step)) << what;
    EXPECT_LT(relative(a.validation.at(step), loss), kLossTolerance) << what << ": validation at step " << step;
  }
  const WeightDifference weights = weight_difference(run, reference);
  EXPECT_LT(weights.normwise, kWeightTolerance) << what << ": weights differ most in " << weights.worst_normwise;
  EXPECT_LT(weights.elementwise, kElementwiseTolerance) << what << ": " << weights.worst_elementwise;
  std::printf("%s: worst per-step loss difference %.2e; weights: worst normwise %.2e (%s), worst elementwise %.2e (%s)\n",
              what.c_str(), worst_loss, weights.normwise, weights.worst_normwise.c_str(), weights.elementwise,
              weights.worst_elementwise.c_str());
}

class DataParallel : public ::testing::TestWithParam<std::string> {
 protected:
  fs::path root_ = fs::path(LA3_TEST_OUTPUT_DIR) / "data_parallel";
};

TEST_P(DataParallel, TwoRanksEqualOneRankOnTheSameGlobalBatch) {
  const std::string mode = GetParam();
  const fs::path dir = root_ / mode;
  fs::remove_all(dir);
  TrainSetup setup;
  setup.mode = mode;
  const std::string per_rank = write_config(dir / "b", setup);
  setup.batch_size = 8;
  const std::string doubled = write_config(dir / "2b", setup);
  setup.batch_size = 4;
  setup.grad_accumulation = 2;
  const std::string accumulated = write_config(dir / "b_accum2", setup);

  const RunResult two_ranks = run(mpirun(2) + train_command(per_rank, dir / "run_2x_b"));
  ASSERT_EQ(two_ranks.exit_code, 0) << two_ranks.output;
  EXPECT_NE(two_ranks.output.find("distributed: 2 ranks"), std::string::npos) << two_ranks.output;
  // Only rank 0 reports: one summary line.
  EXPECT_EQ(two_ranks.output.find("trained 20 steps"), two_ranks.output.rfind("trained 20 steps")) << two_ranks.output;
  const RunResult one_rank = run(train_command(doubled, dir / "run_1x_2b"));
  ASSERT_EQ(one_rank.exit_code, 0) << one_rank.output;
  const RunResult accumulation = run(train_command(accumulated, dir / "run_1x_b_accum2"));
  ASSERT_EQ(accumulation.exit_code, 0) << accumulation.output;

  expect_same_training(dir / "run_2x_b", dir / "run_1x_2b", mode + " 2 ranks x B vs 1 rank x 2B");
  expect_same_training(dir / "run_1x_b_accum2", dir / "run_1x_2b", mode + " 1 rank x B x accumulation 2 vs 1 rank x 2B");
}

// ZeRO-1: the moments sharded over 2 ranks train the same model as one process, the log states
// the halved optimizer memory, and its checkpoint (gathered, the usual format) resumes on one
// rank without sharding.
TEST(DataParallelZero1, ShardedOptimizerEqualsOneRankAndItsCheckpointResumesUnsharded) {
  const fs::path dir = fs::path(LA3_TEST_OUTPUT_DIR) / "data_parallel" / "zero1";
  fs::remove_all(dir);
  TrainSetup setup;
  setup.shard_optimizer = true;
  setup.checkpoint_every = 10;
  const std::string sharded = write_config(dir / "sharded", setup);
  setup.shard_optimizer = false;
  setup.batch_size = 8;
  const std::string doubled = write_config(dir / "2b", setup);
  setup.batch_size = 4;
  const std::string unsharded = write_config(dir / "unsharded", setup);

  const RunResult reference = run(train_command(doubled, dir / "reference"));
  ASSERT_EQ(reference.exit_code, 0) << reference.output;
  const RunResult zero = run(mpirun(2) + train_command(sharded, dir / "zero"));
  ASSERT_EQ(zero.exit_code, 0) << zero.output;
  EXPECT_NE(zero.output.find("(ZeRO-1: sharded)"), std::string::npos) << zero.output;
  expect_same_training(dir / "zero", dir / "reference", "ZeRO-1 2 ranks x B vs 1 rank x 2B");
  // Optimizer bytes per rank: about half of the unsharded run's.
  const RunResult plain = run(mpirun(2) + train_command(unsharded, dir / "plain", "--max-steps 1"));
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  auto state_bytes = [](const std::string& output) {
    const size_t at = output.find("optimizer state ");
    return at == std::string::npos ? -1.0 : std::stod(output.substr(at + 16));
  };
  const double zero_bytes = state_bytes(zero.output), plain_bytes = state_bytes(plain.output);
  EXPECT_GT(zero_bytes, 0.0);
  EXPECT_NEAR(zero_bytes / plain_bytes, 0.5, 0.01) << zero_bytes << " vs " << plain_bytes;

  const RunResult first = run(mpirun(2) + train_command(sharded, dir / "zero_then_one", "--max-steps 10"));
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const RunResult second = run(train_command(doubled, dir / "zero_then_one", "--resume"));
  ASSERT_EQ(second.exit_code, 0) << second.output;
  expect_same_training(dir / "zero_then_one", dir / "reference", "resume ZeRO-1 2 ranks -> 1 rank unsharded");
}

// The CUDA backend's path on cuda-emu: gradients through the NCCL communicator compiled
// against the emulated NCCL (device buffers, communication stream ordered by events, checked
// by the emulated runtime), for every loss mode (and ZeRO-1 with mean), against one cuda-emu
// process on the doubled batch, with dropout: 8 steps (20 on the cpu), sequences cut at 32
// tokens, 2 groups per rank, because the emulation runs kernels on fibers (~1-3 s per step
// here). fp32 GEMMs:
// with bf16 operands a 1e-7 difference in an activation can flip its bf16 rounding (4e-3).
// No validation: its sharding is covered on the cpu and would dominate the time here.
class DataParallelCudaEmu : public ::testing::TestWithParam<std::string> {};

TEST_P(DataParallelCudaEmu, TwoRanksThroughEmulatedNcclEqualOneRank) {
  const std::string mode = GetParam();
  const fs::path dir = fs::path(LA3_TEST_OUTPUT_DIR) / "data_parallel" / ("cuda_emu_" + mode);
  fs::remove_all(dir);
  TrainSetup setup;
  setup.mode = mode;
  setup.device = "cuda-emu";
  setup.gemm_precision = "fp32";
  setup.batch_size = 2;
  setup.max_steps = 8;
  setup.checkpoint_every = 8;
  setup.eval_every = 0;
  setup.max_length = 32;
  const std::string per_rank = write_config(dir / "b", setup);
  setup.shard_optimizer = true;
  const std::string sharded = write_config(dir / "b_zero", setup);
  setup.shard_optimizer = false;
  setup.batch_size *= 2;
  const std::string doubled = write_config(dir / "2b", setup);

  const RunResult reference = run(train_command(doubled, dir / "one_rank"));
  ASSERT_EQ(reference.exit_code, 0) << reference.output;
  const RunResult two = run(mpirun(2) + train_command(per_rank, dir / "two_ranks"));
  ASSERT_EQ(two.exit_code, 0) << two.output;
  EXPECT_NE(two.output.find("nccl gradients"), std::string::npos) << two.output;
  expect_same_training(dir / "two_ranks", dir / "one_rank", "cuda-emu, nccl, " + mode + ": 2 ranks x B vs 1 rank x 2B");
  if (mode != "mean") return;
  const RunResult zero = run(mpirun(2) + train_command(sharded, dir / "two_ranks_zero"));
  ASSERT_EQ(zero.exit_code, 0) << zero.output;
  expect_same_training(dir / "two_ranks_zero", dir / "one_rank",
                       "cuda-emu, nccl, ZeRO-1, " + mode + ": 2 ranks x B vs 1 rank x 2B");
}

INSTANTIATE_TEST_SUITE_P(LossModes, DataParallelCudaEmu,
                         ::testing::Values("mean", "token_mixture", "sequence_mixture"));

// The transports are tied to memory: mpi cannot move device buffers, nccl host ones.
TEST(DataParallelConfig, ABackendThatCannotMoveTheDevicesMemoryIsAnErrorOnEveryRank) {
  const fs::path dir = fs::path(LA3_TEST_OUTPUT_DIR) / "data_parallel" / "backend";
  fs::remove_all(dir);
  TrainSetup setup;
  setup.backend = "nccl";
  const std::string nccl_on_cpu = write_config(dir / "nccl_cpu", setup);
  const RunResult a = run(mpirun(2) + train_command(nccl_on_cpu, dir / "a"));
  EXPECT_NE(a.exit_code, 0);
  EXPECT_NE(a.output.find("engine train: distributed.backend nccl needs a cuda device"), std::string::npos) << a.output;
  setup.backend = "mpi";
  setup.device = "cuda-emu";
  const std::string mpi_on_emu = write_config(dir / "mpi_emu", setup);
  const RunResult b = run(mpirun(2) + train_command(mpi_on_emu, dir / "b"));
  EXPECT_NE(b.exit_code, 0);
  EXPECT_NE(b.output.find("distributed.backend mpi moves host memory"), std::string::npos) << b.output;
}

// Every rank must train the same run: a rank launched with other settings or other data
// (mpirun's MPMD form gives each rank its own command line) is an error naming it.
TEST(DataParallelConfig, RanksThatDisagreeOnSettingsOrDataAreRefused) {
  const fs::path dir = fs::path(LA3_TEST_OUTPUT_DIR) / "data_parallel" / "disagree";
  fs::remove_all(dir);
  TrainSetup setup;
  const std::string base = write_config(dir / "base", setup);
  setup.batch_size = 5;
  const std::string other_batch = write_config(dir / "other_batch", setup);
  setup.batch_size = 4;
  setup.mode = "token_mixture";  // another loss mode groups the data differently too
  const std::string other_mode = write_config(dir / "other_mode", setup);
  int launches = 0;
  auto mpmd = [&](const std::string& second, const std::string& extra = "") {
    const fs::path output = dir / ("run" + std::to_string(++launches));
    return std::string(LA3_MPIEXEC) + " --allow-run-as-root --oversubscribe -np 1 " +
           train_command(base, output, extra) + " : -np 1 " + train_command(second, output, extra);
  };
  const RunResult batch = run(mpmd(other_batch));
  EXPECT_NE(batch.exit_code, 0);
  EXPECT_NE(batch.output.find("[rank 1/2] engine train: rank 1/2: its settings (batch_size"), std::string::npos)
      << batch.output;
  const RunResult data = run(mpmd(other_mode));
  EXPECT_NE(data.exit_code, 0);
  EXPECT_NE(data.output.find("rank 1/2: its training or validation data (token ids) differ from rank 0's"),
            std::string::npos)
      << data.output;
  // The same command line on both ranks passes the check; another --max-steps on one does not.
  const RunResult same = run(mpmd(base, "--max-steps 1"));
  EXPECT_EQ(same.exit_code, 0) << same.output;
  const RunResult steps = run(mpmd(base) + " --max-steps 1");
  EXPECT_NE(steps.exit_code, 0);
  EXPECT_NE(steps.output.find("its settings"), std::string::npos) << steps.output;
}

// Resuming with another world size continues the same global batches: 2 ranks to step 10,
// then 1 rank with the doubled batch to 20, equals 1 rank for 20 steps; and 1 -> 2.
TEST(DataParallelResume, AcrossWorldSizesContinuesTheSameRun) {
  const fs::path dir = fs::path(LA3_TEST_OUTPUT_DIR) / "data_parallel" / "resume";
  fs::remove_all(dir);
  TrainSetup setup;
  setup.checkpoint_every = 10;
  const std::string per_rank = write_config(dir / "b", setup);
  setup.batch_size = 8;
  const std::string doubled = write_config(dir / "2b", setup);

  const RunResult straight = run(train_command(doubled, dir / "straight"));
  ASSERT_EQ(straight.exit_code, 0) << straight.output;

  const RunResult first = run(mpirun(2) + train_command(per_rank, dir / "two_then_one", "--max-steps 10"));
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const RunResult second = run(train_command(doubled, dir / "two_then_one", "--resume"));
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_NE(second.output.find("resumed from"), std::string::npos) << second.output;
  expect_same_training(dir / "two_then_one", dir / "straight", "resume 2 ranks -> 1 rank");

  const RunResult third = run(train_command(doubled, dir / "one_then_two", "--max-steps 10"));
  ASSERT_EQ(third.exit_code, 0) << third.output;
  const RunResult fourth = run(mpirun(2) + train_command(per_rank, dir / "one_then_two", "--resume"));
  ASSERT_EQ(fourth.exit_code, 0) << fourth.output;
  expect_same_training(dir / "one_then_two", dir / "straight", "resume 1 rank -> 2 ranks");

  // Another global batch cannot continue the same sequence: refused, naming both.
  const RunResult changed = run(train_command(per_rank, dir / "one_then_two", "--resume --max-steps 30"));
  EXPECT_NE(changed.exit_code, 0);
  EXPECT_NE(changed.output.find("global batch of 8 groups"), std::string::npos) << changed.output;
  EXPECT_NE(changed.output.find("this launch has 4"), std::string::npos) << changed.output;
}

// A rank that dies, fails or hangs at step 5 ends every rank with a non-zero exit within the
// timeout, the output names the failed rank, and the step-4 checkpoint stays intact.
struct FaultCase {
  std::string action;
  std::string expected;  // in the output
};

class DataParallelFault : public ::testing::TestWithParam<FaultCase> {};

TEST_P(DataParallelFault, EndsEveryRankAndKeepsTheLastCheckpoint) {
  const FaultCase fault = GetParam();
  const fs::path dir = fs::path(LA3_TEST_OUTPUT_DIR) / "data_parallel" / ("fault_" + fault.action);
  fs::remove_all(dir);
  TrainSetup setup;
  setup.checkpoint_every = 2;
  setup.timeout_s = 10.0;
  const std::string config = write_config(dir, setup);
  const RunResult result =
      run("LA3_TEST_FAULT=1:5:" + fault.action + " " + mpirun(2) + "-x LA3_TEST_FAULT " + train_command(config, dir / "run"));
  EXPECT_NE(result.exit_code, 0) << result.output;
  EXPECT_LT(result.seconds, 60.0) << "the job must end within the timeout";
  EXPECT_NE(result.output.find(fault.expected), std::string::npos) << result.output;
  // The checkpoint of step 4 is whole: it loads and resumes (one rank, doubled batch).
  std::ifstream state(dir / "run" / "checkpoint" / "state.json");
  ASSERT_TRUE(state.good()) << "no checkpoint left";
  const nlohmann::json parsed = nlohmann::json::parse(state);
  EXPECT_EQ(parsed["step"], 4);
  setup.batch_size = 8;
  const std::string doubled = write_config(dir / "resume", setup);
  const RunResult resumed = run(train_command(doubled, dir / "run", "--resume --max-steps 6"));
  EXPECT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("at step 4"), std::string::npos) << resumed.output;
}

INSTANTIATE_TEST_SUITE_P(
    Faults, DataParallelFault,
    ::testing::Values(FaultCase{"kill", "rank 1"}, FaultCase{"error", "[rank 1/2] engine train: injected fault"},
                      FaultCase{"hang", "did not complete within 10 s"}),
    [](const ::testing::TestParamInfo<FaultCase>& param_info) { return param_info.param.action; });

INSTANTIATE_TEST_SUITE_P(LossModes, DataParallel, ::testing::Values("mean", "token_mixture", "sequence_mixture"));

}  // namespace
}  // namespace la3
