// `engine score`: the mean loss equals the validation loss `engine train` logged for the same
// checkpoint (bit for bit), per-row NLLs add up to the losses (mean and sequence_mixture
// recomputed from them), k = 0 makes every mode plain cross-entropy, and bad input is named.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "tests/support/run_command.h"

namespace la3 {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

const std::string kSource = LA3_SOURCE_DIR;
const std::string kEngine = LA3_ENGINE_BINARY;
const std::string kValidation = kSource + "/data/sample/validation.jsonl";

std::string temp_dir() {
  const std::string dir = ::testing::TempDir() + "/la3_score_cli";
  fs::create_directories(dir);
  return dir;
}

// Two training steps of the tiny fixture with a validation at step 2 (ctest's fixture
// cli.score_train_run trains it once: tests/CMakeLists.txt).
const std::string& trained_run() {
  static const std::string run = LA3_SCORE_RUN;
  return run;
}

double logged_validation_loss(const std::string& run, int64_t step) {
  std::ifstream in(run + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json row = nlohmann::json::parse(line);
    if (row.contains("validation_loss") && row["step"] == step) return row["validation_loss"].get<double>();
  }
  ADD_FAILURE() << "no validation loss at step " << step << " in " << run;
  return NAN;
}

testing::RunResult score(const std::string& flags) {
  return testing::run_command(kEngine + " score --checkpoint " + trained_run() + "/checkpoint-2 " + flags);
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

TEST(ScoreCli, MeanLossIsTheTrainersValidationLossBitForBit) {
  const std::string out = temp_dir() + "/losses.json";
  // train_tiny.yaml: batch_size 4, k 2 (the default), the sample validation split.
  const testing::RunResult run = score("--input " + kValidation + " --loss mean --batch-size 4 --k 2 --out " + out);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const nlohmann::json report = read_json(out);
  EXPECT_EQ(report["losses"]["mean"]["loss"].get<double>(), logged_validation_loss(trained_run(), 2));
  EXPECT_EQ(report["k"], 2);
  EXPECT_EQ(report["molecules"], 40);
  EXPECT_EQ(report["rows"], 120);
}

TEST(ScoreCli, PerRowNllsAddUpToTheMeanAndSequenceMixtureLosses) {
  const std::string out = temp_dir() + "/all.json", rows_path = temp_dir() + "/rows.jsonl";
  const testing::RunResult run = score("--input " + kValidation + " --per-row " + rows_path + " --out " + out);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const nlohmann::json losses = read_json(out)["losses"];
  ASSERT_TRUE(losses.contains("mean") && losses.contains("token_mixture") && losses.contains("sequence_mixture"));
  const std::vector<nlohmann::json> rows = read_jsonl(rows_path);
  ASSERT_EQ(rows.size(), 120u);
  double nll = 0.0, tokens = 0.0;
  std::map<std::string, std::vector<std::pair<double, double>>> by_molecule;  // cid -> (nll, tokens) per caption
  for (const nlohmann::json& row : rows) {
    nll += row["nll"].get<double>();
    tokens += row["target_tokens"].get<double>();
    by_molecule[row["cid"]].emplace_back(row["nll"].get<double>(), row["target_tokens"].get<double>());
    EXPECT_THAT(row["source"].get<std::string>(), HasSubstr("validation.jsonl:"));
  }
  EXPECT_NEAR(nll / tokens, losses["mean"]["loss"].get<double>(), 1e-5 * nll / tokens);
  // sequence_mixture: L_g = -log(mean_j exp(-nll_j)), normalised by the mean target length.
  double mixture = 0.0, normaliser = 0.0;
  for (const auto& [cid, captions] : by_molecule) {
    ASSERT_EQ(captions.size(), 3u) << cid;
    double most = -INFINITY, length = 0.0;
    for (const auto& [row_nll, row_tokens] : captions) {
      most = std::max(most, -row_nll);
      length += row_tokens;
    }
    double sum = 0.0;
    for (const auto& [row_nll, row_tokens] : captions) sum += std::exp(-row_nll - most);
    mixture += -(most + std::log(sum / static_cast<double>(captions.size())));
    normaliser += length / static_cast<double>(captions.size());
  }
  EXPECT_NEAR(mixture / normaliser, losses["sequence_mixture"]["loss"].get<double>(), 1e-5 * mixture / normaliser);
  // The mixtures never exceed the mean loss of their rows by Jensen; here they are below it.
  EXPECT_LT(losses["token_mixture"]["loss"].get<double>(), losses["mean"]["loss"].get<double>());
}

TEST(ScoreCli, WithKZeroEveryModeIsPlainCrossEntropy) {
  const std::string out = temp_dir() + "/k0.json";
  ASSERT_EQ(score("--input " + kValidation + " --k 0 --out " + out).exit_code, 0);
  const nlohmann::json losses = read_json(out)["losses"];
  const double mean = losses["mean"]["loss"].get<double>();
  EXPECT_NEAR(losses["token_mixture"]["loss"].get<double>(), mean, 1e-5 * mean);
  EXPECT_NEAR(losses["sequence_mixture"]["loss"].get<double>(), mean, 1e-5 * mean);
  EXPECT_EQ(losses["mean"]["rows"], 40);
}

TEST(ScoreCli, BadInputIsNamed) {
  const std::vector<std::tuple<std::string, int, std::string>> cases = {
      {"--input " + kValidation + " --direction smiles2caption --loss token_mixture", 2,
       "loss token_mixture needs caption2smiles"},
      {"--input " + kValidation + " --loss average", 2, "--loss: unknown caption loss 'average'"},
      {"--input " + kValidation + " --batch-size 0", 2, "--batch-size '0': expected an integer >= 1"},
      {"--input " + kValidation + " --k -1", 2, "--k '-1': expected an integer >= 0"},
      {"--input " + kValidation + " --bad-rows maybe", 2, "--bad-rows 'maybe': expected fail or skip"},
      {"--input /nonexistent/data.jsonl", 1, "/nonexistent/data.jsonl: cannot open dataset file"},
      {"--input " + kSource + "/data/sample", 1, "data/sample: is a directory, expected a dataset file"},
      {"", 2, "--input is required"},
  };
  for (const auto& [flags, code, message] : cases) {
    const testing::RunResult run = score(flags);
    EXPECT_EQ(run.exit_code, code) << flags << "\n" << run.output;
    EXPECT_THAT(run.output, HasSubstr(message)) << flags;
  }
  const testing::RunResult missing =
      testing::run_command(kEngine + " score --checkpoint /nonexistent --input " + kValidation);
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.output, HasSubstr("/nonexistent/config.json"));
}

}  // namespace
}  // namespace la3
