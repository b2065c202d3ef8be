// The augment pipeline end to end against the scripted server: outputs, filter re-requests,
// give-ups, fatal errors (401 with the key never written anywhere, unreachable server),
// bad inputs that must leave no journal behind, Ctrl-C (drain) and resume, and the
// `engine` binary killed with SIGKILL mid-run and rerun.
#include "llm_client/augment_pipeline.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "data/molecule_dataset.h"
#include "engine/io/file_io.h"
#include "tests/llm_client/scripted_server.h"

extern char** environ;

namespace la3::llm {
namespace {

using testing::Behavior;
using testing::ScriptedServer;
using testing::Step;

constexpr const char* kKeyEnv = "LA3_TEST_AUGMENT_KEY";
constexpr const char* kKey = "sk-la3-test-Zq9XvY7wK3mN5pR1tU8";

std::string fresh_dir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "la3_augment_" + name + "_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// The first `count` molecules of ChEBI-20's validation split, as a training-named TSV.
std::string write_input(const std::string& dir, int count) {
  std::ifstream in(std::string(LA3_SHARED_DATA_DIR) + "/chebi20/validation.txt");
  EXPECT_TRUE(in.good());
  std::string line, out;
  for (int i = 0; i <= count && std::getline(in, line); ++i) out += line + "\n";
  const std::string path = dir + "/subset_train.txt";
  EXPECT_TRUE(write_file_atomically(path, out).ok());
  return path;
}

std::string write_template(const std::string& dir) {
  const std::string path = dir + "/template.txt";
  EXPECT_TRUE(write_file_atomically(path, "Rewrite this.\nSMILES: {smiles}\nDescription: {caption}\n").ok());
  return path;
}

AugmentConfig base_config(const std::string& dir, const ScriptedServer& server, int molecules) {
  AugmentConfig c;
  c.client.base_url = server.base_url();
  c.client.model = "test-model";
  c.client.timeout_seconds = 2;
  c.client.max_in_flight = 8;
  c.client.max_attempts = 3;
  c.client.backoff_base_seconds = 0.01;
  c.client.backoff_max_seconds = 0.05;
  c.api_key_env = kKeyEnv;
  c.input = write_input(dir, molecules);
  c.template_path = write_template(dir);
  c.output_jsonl = dir + "/out/augmented.jsonl";
  c.journal_fsync_interval_ms = 50;
  c.k = 2;
  // The scripted replies repeat the caption: turn the near-duplicate checks off.
  c.filter.max_rouge_l_to_original = c.filter.max_jaccard_to_original = 2.0;
  c.filter.max_rouge_l_to_sibling = c.filter.max_jaccard_to_sibling = 2.0;
  c.price_input_per_million = 1.0;
  c.price_output_per_million = 2.0;
  EXPECT_TRUE(c.finalize().ok());
  return c;
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  }
  return lines;
}

std::string slurp(const std::string& path) {
  absl::StatusOr<std::string> text = read_file(path);
  return text.ok() ? *text : std::string();
}

class AugmentPipeline : public ::testing::Test {
 protected:
  void SetUp() override { ::setenv(kKeyEnv, kKey, 1); }
  void TearDown() override { ::unsetenv(kKeyEnv); }
};

TEST_F(AugmentPipeline, WritesKRewritesPerMoleculeWithProvenance) {
  ScriptedServer server;
  const std::string dir = fresh_dir("basic");
  AugmentConfig c = base_config(dir, server, 12);
  StopFlag stop{0};
  const AugmentOutcome outcome = run_augment(c, stop);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status;
  EXPECT_TRUE(outcome.summary.complete);
  EXPECT_EQ(outcome.summary.kept, 24);
  EXPECT_EQ(server.request_count(), 24u);
  EXPECT_EQ(server.requests()[0].authorization, std::string("Bearer ") + kKey);
  const auto lines = read_jsonl(c.output_jsonl);
  ASSERT_EQ(lines.size(), 12u);
  for (const auto& line : lines) {
    EXPECT_EQ(line["rewrites"].size(), 2u);
    EXPECT_EQ(line["model"], "test-model");
    EXPECT_EQ(line["provenance"]["attempts"], 2);
    EXPECT_GT(line["provenance"]["prompt_tokens"].get<int64_t>(), 0);
    EXPECT_EQ(line["provenance"]["template_sha256"].get<std::string>().size(), 64u);
  }
  // Both outputs read back with the dataset readers.
  absl::StatusOr<std::vector<MoleculeRecord>> jsonl = read_augmented_jsonl(c.output_jsonl, ReadOptions{});
  ASSERT_TRUE(jsonl.ok()) << jsonl.status();
  absl::StatusOr<std::vector<MoleculeRecord>> csv = read_lachebi20_csv(c.output_csv, ReadOptions{});
  ASSERT_TRUE(csv.ok()) << csv.status();
  ASSERT_EQ(csv->size(), 12u);
  EXPECT_EQ((*csv)[3].captions, (*jsonl)[3].captions);
  EXPECT_GT(outcome.summary.cost, 0.0);
  const std::string table = format_summary(outcome.summary, c);
  EXPECT_NE(table.find("kept (this run)              24"), std::string::npos) << table;

  // The same command again: nothing is requested, the outputs come out identical.
  const std::string before = slurp(c.output_jsonl);
  const AugmentOutcome again = run_augment(c, stop);
  ASSERT_TRUE(again.status.ok()) << again.status;
  EXPECT_EQ(server.request_count(), 24u);
  EXPECT_EQ(again.summary.resumed, 24);
  EXPECT_EQ(slurp(c.output_jsonl), before);
}

TEST_F(AugmentPipeline, RejectedRewritesAreReRequestedAndEveryVerdictRecorded) {
  ScriptedServer server;
  // Every request's first answer starts with a chat preamble; re-requests are fine.
  std::map<std::string, int> seen;
  std::mutex mutex;
  server.set_reply([&](const std::string& prompt, int index, int choice) {
    std::lock_guard<std::mutex> lock(mutex);
    const std::string reply = ScriptedServer::default_reply(prompt, index, choice);
    return seen[ScriptedServer::caption_of(prompt)]++ == 0 ? "Here is the rewrite: " + reply : reply;
  });
  const std::string dir = fresh_dir("rejects");
  AugmentConfig c = base_config(dir, server, 5);
  c.k = 1;
  c.client.max_in_flight = 1;
  StopFlag stop{0};
  const AugmentOutcome outcome = run_augment(c, stop);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status;
  EXPECT_EQ(outcome.summary.kept, 5);
  EXPECT_EQ(outcome.summary.rejected.at("preamble"), 5);
  EXPECT_EQ(server.request_count(), 10u);
  int rejected_lines = 0;
  for (const auto& e : read_jsonl(c.journal)) {
    if (e["type"] == "verdict" && !e["kept"].get<bool>()) {
      ++rejected_lines;
      EXPECT_EQ(e["reason"], "preamble");
    }
  }
  EXPECT_EQ(rejected_lines, 5);
  for (const auto& line : read_jsonl(c.output_jsonl)) EXPECT_EQ(line["provenance"]["rejected"].size(), 1u);
}

TEST_F(AugmentPipeline, GivesUpARewriteAfterTheRejectionLimit) {
  ScriptedServer server;
  server.set_reply([](const std::string&, int, int) { return std::string(""); });
  const std::string dir = fresh_dir("giveup");
  AugmentConfig c = base_config(dir, server, 3);
  c.max_rejections = 2;
  StopFlag stop{0};
  const AugmentOutcome outcome = run_augment(c, stop);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status;
  EXPECT_EQ(outcome.summary.gave_up, 6);
  EXPECT_EQ(outcome.summary.rejected.at("empty"), 18);
  EXPECT_EQ(server.request_count(), 18u);
  for (const auto& line : read_jsonl(c.output_jsonl)) {
    EXPECT_TRUE(line["rewrites"].empty());
    EXPECT_EQ(line["provenance"]["gave_up_samples"].size(), 2u);
  }
  // Given-up rewrites are final: a rerun asks for nothing.
  ASSERT_TRUE(run_augment(c, stop).status.ok());
  EXPECT_EQ(server.request_count(), 18u);
}

TEST_F(AugmentPipeline, A401StopsTheRunAndTheKeyIsInNoFileAndNoMessage) {
  ScriptedServer server;
  server.script({Step{}, Step{}});
  server.set_default(Step{Behavior::kUnauthorized});
  const std::string dir = fresh_dir("unauthorized");
  AugmentConfig c = base_config(dir, server, 10);
  c.client.max_in_flight = 1;
  StopFlag stop{0};
  const AugmentOutcome outcome = run_augment(c, stop);
  ASSERT_FALSE(outcome.status.ok());
  const std::string message(outcome.status.message());
  EXPECT_NE(message.find("HTTP 401"), std::string::npos) << message;
  EXPECT_NE(message.find(kKeyEnv), std::string::npos) << message;  // says where the key comes from
  EXPECT_NE(message.find("rerun the same command to resume"), std::string::npos) << message;
  EXPECT_EQ(message.find(kKey), std::string::npos) << message;
  EXPECT_EQ(server.request_count(), 3u);  // two good replies, one 401, nothing after it
  EXPECT_FALSE(std::filesystem::exists(c.output_jsonl));
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) {
      EXPECT_EQ(slurp(entry.path().string()).find(kKey), std::string::npos) << entry.path();
    }
  }
  EXPECT_EQ(read_jsonl(c.journal).size(), 2u);  // the completed rewrites are kept
}

