// Throughput of the augmentation client against the local scripted OpenAI-compatible
// server (tests/llm_client/scripted_server.h, cpp-httplib on 127.0.0.1, in this process):
//
//   BM_ChatClient/<in_flight>/<latency_ms>    requests through ChatClient alone
//   BM_AugmentPipeline/<in_flight>/<latency_ms>/<fsync_ms>
//       `engine augment`'s pipeline: prompt rendering, HTTP, filter, journal (fdatasync after
//       every line when fsync_ms = 0, else at most every fsync_ms), final JSONL + CSV
//
// Counters: requests_per_s / rewrites_per_s (wall clock), client_cpu_us (CPU time of the
// client thread per request: libcurl + JSON + our loop; the server runs on other threads).
// The server and client share the machine's 2 cores, so the zero-latency figures are a
// floor for the client, not a server benchmark. cpp-httplib 0.11.4 (Debian) listens with a
// backlog of 5: opening 64 connections at once drops SYNs and costs 1 s retransmits, so
// BM_ChatClient warms its connections up first (they stay in the client's libcurl multi
// handle between runs); the pipeline bench opens fresh ones and pays that once per run.
// The pipeline rewrites the first 1000 molecules of data/chebi20/validation.txt when
// scripts/fetch_chebi20.sh has fetched it, else the bundled data/sample/train.jsonl (320).
#include <benchmark/benchmark.h>
#include <time.h>

#include <filesystem>
#include <memory>
#include <string>

#include "llm_client/augment_pipeline.h"
#include "llm_client/chat_client.h"
#include "tests/llm_client/scripted_server.h"

namespace {

using la3::llm::testing::ScriptedServer;

// ChEBI-20's validation split when fetched, else the bundled sample (its label says which).
std::string pipeline_input() {
  const std::string chebi20 = std::string(LA3_SOURCE_DIR) + "/data/chebi20/validation.txt";
  if (std::filesystem::exists(chebi20)) return chebi20;
  return std::string(LA3_SOURCE_DIR) + "/data/sample/train.jsonl";
}

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

ScriptedServer& server_with_latency(int latency_ms) {
  static std::unique_ptr<ScriptedServer> server;
  if (!server) server = std::make_unique<ScriptedServer>(/*threads=*/160);
  server->set_latency_ms(latency_ms);
  return *server;
}

void BM_ChatClient(benchmark::State& state) {
  const int in_flight = static_cast<int>(state.range(0));
  const int latency = static_cast<int>(state.range(1));
  ScriptedServer& server = server_with_latency(latency);
  const int requests = latency == 0 ? (in_flight == 1 ? 1000 : 4000) : 1280;
  la3::llm::ClientOptions o;
  o.base_url = server.base_url();
  o.model = "bench";
  o.max_in_flight = in_flight;
  double cpu = 0;
  int64_t total = 0;
  la3::llm::ChatClient client(o);
  auto run = [&](int count) {
    int issued = 0;
    la3::llm::StopFlag stop{0};
    return client.run(
        [&]() -> std::optional<la3::llm::ChatRequest> {
          if (issued == count) return std::nullopt;
          la3::llm::ChatRequest r;
          r.id = static_cast<uint64_t>(issued++);
          r.user = "Rewrite.\nSMILES: CCO\nDescription: The molecule is a primary alcohol that is ethane substituted by a hydroxy group at position 1.";
          return r;
        },
        [&](la3::llm::ChatResult&& r) { benchmark::DoNotOptimize(r.choices.size()); }, stop);
  };
  if (const absl::Status warm = run(4 * in_flight); !warm.ok()) state.SkipWithError(std::string(warm.message()).c_str());
  for (auto _ : state) {
    const double cpu_start = thread_cpu_seconds();
    const absl::Status status = run(requests);
    cpu += thread_cpu_seconds() - cpu_start;
    total += requests;
    if (!status.ok()) state.SkipWithError(std::string(status.message()).c_str());
  }
  state.counters["requests_per_s"] = benchmark::Counter(static_cast<double>(total), benchmark::Counter::kIsRate);
  state.counters["client_cpu_us"] = cpu / static_cast<double>(total) * 1e6;
}
BENCHMARK(BM_ChatClient)
    ->ArgNames({"in_flight", "latency_ms"})
    ->Args({1, 0})
    ->Args({16, 0})
    ->Args({64, 0})
    ->Args({16, 50})
    ->Args({64, 50})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(2);

void BM_AugmentPipeline(benchmark::State& state) {
  const int in_flight = static_cast<int>(state.range(0));
  const int latency = static_cast<int>(state.range(1));
  ScriptedServer& server = server_with_latency(latency);
  const std::string dir = std::filesystem::temp_directory_path().string() + "/la3_augment_bench";
  la3::llm::AugmentConfig c;
  c.client.base_url = server.base_url();
  c.client.model = "bench";
  c.client.max_in_flight = in_flight;
  c.input = pipeline_input();
  state.SetLabel(c.input.substr(c.input.rfind("/data/") + 1));
  c.allow_eval_split = true;
  c.limit = 1000;
  c.k = 2;
  c.template_path = std::string(LA3_SOURCE_DIR) + "/configs/prompts/la3_rewrite.txt";
  c.output_jsonl = dir + "/augmented.jsonl";
  c.journal_fsync_interval_ms = static_cast<int>(state.range(2));
  // The scripted replies repeat the caption: near-duplicate checks off, the rest on.
  c.filter.max_rouge_l_to_original = c.filter.max_jaccard_to_original = 2;
  c.filter.max_rouge_l_to_sibling = c.filter.max_jaccard_to_sibling = 2;
  if (!c.finalize().ok()) state.SkipWithError("config");
  double cpu = 0;
  int64_t rewrites = 0;
  for (auto _ : state) {
    std::filesystem::remove_all(dir);
    la3::llm::StopFlag stop{0};
    const double cpu_start = thread_cpu_seconds();
    const la3::llm::AugmentOutcome outcome = la3::llm::run_augment(c, stop);
    cpu += thread_cpu_seconds() - cpu_start;
    if (!outcome.status.ok()) state.SkipWithError(std::string(outcome.status.message()).c_str());
    rewrites += outcome.summary.kept + outcome.summary.gave_up;
  }
  std::filesystem::remove_all(dir);
  state.counters["rewrites_per_s"] = benchmark::Counter(static_cast<double>(rewrites), benchmark::Counter::kIsRate);
  state.counters["client_cpu_us"] = cpu / static_cast<double>(std::max<int64_t>(1, rewrites)) * 1e6;
}
BENCHMARK(BM_AugmentPipeline)
    ->ArgNames({"in_flight", "latency_ms", "fsync_ms"})
    ->Args({16, 0, 100})
    ->Args({64, 0, 100})
    ->Args({16, 50, 100})
    ->Args({64, 50, 100})
    ->Args({64, 0, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(1);

}  // namespace
