// One MolT5-small training step on the CPU at random weights: the trainer's own step
// (model/train_step.h: forward with the k+1-caption loss over the micro-batches, backward,
// gradient clipping, AdamW). d_model 512, d_ff 1024, 6 heads x 64, 8+8 layers, vocab 32128
// (about 77M parameters).
//
//   build/bench/la3_bench_train_step                  # 1 thread
//   LA3_THREADS=2 build/bench/la3_bench_train_step
//
// Arguments: groups per micro-batch, source length, target length, captions per group (k+1;
// 1 = loss mean, else token_mixture: k+1 captions of one molecule share its SMILES target),
// micro-batches per step. Reports tokens/s (source + target tokens of the step) and the model
// FLOP rate, counting 6 x parameters x tokens per step (forward 2, backward 4), the usual
// estimate.
#include <benchmark/benchmark.h>

#include <random>

#include "engine/autograd/tape.h"
#include "engine/backend.h"
#include "engine/optim/adamw.h"
#include "model/t5_model.h"
#include "model/train_step.h"

namespace {

using la3::Tensor;

// A micro-batch of `groups` molecules with `captions` rows each: random caption ids as the
// source, one random SMILES target per molecule (shared by its rows), no padding.
la3::Batch random_batch(int64_t groups, int64_t captions, int64_t source_length, int64_t target_length, int64_t vocab,
                        uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> dist(2, vocab - 1);
  const int64_t rows = groups * captions;
  std::vector<int64_t> ids(static_cast<size_t>(rows * source_length)), labels(static_cast<size_t>(rows * target_length));
  for (int64_t& id : ids) id = dist(rng);
  for (int64_t g = 0; g < groups; ++g) {
    std::vector<int64_t> target(static_cast<size_t>(target_length));
    for (int64_t& id : target) id = dist(rng);
    for (int64_t c = 0; c < captions; ++c) {
      std::copy(target.begin(), target.end(), labels.begin() + (g * captions + c) * target_length);
    }
  }
  la3::Batch batch;
  batch.input_ids = Tensor::from_vector<int64_t>({rows, source_length}, ids);
  batch.attention_mask = Tensor::full({rows, source_length}, 1.0, la3::DType::kI64);
  batch.labels = Tensor::from_vector<int64_t>({rows, target_length}, labels);
  for (int64_t r = 0; r < rows; ++r) batch.group.push_back(r / captions);
  batch.groups = groups;
  batch.source_tokens = rows * source_length;
  batch.target_tokens = groups * target_length;
  return batch;
}

void BM_MolT5SmallTrainStep(benchmark::State& state) {
  const int64_t groups = state.range(0), source_length = state.range(1), target_length = state.range(2);
  const int64_t captions = state.range(3), micro_count = state.range(4);
  la3::T5Config config = *la3::T5Config::preset("molt5-small");
  la3::T5Model model = *la3::T5Model::create(config, 1);
  model.set_requires_grad(true);
  la3::AdamW adamw(model.parameter_list(), la3::AdamWOptions{1e-4, 0.9, 0.999, 1e-8, 0.01});
  la3::AdamWStep optimizer(adamw);
  std::vector<la3::Batch> batches;
  for (int64_t i = 0; i < micro_count; ++i) {
    batches.push_back(random_batch(groups, captions, source_length, target_length, config.vocab_size,
                                   static_cast<uint32_t>(2 + i)));
  }
  std::vector<la3::MicroBatch> micro;
  int64_t tokens = 0;
  for (size_t i = 0; i < batches.size(); ++i) {
    micro.push_back({&batches[i], static_cast<int64_t>(i) * groups * captions});
    tokens += batches[i].source_tokens + batches[i].target_tokens;
  }
  la3::TrainStepOptions options;
  options.loss = captions == 1 ? la3::ops::CaptionLoss::kMean : la3::ops::CaptionLoss::kTokenMixture;
  options.seed = 1;
  options.clip_grad_norm = 1.0;
  for (auto _ : state) {
    adamw.zero_grad();
    absl::StatusOr<la3::TrainStepResult> result = la3::train_step(model, micro, optimizer, options);
    if (!result.ok()) {
      state.SkipWithError(std::string(result.status().message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(result->loss);
    ++options.step;
  }
  state.counters["tokens_per_s"] =
      benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["model_flops"] = benchmark::Counter(6.0 * static_cast<double>(model.parameter_count()) *
                                                         static_cast<double>(tokens),
                                                     benchmark::Counter::kIsIterationInvariantRate,
                                                     benchmark::Counter::kIs1000);
  state.counters["parameters"] = static_cast<double>(model.parameter_count());
}
// 4 rows x (128 + 128) as before (loss mean), and the LA3 shape in small: 2 molecules x 3 captions
// (token_mixture, k = 2) in two micro-batches.
BENCHMARK(BM_MolT5SmallTrainStep)->Args({4, 128, 128, 1, 1})->Args({2, 128, 128, 3, 2})->Unit(benchmark::kSecond)->Iterations(2);

}  // namespace
