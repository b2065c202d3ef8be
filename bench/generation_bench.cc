// Generation throughput of a MolT5-small-shaped model (random weights) on the CPU: greedy
// and beam 5, batch 1 and 32, 64 input tokens, exactly 32 new tokens per sequence (min_length
// forces the length, since random weights would stop at arbitrary points).
//
// BM_GenerateDeviceToHost runs on cuda-emu (the CUDA backend, kernels emulated on the CPU) and
// counts what a decoding step copies back from the device (Backend::device_to_host_bytes),
// with MolT5-small's vocabulary and widths but one layer per stack (the emulation is slow):
// the bytes, not the emulated time, are what it measures.
//
//   build/bench/la3_bench_generation                 # 1 thread
//   LA3_THREADS=2 build/bench/la3_bench_generation
//   build/bench/la3_bench_generation --benchmark_filter=DeviceToHost
#include <benchmark/benchmark.h>

#include <random>

#include "engine/backend.h"
#include "engine/cuda/cuda_devices.h"
#include "model/generation.h"

namespace {

using la3::Tensor;

const la3::T5Model& molt5_small() {
  static const la3::T5Model model = *la3::T5Model::create(*la3::T5Config::preset("molt5-small"), 1);
  return model;
}

Tensor random_inputs(int64_t batch, int64_t length) {
  std::mt19937 rng(4);
  std::uniform_int_distribution<int64_t> dist(2, 31999);
  std::vector<int64_t> ids(static_cast<size_t>(batch * length));
  for (int64_t& id : ids) id = dist(rng);
  return Tensor::from_vector<int64_t>({batch, length}, ids);
}

la3::GenerationOptions fixed_length(int beams, int64_t new_tokens) {
  la3::GenerationOptions options;
  options.num_beams = beams;
  options.max_new_tokens = new_tokens;
  options.min_length = new_tokens + 1;  // never stop early: every sequence has new_tokens tokens
  return options;
}

void BM_Generate(benchmark::State& state) {
  const int64_t batch = state.range(0);
  const int beams = static_cast<int>(state.range(1));
  constexpr int64_t kSourceLength = 64, kNewTokens = 32;
  const Tensor input_ids = random_inputs(batch, kSourceLength);
  const la3::GenerationOptions options = fixed_length(beams, kNewTokens);
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

void BM_GenerateDeviceToHost(benchmark::State& state) {
  const int64_t batch = state.range(0);
  const int beams = static_cast<int>(state.range(1));
  constexpr int64_t kSourceLength = 32, kNewTokens = 8;
  la3::register_cuda_emu_backend();
  const la3::Device emu{la3::DeviceType::kCudaEmu, 0};
  la3::Backend& backend = la3::backend_for(emu);
  la3::T5Config config = *la3::T5Config::preset("molt5-small");
  config.num_layers = config.num_decoder_layers = 1;
  const la3::T5Model model = la3::T5Model::create(config, 1)->to_device(emu);
  const Tensor input_ids = random_inputs(batch, kSourceLength);
  const la3::GenerationOptions options = fixed_length(beams, kNewTokens);
  uint64_t bytes = 0;
  for (auto _ : state) {
    const uint64_t before = backend.device_to_host_bytes();
    auto out = la3::generate(model, input_ids, Tensor(), options);
    if (!out.ok()) state.SkipWithError(std::string(out.status().message()).c_str());
    bytes += backend.device_to_host_bytes() - before;
  }
  state.counters["d2h_bytes_per_step"] =
      static_cast<double>(bytes) / static_cast<double>(state.iterations() * kNewTokens);
  state.counters["logits_bytes_per_step"] = static_cast<double>(batch * beams * config.vocab_size * 4);
}
BENCHMARK(BM_GenerateDeviceToHost)->ArgNames({"batch", "beams"})->Args({4, 1})->Args({4, 5})
    ->Unit(benchmark::kSecond)->Iterations(1);

}  // namespace