TEST_F(AugmentPipeline, AnUnreachableServerIsAClearErrorAndWritesNothing) {
  ScriptedServer server;
  const std::string dir = fresh_dir("unreachable");
  AugmentConfig c = base_config(dir, server, 4);
  c.client.base_url = "http://127.0.0.1:1/v1";
  c.client.max_attempts = 2;
  StopFlag stop{0};
  const AugmentOutcome outcome = run_augment(c, stop);
  EXPECT_EQ(outcome.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(std::string(outcome.status.message()).find("127.0.0.1:1"), std::string::npos) << outcome.status;
  EXPECT_FALSE(std::filesystem::exists(c.output_jsonl));
  EXPECT_TRUE(slurp(c.journal).empty());
}

TEST_F(AugmentPipeline, BadInputsFailBeforeTheJournalIsCreated) {
  ScriptedServer server;
  const std::string dir = fresh_dir("badinput");
  StopFlag stop{0};
  {
    AugmentConfig c = base_config(dir, server, 3);
    const std::string bad = dir + "/bad_train.txt";
    ASSERT_TRUE(write_file_atomically(bad, "CID\tSMILES\tdescription\n1\tCCO\tThe molecule is ethanol.\n2\tonly two fields\n").ok());
    c.input = bad;
    const AugmentOutcome outcome = run_augment(c, stop);
    EXPECT_NE(std::string(outcome.status.message()).find("bad_train.txt:3"), std::string::npos) << outcome.status;
    EXPECT_FALSE(std::filesystem::exists(c.journal));
  }
  {
    AugmentConfig c = base_config(dir, server, 3);
    c.template_path = dir + "/no_placeholders.txt";
    ASSERT_TRUE(write_file_atomically(c.template_path, "Rewrite the caption {caption} nicely.\n").ok());
    const AugmentOutcome outcome = run_augment(c, stop);
    EXPECT_NE(std::string(outcome.status.message()).find("no_placeholders.txt: the prompt template has no {smiles}"),
              std::string::npos)
        << outcome.status;
    EXPECT_FALSE(std::filesystem::exists(c.journal));
  }
  {
    AugmentConfig c = base_config(dir, server, 3);
    c.input = std::string(LA3_SHARED_DATA_DIR) + "/chebi20/validation.txt";
    const AugmentOutcome outcome = run_augment(c, stop);
    EXPECT_NE(std::string(outcome.status.message()).find("evaluation split (validation)"), std::string::npos)
        << outcome.status;
    EXPECT_FALSE(std::filesystem::exists(c.journal));
  }
  EXPECT_EQ(server.request_count(), 0u);
}

TEST_F(AugmentPipeline, InterruptDrainsInFlightRequestsAndTheRerunCompletes) {
  ScriptedServer server;
  server.set_latency_ms(30);
  const std::string dir = fresh_dir("interrupt");
  AugmentConfig c = base_config(dir, server, 20);
  c.client.max_in_flight = 4;
  StopFlag stop{0};
  const AugmentOutcome first = run_augment(c, stop, [&](const AugmentProgress& p) {
    if (p.done >= 6) stop.store(1);
  });
  ASSERT_TRUE(absl::IsCancelled(first.status)) << first.status;
  EXPECT_NE(std::string(first.status.message()).find("rerun the same command to resume"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(c.output_jsonl));
  const size_t journaled = read_jsonl(c.journal).size();
  EXPECT_EQ(journaled, server.request_count());  // every request sent was finished and journaled
  stop.store(0);
  const AugmentOutcome second = run_augment(c, stop);
  ASSERT_TRUE(second.status.ok()) << second.status;
  EXPECT_EQ(second.summary.resumed, static_cast<int64_t>(journaled));
  EXPECT_EQ(server.request_count(), 40u);
  EXPECT_EQ(read_jsonl(c.journal).size(), 40u);
}

TEST_F(AugmentPipeline, ATornJournalLineIsCutOffOnResume) {
  ScriptedServer server;
  const std::string dir = fresh_dir("torn");
  AugmentConfig c = base_config(dir, server, 3);
  StopFlag stop{0};
  ASSERT_TRUE(run_augment(c, stop).status.ok());
  // Simulate a kill -9 in the middle of the last write.
  std::string journal = slurp(c.journal);
  journal.resize(journal.size() - 40);
  ASSERT_TRUE(write_file_atomically(c.journal, journal).ok());
  const AugmentOutcome outcome = run_augment(c, stop);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status;
  EXPECT_GT(outcome.summary.torn_bytes, 0);
  EXPECT_EQ(server.request_count(), 7u);  // only the torn rewrite is asked for again
  EXPECT_EQ(read_jsonl(c.journal).size(), 6u);
}

// `engine augment` as a child process, killed with SIGKILL after some rewrites were
// journaled, then rerun: every molecule ends with k rewrites exactly once, and no rewrite
// completed before the kill is requested again.
TEST_F(AugmentPipeline, SurvivesSigkillAndResumesWithoutRepeatingCompletedRewrites) {
  ScriptedServer server;
  server.set_latency_ms(25);
  const std::string dir = fresh_dir("sigkill");
  const int molecules = 40, k = 2;
  const std::string input = write_input(dir, molecules);
  const std::string config = dir + "/augment.yaml";
  ASSERT_TRUE(write_file_atomically(config, R"(endpoint:
  base_url: )" + server.base_url() + R"(
  model: test-model
  api_key_env: LA3_TEST_AUGMENT_KEY
  timeout_seconds: 2
prompt:
  template: )" + write_template(dir) + R"(
concurrency:
  max_in_flight: 4
retry:
  backoff_base_seconds: 0.01
data:
  input: )" + input + R"(
  k: 2
output:
  jsonl: )" + dir + R"(/out/augmented.jsonl
filter:
  max_rouge_l_to_original: 2
  max_jaccard_to_original: 2
  max_rouge_l_to_sibling: 2
  max_jaccard_to_sibling: 2
)").ok());
  const std::string journal = dir + "/out/augmented.journal.jsonl";
  auto spawn_engine = [&](const std::string& log) {
    const std::string engine = LA3_ENGINE_BINARY;
    std::vector<std::string> args = {engine, "augment", "--config", config};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    pid_t pid = 0;
    EXPECT_EQ(posix_spawn(&pid, engine.c_str(), &actions, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
    return pid;
  };
  auto journal_lines = [&] {
    const std::string text = slurp(journal);
    return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
  };

  const pid_t first = spawn_engine(dir + "/run1.log");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (journal_lines() < 20 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(first, &status, 0), first);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the first run finished before it could be killed";
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // requests still on the wire reach the server
  const size_t requests_before = server.request_count();

  // What the journal holds after the kill: completed (kept) rewrites per caption.
  std::map<std::string, std::set<int>> completed;
  std::map<std::string, std::string> caption_by_cid;
  {
    absl::StatusOr<std::vector<MoleculeRecord>> records = read_chebi20_tsv(input, ReadOptions{});
    ASSERT_TRUE(records.ok());
    for (const auto& r : *records) caption_by_cid[r.cid] = r.captions[0];
    std::istringstream lines(slurp(journal));
    for (std::string line; std::getline(lines, line);) {
      const nlohmann::json e = nlohmann::json::parse(line, nullptr, false);
      if (e.is_discarded()) continue;  // a torn last line
      if (e["kept"].get<bool>()) completed[caption_by_cid[e["cid"].get<std::string>()]].insert(e["sample"].get<int>());
    }
  }
  ASSERT_GE(completed.size(), 5u);

  const pid_t second = spawn_engine(dir + "/run2.log");
  ASSERT_EQ(::waitpid(second, &status, 0), second);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << slurp(dir + "/run2.log");

  // The second run asked, per molecule, exactly for the rewrites the journal lacked.
  std::map<std::string, int> asked;
  const auto requests = server.requests();
  for (size_t i = requests_before; i < requests.size(); ++i) ++asked[ScriptedServer::caption_of(requests[i].user_prompt)];
  for (const auto& [cid, caption] : caption_by_cid) {
    const int done = completed.count(caption) ? static_cast<int>(completed[caption].size()) : 0;
    EXPECT_EQ(asked[caption], k - done) << "CID " << cid;
  }
  // Every molecule x k rewrites exactly once, in the outputs and in the journal.
  const auto lines = read_jsonl(dir + "/out/augmented.jsonl");
  ASSERT_EQ(lines.size(), static_cast<size_t>(molecules));
  for (const auto& line : lines) EXPECT_EQ(line["rewrites"].size(), static_cast<size_t>(k));
  std::set<std::pair<std::string, int>> kept;
  for (const auto& e : read_jsonl(journal)) {
    if (e["kept"].get<bool>()) {
      EXPECT_TRUE(kept.insert({e["cid"].get<std::string>(), e["sample"].get<int>()}).second);
    }
  }
  EXPECT_EQ(kept.size(), static_cast<size_t>(molecules * k));
  for (const std::string& log : {dir + "/run1.log", dir + "/run2.log"}) EXPECT_EQ(slurp(log).find(kKey), std::string::npos);
}

}  // namespace
}  // namespace la3::llm
