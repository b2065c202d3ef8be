// Crash safety of checkpoints (issue 12, item 2): `engine train` is killed (SIGKILL) at every
// step of a checkpoint save; `--resume` then continues from the newest complete checkpoint
// and the run ends bit-identical to an uninterrupted one. Also: only the newest
// run.keep_checkpoints are kept, `checkpoint` links to the newest, and a run directory of the
// earlier layout (a `checkpoint` directory) resumes and is migrated.
#include "model/checkpoint_store.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/support/run_command.h"

#include "engine/io/file_io.h"

namespace la3 {
namespace {

namespace fs = std::filesystem;

using testing::run_command;
using testing::RunResult;
RunResult run(const std::string& command) { return run_command(command); }

const fs::path kRoot = fs::path(LA3_TEST_OUTPUT_DIR) / "checkpoint_store";

std::string config_path() {
  fs::create_directories(kRoot);
  const fs::path path = kRoot / "config.yaml";
  const std::string data = std::string(LA3_SOURCE_DIR) + "/data/sample/";
  std::ofstream out(path);
  out << "data:\n  train: " << data << "train.jsonl\n  validation: " << data << "validation.jsonl\n  tokenizer: " << data
      << "spiece.model\n  max_source_length: 64\n  max_target_length: 64\n"
      << "training:\n  batch_size: 4\n  max_steps: 6\n  eval_every: 0\n  checkpoint_every: 2\n  log_every: 1\n"
      << "  threads: 1\n  device: cpu\nrun:\n  keep_checkpoints: 2\n";
  return path.string();
}

std::string train(const fs::path& dir, const std::string& extra = "", const std::string& env = "") {
  return env + " " + std::string(LA3_ENGINE_BINARY) + " train --config " + config_path() + " --output-dir " + dir.string() +
         " " + extra;
}

std::string bytes(const fs::path& path) {
  absl::StatusOr<std::string> text = read_file(path.string());
  return text.ok() ? *text : std::string("<missing ") + path.string() + ">";
}

std::vector<int64_t> metric_steps(const fs::path& dir) {
  std::vector<int64_t> steps;
  std::ifstream in(dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) steps.push_back(nlohmann::json::parse(line)["step"].get<int64_t>());
  return steps;
}

std::set<std::string> checkpoint_entries(const fs::path& dir) {
  std::set<std::string> names;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("checkpoint", 0) == 0) names.insert(name);
  }
  return names;
}

// The uninterrupted 6-step run every other run is compared with (made once per process;
// ctest runs each test in its own process, serialised by a resource lock).
fs::path straight_run() {
  static const bool made = [] {
    fs::remove_all(kRoot / "straight");
    const RunResult straight = run(train(kRoot / "straight"));
    EXPECT_EQ(straight.exit_code, 0) << straight.output;
    return true;
  }();
  (void)made;
  return kRoot / "straight";
}

class CheckpointCrash : public ::testing::TestWithParam<std::string> {};

TEST(CheckpointLayout, KeepsTheNewestAndLinksTheLatest) {
  fs::remove_all(kRoot / "layout");
  const RunResult result = run(train(kRoot / "layout"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(checkpoint_entries(kRoot / "layout"), (std::set<std::string>{"checkpoint", "checkpoint-4", "checkpoint-6"}));
  EXPECT_TRUE(fs::is_symlink(kRoot / "layout" / "checkpoint"));
  EXPECT_EQ(fs::read_symlink(kRoot / "layout" / "checkpoint"), "checkpoint-6");
  EXPECT_EQ(*CheckpointStore((kRoot / "layout").string()).latest(), (kRoot / "layout" / "checkpoint-6").string());
}

TEST_P(CheckpointCrash, AKillAtThisPointOfTheSaveLosesNothing) {
  const std::string phase = GetParam();
  const fs::path dir = kRoot / ("crash_" + phase);
  fs::remove_all(dir);
  const RunResult killed = run(train(dir, "", "LA3_TEST_CHECKPOINT_CRASH=" + phase + ":4"));
  ASSERT_EQ(killed.exit_code, 128 + SIGKILL) << killed.output;
  // Before the rename the step-4 checkpoint is not complete: the resume starts from step 2.
  const int64_t expected = phase == "written" ? 2 : 4;
  const RunResult resumed = run(train(dir, "--resume"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("checkpoint-" + std::to_string(expected) + " at step " + std::to_string(expected)),
            std::string::npos)
      << resumed.output;
  // Bit-identical to the uninterrupted run, every step logged once, the layout tidy again.
  EXPECT_TRUE(bytes(dir / "checkpoint" / "model.safetensors") ==
              bytes(straight_run() / "checkpoint" / "model.safetensors"))
      << "the weights differ from the uninterrupted run's";
  EXPECT_TRUE(bytes(dir / "checkpoint" / "optimizer.safetensors") ==
              bytes(straight_run() / "checkpoint" / "optimizer.safetensors"))
      << "the optimizer state differs from the uninterrupted run's";
  EXPECT_EQ(metric_steps(dir), (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(checkpoint_entries(dir), (std::set<std::string>{"checkpoint", "checkpoint-4", "checkpoint-6"}));
}

INSTANTIATE_TEST_SUITE_P(Phases, CheckpointCrash,
                         ::testing::Values("written", "renamed", "linked", "swapped", "pruned"));

TEST(CheckpointLayout, ARunOfTheEarlierLayoutResumesAndIsMigrated) {
  const fs::path dir = kRoot / "legacy";
  fs::remove_all(dir);
  ASSERT_EQ(run(train(dir, "--max-steps 4")).exit_code, 0);
  // Rebuild the earlier layout: a plain `checkpoint` directory holding step 4.
  fs::remove(dir / "checkpoint");
  fs::rename(dir / "checkpoint-4", dir / "checkpoint");
  fs::remove_all(dir / "checkpoint-2");
  const RunResult resumed = run(train(dir, "--resume"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("at step 4"), std::string::npos) << resumed.output;
  EXPECT_TRUE(fs::is_symlink(dir / "checkpoint"));
  EXPECT_TRUE(bytes(dir / "checkpoint" / "model.safetensors") ==
              bytes(straight_run() / "checkpoint" / "model.safetensors"))
      << "the weights differ from the uninterrupted run's";
}

TEST(CheckpointLayout, OverwriteDeletesEveryCheckpoint) {
  const fs::path dir = kRoot / "overwrite";
  fs::remove_all(dir);
  ASSERT_EQ(run(train(dir)).exit_code, 0);
  const RunResult again = run(train(dir, "--overwrite --max-steps 2"));
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(checkpoint_entries(dir), (std::set<std::string>{"checkpoint", "checkpoint-2"}));
}

}  // namespace
}  // namespace la3
