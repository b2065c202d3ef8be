// One MolT5-small training step on the CPU (forward, backward, AdamW) at random weights:
// d_model 512, d_ff 1024, 6 heads x 64, 8+8 layers, vocab 32128 (about 77M parameters).
//
//   build/bench/la3_bench_train_step                  # 1 thread
//   LA3_THREADS=2 build/bench/la3_bench_train_step
//
// Reports tokens/s (source + target tokens of the batch) and the model FLOP rate, counting
// 6 x parameters x tokens per step (forward 2, backward 4), the usual estimate.
#include <benchmark/benchmark.h>

#include <random>

#include "engine/autograd/tape.h"
#include "engine/backend.h"
#include "engine/optim/adamw.h"
#include "model/t5_model.h"

namespace {

using la3::Tensor;

Tensor random_ids(int64_t rows, int64_t length, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> dist(2, vocab - 1);
  std::vector<int64_t> ids(static_cast<size_t>(rows * length));
  for (int64_t& id : ids) id = dist(rng);
  return Tensor::from_vector<int64_t>({rows, length}, ids);
}

void BM_MolT5SmallTrainStep(benchmark::State& state) {
  const int64_t batch = state.range(0), source_length = state.range(1), target_length = state.range(2);
  la3::T5Config config = *la3::T5Config::preset("molt5-small");
  la3::T5Model model = *la3::T5Model::create(config, 1);
  model.set_requires_grad(true);
  la3::AdamW optimizer(model.parameter_list(), la3::AdamWOptions{1e-4, 0.9, 0.999, 1e-8, 0.01});
  const Tensor input_ids = random_ids(batch, source_length, config.vocab_size, 2);
  const Tensor labels = random_ids(batch, target_length, config.vocab_size, 3);
  const Tensor mask = Tensor::full({batch, source_length}, 1.0, la3::DType::kI64);
  uint64_t step = 0;
  for (auto _ : state) {
    optimizer.zero_grad();
    la3::Tape tape;
    la3::T5ForwardOptions forward;
    forward.training = true;
    forward.step = step++;
    const Tensor loss = model.loss(input_ids, mask, labels, forward);
    tape.backward(loss);
    optimizer.step();
    benchmark::DoNotOptimize(loss.item());
  }
  const double tokens = static_cast<double>(batch * (source_length + target_length));
  state.counters["tokens_per_s"] = benchmark::Counter(tokens, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["model_flops"] = benchmark::Counter(6.0 * static_cast<double>(model.parameter_count()) * tokens,
                                                     benchmark::Counter::kIsIterationInvariantRate,
                                                     benchmark::Counter::kIs1000);
  state.counters["parameters"] = static_cast<double>(model.parameter_count());
}
BENCHMARK(BM_MolT5SmallTrainStep)->Args({4, 128, 128})->Unit(benchmark::kSecond)->Iterations(2);

}  // namespace
