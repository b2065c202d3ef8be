// Generation throughput of a MolT5-small-shaped model (random weights) on the CPU: greedy
// and beam 5, batch 1 and 32, 64 input tokens, exactly 32 new tokens per sequence (min_length
// forces the length, since random weights would stop at arbitrary points).
//
//   build/bench/la3_bench_generation                 # 1 thread
//   LA3_THREADS=2 build/bench/la3_bench_generation
#include <benchmark/benchmark.h>

#include <random>

#include "engine/backend.h"
#include "model/generation.h"

namespace {

using la3::Tensor;

const la3::T5Model& molt5_small() {
  static const la3::T5Model model = *la3::T5Model::create(*la3::T5Config::preset("molt5-small"), 1);
  return model;
}

void BM_Generate(benchmark::State& state) {
  const int64_t batch = state.range(0);
  const int beams = static_cast<int>(state.range(1));
  constexpr int64_t kSourceLength = 64, kNewTokens = 32;
  std::mt19937 rng(4);
  std::uniform_int_distribution<int64_t> dist(2, 31999);
  std::vector<int64_t> ids(static_cast<size_t>(batch * kSourceLength));
  for (int64_t& id : ids) id = dist(rng);
  const Tensor input_ids = Tensor::from_vector<int64_t>({batch, kSourceLength}, ids);
  la3::GenerationOptions options;
  options.num_beams = beams;
  options.max_new_tokens = kNewTokens;
  options.min_length = kNewTokens + 1;  // never stop early: every sequence has 32 new tokens
  const la3::T5Model& model = molt5_small();
  for (auto _ : state) {
    auto out = la3::generate(model, input_ids, Tensor(), options);
    if (!out.ok()) state.SkipWithError(std::string(out.status().message()).c_str());
    benchmark::DoNotOptimize(out);
  }
  state.counters["sentences_per_s"] = benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["tokens_per_s"] =
      benchmark::Counter(static_cast<double>(batch * kNewTokens), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Generate)->ArgNames({"batch", "beams"})->Args({1, 1})->Args({1, 5})->Args({32, 1})->Args({32, 5})
    ->Unit(benchmark::kSecond)->Iterations(1);

}  // namespace
